"""`loopline holds|wo|lots|alarms` and `lots --trace` on constructed rows."""

from __future__ import annotations

import json
from datetime import timedelta

from engine.helpers import PLANT_START

from core.store.models import Alarm, Hold, HoldLot, LotGenealogy, WorkOrder

T = PLANT_START


def _genealogy(store) -> None:
    """B-0001 → L-00101, L-00102; L-00102 split → L-00104; L-00101 + L-00104 merge →
    L-00201; B-0004 → L-00201 too. L-00103 stands alone."""
    edges = [("L-00101", None, "B-0001", "consume", 100), ("L-00102", None, "B-0001",
             "consume", 100), ("L-00104", "L-00102", None, "split", 50),
             ("L-00201", "L-00101", None, "merge", 100), ("L-00201", "L-00104", None,
             "merge", 50), ("L-00201", None, "B-0004", "consume", 30)]
    with store.session() as s:
        for i, (child, parent, batch, rel, q) in enumerate(edges):
            s.add(LotGenealogy(child_lot_id=child, parent_lot_id=parent, batch_id=batch,
                               relation=rel, quantity=q, ts=T + timedelta(minutes=i)))
        s.commit()


def test_trace_lot_both_ways(store, cli):
    _genealogy(store)
    rc, out, err = cli("lots", "--trace", "L-00104", "--json")
    assert rc == 0, err
    tr = json.loads(out)
    assert tr["kind"] == "lot"
    assert tr["upstream_lots"] == ["L-00102"] and tr["upstream_batches"] == ["B-0001"]
    assert tr["downstream_lots"] == ["L-00201"]
    assert [(x["depth"], x["parent"], x["child"]) for x in tr["upstream"]] == [
        (1, "L-00102", "L-00104"), (2, "B-0001", "L-00102")]
    assert set(tr["lots"]) == {"L-00102", "L-00104", "L-00201"}
    # the merged lot: two parent lots, their batches, and a batch of its own
    rc, out, _ = cli("lots", "--trace", "L-00201", "--json")
    tr = json.loads(out)
    assert sorted(tr["upstream_lots"]) == ["L-00101", "L-00102", "L-00104"]
    assert sorted(tr["upstream_batches"]) == ["B-0001", "B-0004"]
    assert tr["downstream_lots"] == []
    rc, out, _ = cli("lots", "--trace", "L-00103", "--json")
    tr = json.loads(out)
    assert tr["upstream"] == [] and tr["downstream"] == []


def test_trace_batch_downstream_and_tree_text(store, cli):
    _genealogy(store)
    rc, out, _ = cli("lots", "--trace", "B-0001", "--json")
    tr = json.loads(out)
    assert tr["kind"] == "batch" and tr["upstream"] == []
    assert tr["downstream_lots"] == ["L-00101", "L-00102", "L-00104", "L-00201"]
    assert [x["depth"] for x in tr["downstream"]] == [1, 1, 2, 2, 3]
    rc, out, err = cli("lots", "--trace", "L-00102")
    assert rc == 0, err
    assert "made from" in out and "B-0001" in out and "L-00104" in out and "L-00201" in out
    rc, _, err = cli("lots", "--trace", "L-99999")
    assert rc == 1 and "neither a lot nor a material batch" in err


