"""Feature pipeline: good samples only, low data flagged not filled, one path for both uses."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml import features, models, synthetic
from ml.contract import BAD, UNCERTAIN
from ml.features import FeatureSpec


def _extra(plant: synthetic.SyntheticPlant, eq: str, ts, value: float, quality: int
           ) -> pl.DataFrame:
    row = plant.history.filter(pl.col("tag_id") == f"{eq}.vibration_rms").head(1)
    return row.with_columns(pl.lit(ts).alias("ts"), pl.lit(value).alias("value"),
                            pl.lit(quality, pl.Int8).alias("quality"))


@pytest.mark.parametrize("quality", [BAD, UNCERTAIN])
def test_non_good_sample_with_extreme_value_changes_nothing(
        plant: synthetic.SyntheticPlant, failure_model: models.Model, quality: int) -> None:
    as_of = plant.at(150)
    hist = plant.history.filter(pl.col("ts") <= as_of)
    poisoned = pl.concat([hist, _extra(plant, "M0004", as_of - timedelta(minutes=5), 1e9,
                                       quality)]).sort("ts")
    before = models.score_history(failure_model, hist, plant.events, as_of=as_of)
    after = models.score_history(failure_model, poisoned, plant.events, as_of=as_of)
    assert_frame_equal(before, after)
    # ...while the same value as a Good sample does move the features (the test can fail).
    good = pl.concat([hist, _extra(plant, "M0004", as_of - timedelta(minutes=5), 1e9, 0)])
    f_good = models.features_for(failure_model, good.sort("ts"), plant.events, as_of=as_of)
    f_base = models.features_for(failure_model, hist, plant.events, as_of=as_of)
    col = "vibration_rms__max_1h"
    pick = pl.col("equipment_id") == "M0004"
    assert f_good.filter(pick)[col].item() == 1e9
    assert f_base.filter(pick)[col].item() < 20


def test_window_with_too_little_good_data_is_flagged_not_filled(
        plant: synthetic.SyntheticPlant) -> None:
    as_of = plant.at(100)
    gap = (pl.col("tag_id") == "M0007.bearing_temp") & (pl.col("ts") > as_of - timedelta(
        minutes=50))
    hist = plant.history.filter(pl.col("ts") <= as_of).with_columns(
        pl.when(gap).then(None).otherwise(pl.col("value")).alias("value"),
        pl.when(gap).then(pl.lit(BAD, pl.Int8)).otherwise(pl.col("quality")).alias("quality"))
    f = features.equipment_features(hist, plant.events, as_of=as_of, latest=True)
    m7 = f.filter(pl.col("equipment_id") == "M0007")
    assert m7["bearing_temp__low_1h"].item() == 1.0
    assert m7["low_data"].item() is True
    assert m7["bearing_temp__n_1h"].item() < 15  # only the 10 good minutes, not imputed
    assert m7["bearing_temp__low_6h"].item() == 0.0  # the long window still has enough
    other = f.filter(pl.col("equipment_id") == "M0006")
    assert other["low_data"].item() is False


def test_training_and_scoring_build_identical_features(plant: synthetic.SyntheticPlant) -> None:
    spec = FeatureSpec()
    base = features.recipe_baselines(plant.history, spec.signals)
    full = features.equipment_features(plant.history, plant.events, spec, base)
    as_of = plant.at(97)
    latest = features.equipment_features(plant.history, plant.events, spec, base, as_of=as_of,
                                         latest=True)
    same = full.filter(pl.col("ts") == as_of).select(latest.columns)
    assert latest.height == 8
    # Same code, different time origin for the slope sums: equal up to float rounding.
    assert_frame_equal(latest, same, check_exact=False, rel_tol=1e-6, abs_tol=1e-9)


def test_slope_is_per_hour_and_baseline_delta_tracks_recipe(
        plant: synthetic.SyntheticPlant) -> None:
    base = features.recipe_baselines(plant.history)
    f = features.equipment_features(plant.history, plant.events, baselines=base)
    # M0002 degrades toward its failure at 160 h: vibration climbs, healthy ones stay flat.
    at = f.filter(pl.col("ts") == plant.at(157))
    slope = dict(zip(at["equipment_id"], at["vibration_rms__slope_6h"], strict=True))
    assert slope["M0002"] > 0.3
    assert all(abs(v) < 0.1 for k, v in slope.items() if k != "M0002")
    healthy = f.filter((pl.col("equipment_id") == "M0004") & ~pl.col("low_data"))
    assert abs(healthy["motor_current__dbase_1h"].mean()) < 0.2  # recipe steps explained
    assert healthy["motor_current__mean_1h"].std() > 1.0  # ...though the raw mean moves


def test_maintenance_clock_resets(plant: synthetic.SyntheticPlant) -> None:
    f = features.equipment_features(plant.history, plant.events)
    m1 = f.filter(pl.col("equipment_id") == "M0001").sort("ts")
    repaired = plant.at(30 + 3)  # fault at 30 h, 3 h repair
    after = m1.filter(pl.col("ts") == repaired + timedelta(hours=2))
    assert after["ctx__hours_since_maint"].item() == pytest.approx(2.0)
    assert after["ctx__cycles_since_maint"].item() > 100


def test_lot_features_join_context_and_exclude_the_target(
        plant: synthetic.SyntheticPlant) -> None:
    batches = pl.DataFrame({"batch_id": ["B0", "B1", "B2", "B3", "B4"],
                            "moisture": [0.1, 0.2, 0.3, 0.4, 0.5]})
    lots = features.lot_features(plant.history, tables={"batch_id": batches})
    assert lots["lot_id"].n_unique() == lots.height
    assert {"recipe_id", "batch_id", "shift_id", "operator_id", "batch_id__moisture",
            "zone_temp__mean_lot"} <= set(lots.columns)
    assert not any(c.startswith("quality_value__") for c in lots.columns)
    assert lots["batch_id__moisture"].null_count() == 0


def test_bad_duration_and_window_are_refused() -> None:
    with pytest.raises(ValueError, match="bad duration"):
        FeatureSpec(windows=("1x",))
    with pytest.raises(ValueError, match="not a multiple"):
        FeatureSpec(every="15m", windows=("20m",))
