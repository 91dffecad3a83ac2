"""Explanations name the signals that drove a score, with value, baseline and unit."""

from __future__ import annotations

import numpy as np
import polars as pl

from ml import explain, models, synthetic
from ml.explain import parse_feature


def test_explanation_of_the_failing_equipment_names_its_wearing_signals(
        plant: synthetic.SyntheticPlant, failure_model: models.Model,
        final: synthetic.Fault) -> None:
    frame = models.features_for(failure_model, plant.history, plant.events,
                                as_of=plant.at(final.fail_h - 4))
    row = frame.filter(pl.col("equipment_id") == "M0002")
    [items] = explain.explain(failure_model, row, top=3)
    assert len(items) == 3
    raising = [i for i in items if i["contribution"] > 0]
    assert raising and all(i["direction"] == "raises" for i in raising)
    first = raising[0]
    assert first["signal"] in {"vibration_rms", "bearing_temp", "motor_current"}
    assert set(first) >= {"feature", "value", "baseline", "unit", "contribution"}
    assert first["unit"] in {"mm/s", "°C", "A", "mm/s/h", "°C/h", "A/h"}
    assert first["value"] > first["baseline"]  # worn: above its normal value
    assert "raises the score" in explain.sentence(first)
    mags = [abs(i["contribution"]) for i in items]
    assert mags == sorted(mags, reverse=True)


def test_context_categories_come_back_as_names(plant: synthetic.SyntheticPlant) -> None:
    scrap = models.train_lot("scrap", plant.history, plant.quality, n_estimators=40)
    lots = models.features_for(scrap, plant.history).head(20)
    out = explain.explain(scrap, lots, top=len(scrap.features["main"]))
    ctx = [i for items in out for i in items if i.get("context") == "batch_id"]
    assert ctx and all(i["value"] in {"B0", "B1", "B2", "B3", "B4"} for i in ctx)


def test_feature_names_parse_back_to_signal_statistic_window() -> None:
    f = parse_feature("bearing_temp__slope_6h")
    assert (f.signal, f.stat, f.window, f.kind) == ("bearing_temp", "slope", "6h", "signal")
    assert parse_feature("ctx__hours_since_maint").kind == "context"
    assert parse_feature("zone_temp__mean_lot").window == "lot"
    assert explain.unit_of(f, {"bearing_temp": "°C"}) == "°C/h"


def test_cross_signal_zmax_is_shown_as_the_signal_that_set_it() -> None:
    from ml.explain import _named
    names = ["a__zbase_1h", "b__zbase_1h", "any_signal__zmax_1h", "b__zbase_6h"]
    row = np.array([1.5, -7.0, 7.0, 30.0])
    assert _named(names, row, 2) == ("b__zbase_1h", -7.0)
    assert _named(names, row, 0) == ("a__zbase_1h", 1.5)
    assert _named(names, np.array([np.nan, np.nan, np.nan, 1.0]), 2)[0] == "any_signal__zmax_1h"
