"""Lots the plant numbers itself become Lot rows under the order the machine reports,
with their batch genealogy; they follow the machines; decisions stay."""

from __future__ import annotations

from datetime import timedelta

from ingest_helpers import T0
from sqlmodel import select

from core.ingest.contextualizer import ContextChange
from core.ingest.lots import register_lots
from core.samples import Context
from core.store.models import Lot, LotGenealogy


def ch(eq: str, field: str, old: str | None, new: str | None, minutes: int = 0
       ) -> ContextChange:
    return ContextChange(eq, field, old, new, T0 + timedelta(minutes=minutes), "tag")


def lot(store, lot_id: str) -> Lot | None:  # type: ignore[no-untyped-def]
    with store.session() as s:
        return s.get(Lot, lot_id)


def test_a_new_lot_is_registered_moved_and_leaves(store) -> None:  # type: ignore[no-untyped-def]
    ctx = {"A-LATHE1": Context(equipment_id="A-LATHE1", line_id="A", order_id="PO-0001",
                               lot_id="L-00001", batch_id="B-0001"),
           "A-MILL1": Context(equipment_id="A-MILL1", line_id="A", order_id="PO-0001",
                              lot_id="L-00001")}
    rep = register_lots(store, [ch("A-LATHE1", "lot_id", None, "L-00001"),
                                ch("A-LATHE1", "batch_id", None, "B-0001")], ctx, T0)
    assert (rep.created, rep.edges) == (1, 1)
    row = lot(store, "L-00001")
    assert row is not None and row.order_id == "PO-0001" and row.product_id == "P-SH20"
    assert (row.status, row.equipment_id) == ("wip", "A-LATHE1")
    # the same changes again: nothing new (idempotent)
    again = register_lots(store, [ch("A-LATHE1", "lot_id", None, "L-00001"),
                                  ch("A-LATHE1", "batch_id", None, "B-0001")], ctx, T0)
    assert (again.created, again.edges) == (0, 0)
    # it moves on to the mill in the same upkeep as it leaves the lathe
    register_lots(store, [ch("A-MILL1", "lot_id", None, "L-00001", 5),
                          ch("A-LATHE1", "lot_id", "L-00001", None, 5)], ctx, T0)
    row = lot(store, "L-00001")
    assert row is not None and row.equipment_id == "A-MILL1"
    # then it leaves the mill: still in work (grinder and washer to come), last seen there
    register_lots(store, [ch("A-MILL1", "lot_id", "L-00001", None, 9)], ctx, T0)
    row = lot(store, "L-00001")
    assert row is not None and row.equipment_id == "A-MILL1" and row.status == "wip"
    # through the last step of its route (the washer): complete
    rep = register_lots(store, [ch("A-WASH1", "lot_id", None, "L-00001", 12),
                                ch("A-WASH1", "lot_id", "L-00001", None, 15)], ctx, T0)
    row = lot(store, "L-00001")
    assert rep.completed == 1 and row is not None and row.status == "complete"
    with store.session() as s:
        edges = s.exec(select(LotGenealogy).where(LotGenealogy.child_lot_id == "L-00001")).all()
    assert [(e.batch_id, e.relation) for e in edges] == [("B-0001", "consume")]


def test_a_held_lot_keeps_its_status_and_unknown_orders_are_counted(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as s:
        held = s.get(Lot, "L-00101")
        assert held is not None
        held.status = "held"
        s.add(held)
        s.commit()
    ctx = {"A-LATHE1": Context(equipment_id="A-LATHE1", order_id="PO-9999", lot_id="L-77777"),
           "A-MILL1": Context(equipment_id="A-MILL1", order_id="PO-0001", lot_id="L-00101")}
    rep = register_lots(store, [ch("A-LATHE1", "lot_id", None, "L-77777"),
                                ch("A-MILL1", "lot_id", None, "L-00101")], ctx, T0)
    assert rep.unknown_orders == 1 and lot(store, "L-77777") is None
    row = lot(store, "L-00101")
    assert row is not None and row.status == "held"  # the hold is a decision: kept
