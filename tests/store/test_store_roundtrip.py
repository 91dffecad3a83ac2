"""Domain rows survive a write and a read from a real SQLite file, UTC included."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.store.db import Store, open_store
from core.store.models import (
    Action,
    Alarm,
    Decision,
    EquipmentStateInterval,
    Hold,
    HoldLot,
    Lot,
    LotGenealogy,
    ModelVersion,
    Outcome,
    Plan,
    PlanItem,
    QualityMeasurement,
    Recommendation,
    WorkOrder,
)

T = datetime(2026, 1, 5, 8, 30, 15, 123456, tzinfo=UTC)


def test_closed_loop_rows_round_trip(store: Store) -> None:
    rec = Recommendation(
        id="R-1", decision_class="lot_hold", target="L-00101", action="hold_lot",
        params=json.dumps({"lots": ["L-00101"]}), rationale="diameter drifting above USL",
        evidence=json.dumps({"cpk": 0.8}), confidence=0.91, expected_impact="avoid 40 scrap",
        required_role="quality", problem_key="spc:P-SH20.diameter:A-GRIND1", created_at=T,
        expires_at=T + timedelta(minutes=30))
    with store.session() as s:
        s.add(rec)
        s.flush()
        s.add(Decision(recommendation_id="R-1", user_id="quinn", verdict="approved",
                       signed_name="Quinn Adeyemi", signed_at=T, meaning="approved lot hold",
                       record_hash="ab" * 32))
        s.add(Action(recommendation_id="R-1", kind="qms.hold", params="{}",
                     idempotency_key="R-1:qms.hold", created_at=T))
        s.add(Hold(id="NCR-1", reason="diameter above USL", created_by="quinn", created_at=T,
                   recommendation_id="R-1"))
        s.flush()
        s.add(HoldLot(hold_id="NCR-1", lot_id="L-00101"))
        s.commit()
    with store.session() as s:
        got = s.get(Recommendation, "R-1")
        assert got is not None
        assert got.model_dump() == rec.model_dump()
        assert got.created_at.tzinfo is not None and got.created_at == T
        action = s.exec(select(Action)).one()
        assert action.id is not None and action.status == "pending"
        s.add(Outcome(action_id=action.id, window_start=T, window_end=T + timedelta(hours=1),
                      effect=json.dumps({"scrap_rate": [0.05, 0.01]}), label="effective",
                      recorded_at=T + timedelta(hours=1)))
        s.commit()
        dec = s.exec(select(Decision)).one()
        assert (dec.signed_name, dec.signed_at, dec.meaning) == (
            "Quinn Adeyemi", T, "approved lot hold")
        assert s.exec(select(HoldLot.lot_id).where(HoldLot.hold_id == "NCR-1")).all() == [
            "L-00101"]
        assert json.loads(s.exec(select(Outcome)).one().effect) == {"scrap_rate": [0.05, 0.01]}


def test_outbox_idempotency_key_is_unique(store: Store) -> None:
    with store.session() as s:
        s.add(Action(kind="cmms.work_order", idempotency_key="k1", created_at=T))
        s.commit()
    with store.session() as s:
        s.add(Action(kind="cmms.work_order", idempotency_key="k1", created_at=T))
        with pytest.raises(IntegrityError):
            s.commit()


def test_foreign_keys_are_enforced(store: Store) -> None:
    with store.session() as s:
        s.add(Lot(id="L-99901", order_id="PO-9999", product_id="P-SH20", quantity=10))
        with pytest.raises(IntegrityError):
            s.commit()


def test_plant_event_rows_round_trip(store: Store) -> None:
    cet = timezone(timedelta(hours=1))
    rows = [
        EquipmentStateInterval(equipment_id="A-LATHE1", state="down_unplanned",
                               reason_code="spindle_fault", start=T),
        QualityMeasurement(lot_id="L-00101", equipment_id="A-GRIND1",
                           characteristic_id="P-SH20.diameter", value=20.031, lsl=19.975,
                           usl=20.025, in_spec=False, ts=T),
        Alarm(source="A-LATHE1.vibration", detector_id="vib-hi", priority="high",
              message="vibration above limit", raised_at=T, shelved_until=T.astimezone(cet)),
        WorkOrder(id="WO-1", kind="predictive", equipment_id="A-LATHE1",
                  fault_mode="bearing_wear", window_id="MW-A-01", created_at=T),
        ModelVersion(name="failure", version=1, features=json.dumps(["vib_rms_mean"]),
                     metrics=json.dumps({"auc": 0.9}), created_at=T, train_start=T,
                     train_end=T + timedelta(days=1)),
        Plan(id="PLAN-1", created_at=T, objective="weighted tardiness"),
        LotGenealogy(child_lot_id="L-00101", batch_id="B-0001", relation="consume",
                     quantity=100.0, ts=T),
    ]
    with store.session() as s:
        for r in rows:
            s.add(r)
            s.flush()
        s.add(PlanItem(plan_id="PLAN-1", seq=0, operation_id="PO-0001-10",
                       equipment_id="A-LATHE1", start=T, end=T + timedelta(minutes=67),
                       setup_min=0))
        s.commit()
    with store.session() as s:
        st = s.exec(select(EquipmentStateInterval)).one()
        assert (st.state, st.reason_code, st.start, st.end) == (
            "down_unplanned", "spindle_fault", T, None)
        qm = s.exec(select(QualityMeasurement)).one()
        assert qm.value == pytest.approx(20.031) and qm.in_spec is False
        alarm = s.exec(select(Alarm)).one()
        # stored as UTC whatever zone it was given in
        assert alarm.shelved_until == T and alarm.shelved_until.tzinfo == UTC
        assert alarm.state == "active" and alarm.acked is False
        wo = s.get(WorkOrder, "WO-1")
        assert wo is not None and wo.status == "open" and wo.window_id == "MW-A-01"
        item = s.exec(select(PlanItem)).one()
        assert item.end - item.start == timedelta(minutes=67)
        gen = s.exec(select(LotGenealogy)).one()
        assert (gen.child_lot_id, gen.batch_id, gen.relation) == ("L-00101", "B-0001", "consume")


def test_rows_survive_reopening_the_file(store: Store) -> None:
    with store.session() as s:
        s.add(EquipmentStateInterval(equipment_id="B-MOLD1", state="running", start=T))
        s.commit()
    store.close()
    with open_store(str(store.target)) as again:
        with again.session() as s:
            st = s.exec(select(EquipmentStateInterval)).one()
        assert (st.equipment_id, st.state, st.start) == ("B-MOLD1", "running", T)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # SQLite's own settings
def test_sqlite_is_in_wal_mode_with_foreign_keys(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