def test_holds_wo_lots_alarms(store, cli):
    with store.session() as s:
        s.add(Hold(id="NCR-1", reason="diameter out of spec", created_at=T,
                   created_by="quinn"))
        s.add(HoldLot(hold_id="NCR-1", lot_id="L-00101"))
        s.add(HoldLot(hold_id="NCR-1", lot_id="L-00102"))
        s.add(Hold(id="NCR-0", reason="old", status="closed", created_at=T - timedelta(1)))
        s.add(WorkOrder(id="WO-1", kind="predictive", equipment_id="A-LATHE1",
                        fault_mode="bearing", created_at=T, priority=1))
        s.add(WorkOrder(id="WO-0", kind="corrective", equipment_id="A-LATHE1",
                        status="done", created_at=T))
        s.add(Alarm(source="limit:A-LATHE1.bearing_temp:hi", message="hot", raised_at=T,
                    priority="high"))
        s.add(Alarm(source="x", message="gone", state="cleared", acked=True, raised_at=T))
        s.commit()
    rc, out, err = cli("holds", "--json")
    assert rc == 0, err
    [h] = json.loads(out)
    assert h["id"] == "NCR-1" and h["lots"] == ["L-00101", "L-00102"]
    assert len(json.loads(cli("holds", "--all", "--json")[1])) == 2
    assert [w["id"] for w in json.loads(cli("wo", "--json")[1])] == ["WO-1"]
    assert [w["id"] for w in json.loads(cli("wo", "--status", "done", "--json")[1])] == [
        "WO-0"]
    assert cli("wo", "--status", "finished")[0] == 1
    lots = json.loads(cli("lots", "--json")[1])
    assert lots and {x["status"] for x in lots} <= {"planned", "wip", "held"}
    [a] = json.loads(cli("alarms", "--json")[1])
    assert a["message"] == "hot" and a["state"] == "active" and a["acked"] is False
    assert len(json.loads(cli("alarms", "--all", "--json")[1])) == 2
    for cmd in ("holds", "wo", "lots", "alarms"):
        rc, out, err = cli(cmd)
        assert rc == 0 and out and not err
    assert "NCR-1" in cli("holds")[1] and "WO-1" in cli("wo")[1]


def test_alarm_source_is_printed_as_written_and_piped_tables_are_not_squeezed(store, cli):
    """`material:B:M-BOX` once printed as `material🅱M-BOX` (an emoji code); piped output
    was cut to 80 columns."""
    long_msg = "material M-BOX at B-LS below its reorder point: " + "x" * 80
    with store.session() as s:
        s.add(Alarm(source="material:B:M-BOX", message=long_msg, raised_at=T,
                    priority="medium"))
        s.commit()
    rc, out, _ = cli("alarms")
    assert rc == 0
    assert "material:B:M-BOX" in out and "🅱" not in out
    assert long_msg in out  # one line, not wrapped at 80


def test_trace_shows_how_much_of_a_batch_a_line_c_lot_used(store, cli):
    """The consume edge is recorded with quantity 0 (nothing meters material); the trace
    shows the pieces counted on the step that takes the batch's material × qty_per_unit."""
    from sqlalchemy import insert, select

    from core.production import PRODUCTION_COUNT, ensure_schema
    from core.store.models import Lot, MaterialBatch, ProductionOrder, RoutingStep

    with store.session() as s:
        step = s.exec(select(RoutingStep).where(RoutingStep.material_id == "M-AL6063")).first()[0]
        order = s.exec(select(ProductionOrder).where(
            ProductionOrder.product_id == step.product_id)).first()[0]
        s.add(MaterialBatch(id="B-0900", material_id="M-AL6063", quantity=500.0,
                            location="C-LS"))
        s.add(Lot(id="L-00900", order_id=order.id, product_id=step.product_id, quantity=120,
                  status="wip", equipment_id=step.eligible()[0], created_at=T, updated_at=T))
        s.commit()
        s.add(LotGenealogy(child_lot_id="L-00900", batch_id="B-0900", relation="consume",
                           ts=T))
        s.commit()
    ensure_schema(store)
    with store.begin() as c:
        c.execute(insert(PRODUCTION_COUNT).values(equipment_id=step.eligible()[0], line_id="C",
                                                  lot_id="L-00900", ts=T, good=48, scrap=2))
    rc, out, err = cli("lots", "--trace", "L-00900")
    assert rc == 0, err
    assert f"batch B-0900  consume {50 * step.qty_per_unit:g}" in out
