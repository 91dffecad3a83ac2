"""Production tracker: state intervals, counter deltas (wrap, reset), quality measurements."""

from __future__ import annotations

from datetime import timedelta

from ingest_helpers import T0, at, sample
from sqlmodel import select

from core.config import LoadedConfig
from core.ingest.contextualizer import Contextualizer
from core.production import NO_DATA, UNKNOWN, ProductionTracker
from core.samples import Quality, Sample
from core.store.db import Store, exec_sql
from core.store.models import EquipmentStateInterval, Operation, QualityMeasurement


def _setup(store: Store, loaded_config: LoadedConfig) -> tuple[Contextualizer,
                                                                 ProductionTracker]:
    cz = Contextualizer(loaded_config.tags)
    cz.refresh(store, now=T0)
    tr = ProductionTracker(loaded_config.tags)
    tr.load(store)
    return cz, tr


def _feed(cz: Contextualizer, tr: ProductionTracker, samples: list[Sample]) -> None:
    tr.process(cz.stamp(samples))


def _intervals(store: Store, eq: str) -> list[tuple[str, str, float, float | None]]:
    with store.session() as s:
        rows = s.exec(select(EquipmentStateInterval).where(
            EquipmentStateInterval.equipment_id == eq).order_by(
            EquipmentStateInterval.start, EquipmentStateInterval.id)).all()
    return [(r.state, r.reason_code, (r.start - T0).total_seconds(),
             None if r.end is None else (r.end - T0).total_seconds()) for r in rows]


def test_state_intervals_open_close_and_no_data(store: Store,
                                                loaded_config: LoadedConfig) -> None:
    cz, tr = _setup(store, loaded_config)
    eq = "A-LATHE1"
    _feed(cz, tr, [sample(f"{eq}.state", 0, 1), sample(f"{eq}.state", 5, 1)])
    tr.flush(store)
    assert _intervals(store, eq) == [("running", "", 0, None)]  # open, repeats ignored
    _feed(cz, tr, [sample(f"{eq}.state_reason", 100, "bearing"), sample(f"{eq}.state", 100, 4),
                   sample(f"{eq}.state", 160, None, Quality.BAD),
                   sample(f"{eq}.state", 200, 4), sample(f"{eq}.state_reason", 260, ""),
                   sample(f"{eq}.state", 260, 1)])
    tr.flush(store)
    assert _intervals(store, eq) == [
        ("running", "", 0, 100), ("down_unplanned", "bearing", 100, 160),
        (UNKNOWN, NO_DATA, 160, 200), ("down_unplanned", "bearing", 200, 260),
        ("running", "", 260, None)]
    # a new tracker (restart) continues the open interval instead of opening another
    tr2 = ProductionTracker(loaded_config.tags)
    tr2.load(store)
    tr2.process(cz.stamp([sample(f"{eq}.state", 300, 1), sample(f"{eq}.state", 400, 0)]))
    tr2.flush(store)
    assert _intervals(store, eq)[-2:] == [("running", "", 260, 400), ("idle", "", 400, None)]


def test_counter_deltas_wrap_reset_per_lot(store: Store, loaded_config: LoadedConfig) -> None:
    cz, tr = _setup(store, loaded_config)
    eq = "C-PRESS1"  # uint32 counters on Modbus, ideal cycle 20 s
    _feed(cz, tr, [sample(f"{eq}.lot", 0, 501),
                   sample(f"{eq}.good_count", 1, 4294967290),  # baseline near the top
                   sample(f"{eq}.good_count", 100, 4294967295),  # +5
                   sample(f"{eq}.good_count", 200, 3),  # wrap: +4
                   sample(f"{eq}.scrap_count", 200, 10),  # baseline
                   sample(f"{eq}.scrap_count", 240, 12),  # +2
                   sample(f"{eq}.good_count", 240, None, Quality.BAD),  # ignored
                   sample(f"{eq}.lot", 270, 502),
                   sample(f"{eq}.good_count", 340, 10),  # +7 into the next lot
                   sample(f"{eq}.good_count", 380, 2)])  # restarted from 0, then +2
    assert (tr.wraps, tr.resets) == (1, 1)
    tr.flush(store)
    with store.begin() as conn:
        got = exec_sql(
            conn, "SELECT lot_id, order_id, shift_id, sum(good), sum(scrap) FROM "
            "production_count WHERE equipment_id = ? GROUP BY lot_id, order_id, shift_id "
            "ORDER BY lot_id", (eq,)).fetchall()
    assert [tuple(r) for r in got] == [("L-00501", "PO-0005", "early", 9, 2),
                                       ("L-00502", "PO-0005", "early", 9, 0)]
    with store.session() as s:
        op = s.get(Operation, "PO-0005-30")
        assert op is not None and (op.qty_good, op.qty_scrap) == (18, 2)


