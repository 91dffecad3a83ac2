"""Contextualizer: context from the store, from context tags and from the shift calendar."""

from __future__ import annotations

from ingest_helpers import T0, at, sample

from core.config import LoadedConfig
from core.ingest.contextualizer import ContextChange, Contextualizer, context_id
from core.samples import Quality
from core.store.db import Store
from core.store.models import Lot


def _ctx(store: Store, loaded_config: LoadedConfig) -> Contextualizer:
    cz = Contextualizer(loaded_config.tags)
    cz.refresh(store, now=T0)
    return cz


def _set_wip(store: Store, lot_id: str, equipment_id: str) -> None:
    with store.session() as s:
        lot = s.get(Lot, lot_id)
        assert lot is not None
        lot.status, lot.equipment_id = "wip", equipment_id
        s.add(lot)
        s.commit()


def test_context_from_store_and_shift(store: Store, loaded_config: LoadedConfig) -> None:
    _set_wip(store, "L-00101", "A-LATHE1")
    cz = _ctx(store, loaded_config)
    out = cz.stamp([sample("A-LATHE1.vibration_rms", 1, 2.5)])
    c = out[0].ctx
    assert (c.equipment_id, c.line_id, c.lot_id, c.order_id) == ("A-LATHE1", "A", "L-00101",
                                                                  "PO-0001")
    assert (c.recipe_id, c.operation_id, c.step) == ("R-SH20", "PO-0001-10", "10")
    assert (c.shift_id, c.operator_id) == ("early", "olga")  # 06:00 UTC, first of the crew
    idle = cz.stamp([sample("A-MILL1.vibration_rms", 1, 1.0)])[0].ctx
    assert idle.lot_id is None and idle.order_id is None and idle.line_id == "A"


def test_modbus_numeric_context_tags_use_id_format(store: Store,
                                                   loaded_config: LoadedConfig) -> None:
    cz = _ctx(store, loaded_config)
    got: list[list[ContextChange]] = []
    cz.subscribe(got.append)
    out = cz.stamp([sample("C-EXTR1.lot", 1, 501), sample("C-EXTR1.zone_temp", 1.1, 190.0)])
    c = out[1].ctx
    assert c.lot_id == "L-00501" and c.order_id == "PO-0005" and c.recipe_id == "R-PR40"
    assert c.operation_id == "PO-0005-10"
    assert out[0].ctx.lot_id == "L-00501"  # the context sample carries its own new context
    started = [ch.lot_started for batch in got for ch in batch if ch.lot_started]
    assert started == ["L-00501"]
    # the order tag then confirms; a 0 lot means "no lot": the lot ends
    out = cz.stamp([sample("C-EXTR1.order", 2, 5), sample("C-EXTR1.lot", 3, 0),
                    sample("C-EXTR1.zone_temp", 3.1, 191.0)])
    assert out[-1].ctx.lot_id is None and out[-1].ctx.order_id == "PO-0005"
    ended = [ch.lot_ended for ch in cz.drain_changes() if ch.lot_ended]
    assert ended == ["L-00501"]
    # the earlier stamped sample kept its context (contexts are replaced, not mutated)
    assert c.lot_id == "L-00501"


def test_string_tags_win_over_store_and_bad_changes_nothing(store: Store,
                                                            loaded_config: LoadedConfig) -> None:
    _set_wip(store, "L-00101", "A-LATHE1")
    cz = _ctx(store, loaded_config)
    cz.stamp([sample("A-LATHE1.lot", 1, "L-00201"), sample("A-LATHE1.operator", 1, "sam")])
    cz.stamp([sample("A-LATHE1.lot", 2, None, Quality.BAD)])  # comm loss: unknown, not "none"
    cz.refresh(store, now=at(3))  # the store still says L-00101: the machine's word stands
    c = cz.context("A-LATHE1")
    assert (c.lot_id, c.order_id, c.operator_id) == ("L-00201", "PO-0002", "sam")


def test_shift_change_follows_sample_time(store: Store, loaded_config: LoadedConfig) -> None:
    cz = _ctx(store, loaded_config)
    assert {(c.old, c.new) for c in cz.drain_changes() if c.field == "shift_id"} == {
        (None, "early")}
    out = cz.stamp([sample("A-MILL1.vibration_rms", 8 * 3600 - 1, 1.0),
                    sample("A-MILL1.vibration_rms", 8 * 3600, 1.0)])
    assert [s.ctx.shift_id for s in out] == ["early", "late"]
    assert out[1].ctx.operator_id == "olga"  # late crew: olga, tom
    late_sample = cz.stamp([sample("A-MILL1.vibration_rms", 8 * 3600 - 5, 1.0)])[0]
    assert late_sample.ctx.shift_id == "early"  # a late arrival keeps its own shift
    assert cz.context("A-MILL1").shift_id == "late"
    changes = [c for c in cz.drain_changes() if c.field == "shift_id"]
    assert {(c.old, c.new) for c in changes} == {("early", "late")}
    cz.refresh(store, now=T0)  # a lagging clock at refresh does not move the shift back
    assert cz.context("A-MILL1").shift_id == "late" and not cz.drain_changes()


def test_nan_is_bad_and_context_id_rules() -> None:
    assert context_id(101, "L-{:05d}") == "L-00101"
    assert context_id(101.0, "L-{:05d}") == "L-00101"
    assert context_id(" L-7 ", None) == "L-7"
    assert context_id(0, "L-{:05d}") is None and context_id("", None) is None
    cz = Contextualizer([])
    s = cz.stamp([sample("x.y", 0, float("nan")), sample("x.y", 0, float("-inf"))])
    assert all(x.quality == Quality.BAD and x.value is None for x in s)
    assert T0.tzinfo is not None
