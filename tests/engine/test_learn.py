"""Learn: outcome windows per class, labels, and the track record on constructed histories."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from core.engine.executors import MemoryDevice
from core.engine.learn import track_record
from core.store.models import (
    Action,
    Decision,
    Outcome,
    Plan,
    QualityMeasurement,
    Recommendation,
)
from engine.helpers import PINS, PLANT_START, detection, make_engine, scrap_setpoint

CHAR = "P-HL.wall_thickness"


def _rec(s, rid, cls, status, at):
    s.add(Recommendation(id=rid, decision_class=cls, target="X", action="a", status=status,
                         problem_key=rid, created_at=at))


def _approved(s, rid, user, label, impact, at, aid):
    s.add(Decision(recommendation_id=rid, user_id=user, verdict="approved", signed_at=at))
    s.add(Action(id=aid, recommendation_id=rid, kind="a", idempotency_key=f"{rid}:a",
                 status="done", created_at=at))
    s.flush()
    s.add(Outcome(action_id=aid, window_start=at, window_end=at, label=label,
                  effect=json.dumps({"impact_realised": impact}), recorded_at=at))


def test_track_record_on_constructed_outcomes(store):
    t = PLANT_START + timedelta(hours=1)
    with store.session() as s:
        _rec(s, "R1", "work_order", "executed", t)
        _rec(s, "R2", "work_order", "executed", t)
        _rec(s, "R3", "work_order", "rejected", t)
        _rec(s, "R4", "work_order", "expired", t)
        _rec(s, "R5", "work_order", "superseded", t)
        _rec(s, "R6", "lot_hold", "executed", t)
        _rec(s, "R0", "work_order", "executed", PLANT_START - timedelta(days=1))  # before since
        s.flush()
        _approved(s, "R1", "maya", "effective", 600.0, t, 1)
        _approved(s, "R2", "maya", "ineffective", 0.0, t, 2)
        _approved(s, "R6", "system:autonomy", "effective", 3.0, t, 3)
        _approved(s, "R0", "maya", "effective", 600.0, PLANT_START - timedelta(days=1), 4)
        s.add(Decision(recommendation_id="R3", user_id="tom", verdict="rejected",
                       reason="false_alarm", signed_at=t))
        s.commit()
    tr = track_record(store, PLANT_START)
    wo = tr["work_order"]
    assert (wo["recommended"], wo["judged"], wo["approved"], wo["rejected"], wo["expired"]) == (
        5, 4, 2, 1, 1)
    assert wo["acceptance_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert wo["precision"] == 0.25  # R1 only: approved and effective, of 4 judged
    assert (wo["effective"], wo["ineffective"], wo["realised_impact"]) == (1, 1, 600.0)
    assert wo["rejection_reasons"] == {"false_alarm": 1}
    hold = tr["lot_hold"]
    assert (hold["precision"], hold["acceptance_rate"], hold["auto_approved"]) == (1.0, 1.0, 1)
    assert tr["all"]["precision"] == 0.4 and tr["all"]["realised_impact"] == 603.0


def test_setpoint_outcome_over_the_next_lots(store, loaded_config, frozen_clock):
    dev = MemoryDevice({"B-MOLD1.temp_sp": 240.0})
    eng = make_engine(store, loaded_config, frozen_clock, device=dev)
    with store.session() as s:  # before: 3 of 10 out of spec in the 70 min before
        for i in range(10):
            s.add(QualityMeasurement(equipment_id="B-MOLD1", characteristic_id=CHAR,
                                     value=2.0, in_spec=i >= 3, lot_id="L-00301",
                                     ts=PLANT_START - timedelta(minutes=7 * (i + 1))))
        s.commit()
    rid = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    eng.run_outbox()
    assert dev.values["B-MOLD1.temp_sp"] == 235.0
    lots = ["L-00302", "L-00303", "L-00304", "L-00305"]

    def measure(lot_ids, start_min):
        with store.session() as s:
            for k, lot in enumerate(lot_ids):
                for j in range(3):
                    s.add(QualityMeasurement(
                        equipment_id="B-MOLD1", characteristic_id=CHAR, value=2.0,
                        in_spec=True, lot_id=lot,
                        ts=PLANT_START + timedelta(minutes=start_min + 30 * k + 5 * j)))
            s.commit()

    measure(lots[:3], 10)
    frozen_clock.advance(3 * 3600)
    assert eng.evaluate() == []  # the third lot may still be running
    measure(lots[3:], 100)
    [m] = eng.evaluate()
    assert m.label == "effective"
    assert (m.effect["scrap_rate_before"], m.effect["scrap_rate_after"]) == (0.3, 0.0)
    assert m.effect["lots"] == lots[:3] and m.effect["measurements_after"] == 9


def test_replan_through_the_real_scheduler(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock, use_scheduler=True)
    det = detection(kind="state", detector_id="unplanned_down", problem_key="A-MILL1:down",
                    equipment_id="A-MILL1", line_id="A", tag_id="A-MILL1.state",
                    priority="high", onset=PLANT_START, value=None,
                    summary="A-MILL1 down (unplanned)", ctx=None,
                    evidence={"state": "down_unplanned", "expected_downtime_h": 3})
    rid = eng.on_detection(det).recommendation_id
    with store.session() as s:
        r = s.get(Recommendation, rid)
        plan_id = json.loads(r.params)["plan_id"]
        assert r.decision_class == "replan" and s.get(Plan, plan_id).status == "proposed"
    with pytest.raises(Exception, match="may not decide replan"):
        eng.approve(rid, user_id="maya", pin=PINS["maya"])
    eng.approve(rid, user_id="sam", pin=PINS["sam"])
    [res] = eng.run_outbox()
    assert res.status == "done"
    with store.session() as s:
        assert s.get(Plan, plan_id).status == "active"
        assert len(s.exec(select(Plan).where(Plan.status == "active")).all()) == 1
