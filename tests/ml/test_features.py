"""Feature pipeline: good samples only, low data flagged not filled, one path for both uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml import contract, features, models, synthetic
from ml.contract import BAD, UNCERTAIN, Events
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


def test_a_signal_the_machine_does_not_have_flags_nothing(
        plant: synthetic.SyntheticPlant) -> None:
    """A lathe has no flow: that is not 'too little data' (every lathe would be flagged
    and its score thrown away by the runtime), but a signal that is there and silent is."""
    as_of = plant.at(100)
    hist = plant.history.filter((pl.col("ts") <= as_of)
                                & (pl.col("tag_id") != "M0006.bearing_temp"))
    f = features.equipment_features(hist, plant.events, as_of=as_of, latest=True)
    m6 = f.filter(pl.col("equipment_id") == "M0006")
    assert m6["bearing_temp__low_1h"].item() is None  # not applicable, not low
    assert m6["low_data"].item() is False
    others = f.filter(pl.col("equipment_id") != "M0006")
    assert (others["bearing_temp__low_1h"] == 0.0).all()


def test_training_and_scoring_build_identical_features(plant: synthetic.SyntheticPlant) -> None:
    spec = FeatureSpec()
    base = features.recipe_baselines(plant.history, spec.signals, plant.events)
    assert set(base["run"].unique()) >= {features.RUN_UNKNOWN, features.RUN_OFF}
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


def _tiny(values: list[tuple[int, float]], eq: str = "E1") -> pl.DataFrame:
    """One signal of one machine: (minutes after 06:00, value), Good, one recipe."""
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    return contract.history(pl.DataFrame({
        "tag_id": [f"{eq}.bearing_temp"] * len(values),
        "ts": [t0 + timedelta(minutes=m) for m, _ in values],
        "value": [v for _, v in values], "quality": [0] * len(values),
        "equipment_id": [eq] * len(values), "recipe_id": ["R1"] * len(values)}))


def _states(rows: list[tuple[str, int, int]]) -> Events:
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    st = pl.DataFrame([("E1", s, "", t0 + timedelta(minutes=a), t0 + timedelta(minutes=b))
                       for s, a, b in rows], schema=contract.STATES_SCHEMA, orient="row")
    return Events(st, pl.DataFrame(schema=contract.MAINTENANCE_SCHEMA))


def test_recipe_baseline_is_kept_per_operating_mode() -> None:
    """Running warm, idling cool: each mode is compared with its own normal."""
    h = _tiny([(m, 40.0 + 0.1 * (m % 3) if m < 120 else 30.0 + 0.1 * (m % 3))
               for m in range(0, 240)])
    ev = _states([("running", 0, 120), ("idle", 120, 200), ("down_unplanned", 200, 300)])
    run = features.with_run_mode(h, ev)["run"].to_list()
    assert run[0] == run[119] == features.RUN_RUNNING
    assert run[120] == features.RUN_IDLE and run[200] == features.RUN_OFF
    assert features.with_run_mode(h, None)["run"].unique().to_list() == [features.RUN_UNKNOWN]
    base = features.recipe_baselines(h, ("bearing_temp",), ev).sort("run")
    assert base["baseline"].to_list() == pytest.approx([30.1, 40.1, 30.1])  # idle, run, off
    # A warm idle machine: 10 degrees over its idle normal, though a normal running value.
    warm = _tiny([(m, 40.0) for m in range(0, 300)])
    f = features.equipment_features(warm, _states([("idle", 0, 300)]), FeatureSpec(
        signals=("bearing_temp",), windows=("1h",), base="1h"), base)
    last = f.sort("ts").tail(1)
    assert last["bearing_temp__dbase_1h"].item() == pytest.approx(9.9)
    assert last["bearing_temp__zbase_1h"].item() > 50  # in spreads: far outside normal
    assert last["any_signal__zmax_1h"].item() == last["bearing_temp__zbase_1h"].item()


def test_window_holds_nothing_from_before_a_repair() -> None:
    """The run-up to a failure is gone from the windows once the machine is repaired."""
    h = _tiny([(m, 80.0 if m < 180 else 40.0) for m in range(0, 360)])
    spec = FeatureSpec(signals=("bearing_temp",), windows=("1h", "6h"), base="1h")
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    at = t0 + timedelta(hours=5)
    plain = features.equipment_features(h, None, spec, as_of=at, latest=True)
    assert plain["bearing_temp__max_6h"].item() == 80.0  # the worn readings are in view
    maint = pl.DataFrame([("E1", "bearing", t0 + timedelta(hours=3))],
                         schema=contract.MAINTENANCE_SCHEMA, orient="row")
    ev = Events(pl.DataFrame(schema=contract.STATES_SCHEMA), maint)
    f = features.equipment_features(h, ev, spec, as_of=at, latest=True)
    assert f["bearing_temp__max_6h"].item() == 40.0
    assert f["bearing_temp__n_6h"].item() == 120  # 2 h since the repair, not 5
    assert f["bearing_temp__low_6h"].item() == 1.0  # too little data: flagged, not filled
    full = features.equipment_features(h, ev, spec)  # training builds the same row
    same = full.filter(pl.col("ts") == at).select(f.columns)
    assert_frame_equal(f, same, check_exact=False, rel_tol=1e-6, abs_tol=1e-9)