def test_quality_measurements_with_spec(store: Store, loaded_config: LoadedConfig) -> None:
    cz, tr = _setup(store, loaded_config)
    eq = "A-LATHE1"
    _feed(cz, tr, [sample(f"{eq}.lot", 0, "L-00101"),
                   sample(f"{eq}.quality_value", 10, 20.010),
                   sample(f"{eq}.quality_value", 11, 20.010),  # repeat of the same part
                   sample(f"{eq}.quality_value", 50, 20.030),  # above usl 20.025
                   sample(f"{eq}.quality_value", 60, float("nan"))])  # Bad: no row
    tr.flush(store)
    with store.session() as s:
        got = s.exec(select(QualityMeasurement).order_by(QualityMeasurement.ts)).all()
    assert [(m.lot_id, m.characteristic_id, m.value, m.lsl, m.usl, m.in_spec,
             m.ts - T0) for m in got] == [
        ("L-00101", "P-SH20.diameter", 20.010, 19.975, 20.025, True, timedelta(seconds=10)),
        ("L-00101", "P-SH20.diameter", 20.030, 19.975, 20.025, False, timedelta(seconds=50))]
    assert at(0) == T0


def test_reason_in_another_batch_and_refinement(store: Store,
                                                loaded_config: LoadedConfig) -> None:
    cz, tr = _setup(store, loaded_config)
    eq = "B-MOLD1"
    _feed(cz, tr, [sample(f"{eq}.state", 0, 1)])
    _feed(cz, tr, [sample(f"{eq}.state_reason", 99.5, "no material")])  # just before
    _feed(cz, tr, [sample(f"{eq}.state", 100, 5)])
    _feed(cz, tr, [sample(f"{eq}.state_reason", 400, "no resin"), sample(f"{eq}.flow", 405, 1.0)])
    tr.flush(store)
    assert _intervals(store, eq) == [("running", "", 0, 100),
                                     ("starved", "no resin", 100, None)]


def test_quality_of_a_lot_unknown_to_the_store_uses_the_order(
        store: Store, loaded_config: LoadedConfig) -> None:
    cz, tr = _setup(store, loaded_config)
    eq = "C-EXTR1"  # Modbus: lot and order numbers, no recipe tag
    _feed(cz, tr, [sample(f"{eq}.lot", 0, 11), sample(f"{eq}.order", 0, 5),
                   sample(f"{eq}.quality_value", 5, 40.2)])  # above usl 40.15
    tr.flush(store)
    with store.session() as s:
        got = s.exec(select(QualityMeasurement)).all()
    assert [(m.lot_id, m.characteristic_id, m.in_spec) for m in got] == [
        (None, "P-PR40.width", False)]  # L-00011 is not a store lot: no dangling reference


def test_counter_baseline_survives_a_restart(store: Store, loaded_config: LoadedConfig) -> None:
    cz, tr = _setup(store, loaded_config)
    eq = "A-MILL1"
    _feed(cz, tr, [sample(f"{eq}.good_count", 0, 100), sample(f"{eq}.good_count", 1500, 130)])
    tr.flush(store)
    cz2, tr2 = _setup(store, loaded_config)  # a restart: new objects, same store
    _feed(cz2, tr2, [sample(f"{eq}.good_count", 2400, 150)])  # 20 made while we were away
    tr2.flush(store)
    with store.begin() as conn:
        total = exec_sql(conn, "SELECT sum(good) FROM production_count WHERE "
                                     "equipment_id = ?", (eq,)).scalar_one()
    assert total == 50
