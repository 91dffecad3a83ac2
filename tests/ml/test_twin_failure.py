"""The failure model on the plant twin's data: it sees injected faults coming, from Good data.

The twin's core (lines A and B, fixed seed) runs in-process for 90 simulated hours with
ten injected bearing/tool faults to learn from and one random fault a day; two more
faults start after the training period, plus a comms drop on one of those machines. The
frames are what ml.store_source.StoreSource returns (bench/ml_twin.py); failure times
come from the twin's ground truth, which the model never sees.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from bench.ml_twin import TwinData, generate
from ml import contract, models

LEARN = [("bearing", "A-MILL1", 2.0), ("tool", "A-LATHE1", 6.0), ("bearing", "B-MOLD1", 12.0),
         ("tool", "A-GRIND1", 18.0), ("bearing", "B-PACK1", 24.0), ("tool", "A-MILL1", 30.0),
         ("bearing", "A-WASH1", 36.0), ("bearing", "B-DRY1", 42.0), ("tool", "A-LATHE1", 46.0),
         ("bearing", "B-MOLD2", 50.0)]
LATER = [("bearing", "B-MOLD2", 70.0), ("tool", "A-LATHE1", 70.5)]
DROP = ("comms-drop", "B-MOLD2", 74.0)
TRAIN_END_H = 68.0
TREES = 60


@pytest.fixture(scope="module")
def twin() -> TwinData:
    return generate(90 / 24, seed=7, faults_per_day=1.0, lines=["A", "B"],
                    injections=[*LEARN, *LATER, DROP])


@pytest.fixture(scope="module")
def model(twin: TwinData) -> models.Model:
    history, events = twin.until(twin.at(TRAIN_END_H))  # trained on the earlier days only
    return models.train_equipment("failure", history, events, n_estimators=TREES)


def _window(at: datetime) -> datetime:
    """The scoring window end at or before ``at`` (features are every 15 min)."""
    return at - timedelta(minutes=at.minute % 15, seconds=at.second,
                          microseconds=at.microsecond)


def test_twin_frames_are_the_store_contract(twin: TwinData) -> None:
    h = twin.history
    assert dict(h.schema) == contract.HISTORY_SCHEMA
    bad = h.filter(pl.col("quality") == contract.BAD)
    assert bad.height > 0 and bad["value"].null_count() == bad.height
    assert h.filter(pl.col("quality") == contract.GOOD)["value"].null_count() == 0
    # every failure of the truth is an unplanned down interval in the events
    downs = twin.events.unplanned()
    for eq, _kind, ts in twin.failures().rows():
        starts = downs.filter(pl.col("equipment_id") == eq)["start"].to_list()
        assert any(abs(s - ts) <= timedelta(seconds=1) for s in starts), (eq, ts)
    assert twin.quality is not None and twin.quality["scrap"].n_unique() == 2


@pytest.mark.parametrize("hours_before", [4.0, 2.0])
def test_failure_model_ranks_the_faulty_equipment_above_the_healthy(
        twin: TwinData, model: models.Model, hours_before: float) -> None:
    later = twin.failures().filter(pl.col("ts") > twin.at(TRAIN_END_H))
    assert sorted(later["equipment_id"]) == ["A-LATHE1", "B-MOLD2"]  # the truth: both failed
    for eq, _kind, fail_at in later.rows():
        as_of = _window(fail_at - timedelta(hours=hours_before))
        s = models.score_history(model, twin.history, twin.events, as_of=as_of)
        by = dict(zip(s["equipment_id"], s["score"], strict=True))
        faulty = twin.degrading(as_of)
        healthy = set(by) - faulty - twin.down(as_of)
        assert eq in faulty and len(healthy) >= 5
        assert min(by[e] for e in faulty) > max(by[e] for e in healthy), (eq, as_of, by)


def test_bad_samples_never_reach_the_features(twin: TwinData, model: models.Model) -> None:
    """The twin's comms drop gives Bad rows; even absurd values on them change nothing."""
    [drop] = [e for e in twin.truth if e["event"] == "fault_started"
              and e["kind"] == "comms-drop" and e["source"] == "injected"]
    as_of = _window(datetime.fromisoformat(drop["ends_at"].replace("Z", "+00:00"))
                    ) + timedelta(minutes=15)
    h = twin.history.filter(pl.col("ts") <= as_of)
    is_bad = (pl.col("quality") == contract.BAD) & (pl.col("equipment_id") == "B-MOLD2")
    assert h.filter(is_bad & (pl.col("ts") > as_of - timedelta(hours=1))).height > 0
    poisoned = h.with_columns(pl.when(is_bad).then(1e6).otherwise(pl.col("value"))
                              .alias("value"))
    clean = models.features_for(model, h, twin.events, as_of=as_of)
    dirty = models.features_for(model, poisoned, twin.events, as_of=as_of)
    assert clean.equals(dirty)
    assert models.score(model, clean)["score"].equals(models.score(model, dirty)["score"])
    row = clean.filter(pl.col("equipment_id") == "B-MOLD2")
    assert row["vibration_rms__n_1h"].item() < 60  # the dropped minutes are missing, not filled
    assert row["vibration_rms__max_1h"].item() < 100
