"""Models on the seeded run-to-failure plant: they see the failure coming, and only it."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ml import features, models, synthetic
from ml.contract import Events
from ml.models import TrainingError

TREES = 60


@pytest.mark.parametrize("hours_before", [6.0, 4.0, 2.0])
def test_failure_model_ranks_the_degrading_equipment_first(
        plant: synthetic.SyntheticPlant, failure_model: models.Model, final: synthetic.Fault,
        hours_before: float) -> None:
    as_of = plant.at(final.fail_h - hours_before)
    s = models.score_history(failure_model, plant.history, plant.events, as_of=as_of)
    assert s.height == 8 and s["ts"].unique().to_list() == [as_of]
    ranked = s.sort("score", descending=True)["equipment_id"].to_list()
    assert ranked[0] == "M0002"
    top = s.filter(pl.col("equipment_id") == "M0002")["score"].item()
    rest = s.filter(pl.col("equipment_id") != "M0002")["score"].max()
    assert top > 0.5 > rest  # well separated, not just first by a hair


def test_no_alarm_long_before_the_failure(plant: synthetic.SyntheticPlant,
                                          failure_model: models.Model) -> None:
    s = models.score_history(failure_model, plant.history, plant.events, as_of=plant.at(145))
    assert s["score"].max() < 0.5  # 15 h ahead the wear is still below the noise


def test_failure_holdout_metrics_are_reported(failure_model: models.Model) -> None:
    m = failure_model.metrics
    assert m["positives"] > 0 and m["rows"] > m["positives"]
    assert m["auc"] > 0.9


def test_rul_regressor_sees_less_life_in_the_degrading_equipment(
        plant: synthetic.SyntheticPlant, train_history: pl.DataFrame,
        final: synthetic.Fault) -> None:
    rul = models.train_equipment("rul", train_history, plant.events, n_estimators=TREES,
                                 rul_cap_h=48.0)
    s = models.score_history(rul, plant.history, plant.events,
                             as_of=plant.at(final.fail_h - 4))
    by = dict(zip(s["equipment_id"], s["score"], strict=True))
    assert by["M0002"] < 20.0
    assert min(v for k, v in by.items() if k != "M0002") > 30.0
    assert rul.metrics["rmse"] < 48.0 / 2


def test_scrap_and_quality_models_learn_from_process_context(
        plant: synthetic.SyntheticPlant) -> None:
    scrap = models.train_lot("scrap", plant.history, plant.quality, n_estimators=TREES)
    assert scrap.metrics["auc"] > 0.65
    quality = models.train_lot("quality", plant.history, plant.quality, n_estimators=TREES)
    naive = float(plant.quality["value"].std())
    assert quality.metrics["rmse"] < 0.8 * naive
    lots = models.features_for(scrap, plant.history.filter(pl.col("ts") >= plant.at(150)))
    s = models.score(scrap, lots)
    assert s["lot_id"].n_unique() == s.height and s["score"].is_between(0, 1).all()


def test_anomaly_residuals_flag_the_wearing_signal(plant: synthetic.SyntheticPlant,
                                                   train_history: pl.DataFrame,
                                                   final: synthetic.Fault) -> None:
    healthy = train_history.filter(pl.col("ts") < plant.at(24))  # before any wear
    an = models.train_equipment("anomaly", healthy, plant.events, n_estimators=TREES,
                                holdout=0.2)
    s = models.score_history(an, plant.history, plant.events,
                             as_of=plant.at(final.fail_h - 2))
    m2 = s.filter(pl.col("equipment_id") == "M0002")
    others = s.filter(pl.col("equipment_id") != "M0002")
    assert m2["score"].item() > 5 * others["score"].max()
    assert abs(m2["anomaly__vibration_rms"].item()) > 5


def test_scoring_is_one_vectorised_call_per_booster(failure_model: models.Model,
                                                    plant: synthetic.SyntheticPlant) -> None:
    frame = models.features_for(failure_model, plant.history, plant.events,
                                as_of=plant.at(150))
    x = models.matrix(frame, failure_model.features["main"])
    raw = failure_model.boosters["main"].inplace_predict(x)
    np.testing.assert_array_equal(models.score(failure_model, frame)["score"].to_numpy(), raw)


def test_training_without_failures_says_why(plant: synthetic.SyntheticPlant) -> None:
    quiet = plant.history.filter(pl.col("ts") < plant.at(20))
    with pytest.raises(TrainingError, match="no unplanned downs"):
        models.train_equipment("failure", quiet, plant.events.__class__.empty())
    with pytest.raises(TrainingError, match="no history"):
        models.train_equipment("failure", quiet.head(0), plant.events)


def test_a_prevented_failure_still_labels_its_run_up(plant: synthetic.SyntheticPlant) -> None:
    """Once the loop works, failures stop: effective actions must keep the labels coming."""
    f = features.equipment_features(plant.history.filter(pl.col("ts") < plant.at(100)),
                                    plant.events)
    m4 = pl.col("equipment_id") == "M0004"  # healthy in the data; pretend we caught a fault
    plain = models.label_failures(f, plant.events, 8.0, 72.0).filter(m4)
    assert plain["y_failure"].drop_nulls().sum() == 0
    caught = pl.DataFrame({"equipment_id": ["M0004"], "fault": ["bearing"],
                           "ts": [plant.at(50)]})
    ev = Events(plant.events.states, plant.events.maintenance, caught)
    lab = models.label_failures(f, ev, 8.0, 72.0).filter(m4)
    pos = lab.filter(pl.col("y_failure") == 1.0)["ts"]
    assert pos.min() >= plant.at(42) and pos.max() < plant.at(50)
    assert pos.len() == 32  # every 15-min window of the 8 h run-up
    assert lab.filter(pl.col("ts") == plant.at(46))["y_rul"].item() == 4.0
