"""PSI drift: fires when a feature's distribution shifts, stays quiet when it does not."""

from __future__ import annotations

import numpy as np
import polars as pl

from ml import drift, models, synthetic


def test_psi_fires_on_a_shift_and_not_on_the_same_distribution() -> None:
    rng = np.random.default_rng(7)
    train = rng.normal(0, 1, 5000)
    same = rng.normal(0, 1, 2000)
    shifted = rng.normal(0.8, 1, 2000)
    wider = rng.normal(0, 2, 2000)
    assert drift.psi_of(train, same) < 0.05
    assert drift.psi_of(train, shifted) > drift.DEFAULT_THRESHOLD
    assert drift.psi_of(train, wider) > drift.DEFAULT_THRESHOLD
    ref = drift.reference(pl.DataFrame({"a": train, "b": train}), ["a", "b"])
    res = drift.check(ref, pl.DataFrame({"a": same, "b": shifted}))
    assert drift.drifted(ref, pl.DataFrame({"a": same, "b": shifted})) == ["b"]
    assert res.filter(pl.col("feature") == "a")["drift"].item() is False


def test_a_signal_going_bad_shows_as_drift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 3000)
    ref = drift.reference(pl.DataFrame({"a": x}), ["a"])
    half_missing = np.where(rng.random(1000) < 0.5, np.nan, rng.normal(0, 1, 1000))
    assert drift.drifted(ref, pl.DataFrame({"a": half_missing})) == ["a"]


def test_model_reference_flags_a_shifted_plant(plant: synthetic.SyntheticPlant,
                                               failure_model: models.Model) -> None:
    recent = plant.history.filter(pl.col("ts") >= plant.at(100))
    f = models.features_for(failure_model, recent, plant.events, latest=False)
    quiet = [m for m in drift.drifted(failure_model.reference, f)
             if m.startswith(("zone_temp__", "cycle_time__"))]
    assert not quiet
    hot = recent.with_columns(
        pl.when(pl.col("tag_id").str.ends_with(".zone_temp")).then(pl.col("value") + 15)
        .otherwise(pl.col("value")).alias("value"))
    g = models.features_for(failure_model, hot, plant.events, latest=False)
    moved = drift.drifted(failure_model.reference, g)
    # the failure model sees change, not levels: the recipe-baseline change carries the shift
    assert "zone_temp__dbase_1h" in moved
    assert not any(m.startswith("cycle_time__") for m in moved)
