"""Detection → recommendation → e-signed decision → outbox → outcome, on a real SQLite store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from core import audit
from core.auth import AuthError, SigningSession
from core.engine.decide import DecisionError, verify_decisions
from core.engine.executors import RecordingPlant
from core.engine.learn import feedback
from core.engine.recommend import ranked, record_hash_of
from core.events import EventLog
from core.store.db import exec_sql
from core.store.models import (
    Action,
    Decision,
    EquipmentStateInterval,
    Hold,
    Lot,
    Outcome,
    Recommendation,
    WorkOrder,
)
from engine.helpers import PINS, PLANT_START, bearing, make_engine, scrap_setpoint, spc


def actions_of(store, rec_id: str) -> list[Action]:
    with store.session() as s:
        return list(s.exec(select(Action).where(Action.recommendation_id == rec_id)).all())


def audit_actions(store) -> list[str]:
    return [r.action for r in reversed(audit.recent(store.engine, 500))]


def rec(store, rec_id: str) -> Recommendation:
    with store.session() as s:
        row = s.get(Recommendation, rec_id)
    assert row is not None
    return row


def test_bearing_fault_to_outcome(store, loaded_config, frozen_clock):
    plant = RecordingPlant()
    eng = make_engine(store, loaded_config, frozen_clock, plant=plant, publish_detections=True)
    log = EventLog(eng.bus)
    predicted = PLANT_START + timedelta(hours=30)
    res = eng.on_detection(bearing(PLANT_START, predicted=predicted))
    assert res.outcome == "created"
    r = rec(store, res.recommendation_id)
    assert (r.decision_class, r.action, r.status) == ("work_order", "create_work_order",
                                                      "proposed")
    assert "bearing temperature rising 2.1 °C/h over 6 h" in r.rationale
    assert "vibration RMS 40 % above this recipe's baseline" in r.rationale
    params = json.loads(r.params)
    assert params["window_id"] == "MW-A-01"  # next window of line A after 06:00 Monday
    assert r.required_role == "maintenance"

    frozen_clock.advance(60)
    appr = eng.approve(r.id, user_id="maya", pin=PINS["maya"], comment="planned in MW")
    assert appr.signature is not None and appr.signature.record_hash == record_hash_of(r)
    with store.session() as s:
        d = s.exec(select(Decision).where(Decision.recommendation_id == r.id)).one()
    assert (d.verdict, d.signed_name, d.user_id) == ("approved", "Maya Lindqvist", "maya")
    assert d.record_hash == record_hash_of(r)
    act = actions_of(store, r.id)
    assert [(a.status, a.idempotency_key) for a in act] == [
        ("pending", f"{r.id}:create_work_order")]

    done = eng.run_outbox()
    assert [x.status for x in done] == ["done"]
    assert rec(store, r.id).status == "executed"
    with store.session() as s:
        wos = s.exec(select(WorkOrder)).all()
    assert len(wos) == 1 and wos[0].window_id == "MW-A-01" and wos[0].status == "scheduled"
    assert wos[0].recommendation_id == r.id

    frozen_clock.set(wos[0].window_end)  # maintenance done in the window
    with pytest.raises(AuthError, match="may not decide work_order"):
        eng.complete_work_order(wos[0].id, "quinn", PINS["quinn"])
    assert audit.recent(store.engine, 1)[0].action == "decision.refused"
    eng.complete_work_order(wos[0].id, "maya", PINS["maya"])
    eng.run_outbox()
    assert plant.named("complete_work_order") == [("A-LATHE1", wos[0].id, "bearing",
                                                   f"{wos[0].id}:complete")]
    assert eng.evaluate() == []  # window still open: until predicted failure + margin
    frozen_clock.set(predicted + timedelta(hours=25))
    [m] = eng.evaluate()
    assert m.label == "effective" and m.effect["failure_avoided"] is True
    with store.session() as s:
        out = s.exec(select(Outcome)).one()
    assert out.label == "effective"
    assert eng.evaluate() == []  # recorded once
    tr = eng.track_record(PLANT_START)
    assert tr["work_order"]["approved"] == 1 and tr["work_order"]["precision"] == 1.0
    kinds = [e.kind for e in log.events]
    for k in ("detection", "recommendation", "decision", "execution", "outcome"):
        assert k in kinds
    assert all(json.loads(e.to_json())["ts"].endswith("+00:00") for e in log.events)


def test_failure_inside_window_is_ineffective(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    res = eng.on_detection(bearing(PLANT_START, predicted=PLANT_START + timedelta(hours=30)))
    eng.approve(res.recommendation_id, user_id="tom", pin=PINS["tom"])
    eng.run_outbox()
    with store.session() as s:
        s.add(EquipmentStateInterval(equipment_id="A-LATHE1", state="down_unplanned",
                                     reason_code="bearing",
                                     start=PLANT_START + timedelta(hours=5),
                                     end=PLANT_START + timedelta(hours=9)))
        s.commit()
    frozen_clock.advance(10 * 3600)
    [m] = eng.evaluate()
    assert m.label == "ineffective"
    assert m.effect["failure_avoided"] is False and m.effect["unplanned_down_h"] == 4.0


def test_duplicate_detection_merges_into_one_open_recommendation(store, loaded_config,
                                                                  frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    first = eng.on_detection(bearing(PLANT_START, priority="medium"))
    frozen_clock.advance(300)
    second = eng.on_detection(bearing(PLANT_START + timedelta(minutes=5), slope=3.4,
                                      priority="high"))
    assert (first.outcome, second.outcome) == ("created", "merged")
    assert first.recommendation_id == second.recommendation_id
    with store.session() as s:
        rows = s.exec(select(Recommendation)).all()
    assert len(rows) == 1
    r = rows[0]
    ev = json.loads(r.evidence)
    assert ev["count"] == 2
    assert "rising 3.4 °C/h" in r.rationale  # the newest evidence is what a person reads
    assert r.confidence == pytest.approx(0.8)  # raised by the stronger detection
    assert "rec.merged" in audit_actions(store)


def test_better_recommendation_supersedes(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    weak = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5, key="A:problem"))
    assert weak.outcome == "created"
    strong = eng.on_detection(bearing(PLANT_START, key="A:problem"))
    assert strong.outcome == "superseded" and strong.superseded_id == weak.recommendation_id
    old = rec(store, weak.recommendation_id)
    assert old.status == "superseded" and old.superseded_by == strong.recommendation_id
    assert [r.id for r in ranked(store)] == [strong.recommendation_id]
    with pytest.raises(DecisionError, match="superseded by"):
        eng.approve(old.id, user_id="quinn", pin=PINS["quinn"])


def test_ranked_by_expected_impact(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    a = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
    b = eng.on_detection(bearing(PLANT_START)).recommendation_id
    assert [r.id for r in ranked(store)] == [b, a]


def test_withheld_when_inputs_are_bad_then_restored(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    res = eng.on_detection(bearing(PLANT_START, quality="bad"))
    assert res.outcome == "withheld"
    r = rec(store, res.recommendation_id)
    assert r.status == "withheld" and "WITHHELD" in r.rationale
    with pytest.raises(DecisionError, match="withheld"):
        eng.approve(r.id, user_id="maya", pin=PINS["maya"])
    assert actions_of(store, r.id) == []
    again = eng.on_detection(bearing(PLANT_START))
    assert again.outcome == "merged" and rec(store, r.id).status == "proposed"
    assert "rec.restored" in audit_actions(store)


def test_expired_recommendation_refused(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    frozen_clock.advance(9 * 3600)  # work-order recommendations live 8 h
    with pytest.raises(DecisionError, match="expired at 2026-01-05 14:00:00 UTC"):
        eng.approve(rid, user_id="maya", pin=PINS["maya"])
    assert rec(store, rid).status == "expired"
    acts = audit_actions(store)
    assert "rec.expired" in acts and acts[-1] == "decision.refused"
    assert actions_of(store, rid) == []


def test_double_approval_refused(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    eng.approve(rid, user_id="maya", pin=PINS["maya"])
    with pytest.raises(DecisionError, match="already approved by Maya Lindqvist"):
        eng.approve(rid, user_id="tom", pin=PINS["tom"])
    assert len(actions_of(store, rid)) == 1
    assert audit.recent(store.engine, 1)[0].action == "decision.refused"


def test_wrong_role_refused_and_audited(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    with pytest.raises(AuthError, match=r"Sam Okafor \(shift_lead\) may not decide work_order; "
                                        "allowed: maintenance, admin"):
        eng.approve(rid, user_id="sam", pin=PINS["sam"])
    last = audit.recent(store.engine, 1)[0]
    assert (last.action, last.actor, last.entity_id) == ("decision.refused", "sam", rid)
    assert rec(store, rid).status == "proposed" and actions_of(store, rid) == []


def test_wrong_pin_refused_and_audited(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    with pytest.raises(AuthError, match="wrong PIN for Maya Lindqvist; 4 attempt"):
        eng.approve(rid, user_id="maya", pin="0000")
    acts = audit_actions(store)
    assert acts[-2:] == ["auth.failed_pin", "decision.refused"]
    assert rec(store, rid).status == "proposed" and actions_of(store, rid) == []
    eng.approve(rid, user_id="maya", pin=PINS["maya"])  # the right PIN still works
    assert rec(store, rid).status == "approved"


def test_changed_since_opened_refused(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    seen = record_hash_of(rec(store, rid))
    frozen_clock.advance(60)
    eng.on_detection(bearing(PLANT_START, slope=5.0))
    with pytest.raises(DecisionError, match="changed since you opened it"):
        eng.approve(rid, user_id="maya", pin=PINS["maya"], seen_hash=seen)


def test_signing_session_pin_again_after_idle(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    r1 = eng.on_detection(bearing(PLANT_START)).recommendation_id
    r2 = eng.on_detection(bearing(PLANT_START, key="A-LATHE1:other")).recommendation_id
    sess = SigningSession(eng.auth)
    sess.sign_in("maya", PINS["maya"])
    eng.approve(r1, session=sess)  # no PIN inside the session
    frozen_clock.advance(301)
    with pytest.raises(AuthError, match="idle"):
        eng.approve(r2, session=sess)
    assert audit.recent(store.engine, 1)[0].action == "decision.refused"
    eng.approve(r2, session=sess, pin=PINS["maya"])
    assert rec(store, r2).status == "approved"


def test_reject_with_reason_is_feedback(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    with pytest.raises(DecisionError, match="reason must be one of false_alarm, not_now"):
        eng.reject(rid, "maya", PINS["maya"], "meh")
    with pytest.raises(DecisionError, match="needs a few words"):
        eng.reject(rid, "maya", PINS["maya"], "other")
    eng.reject(rid, "maya", PINS["maya"], "false_alarm", "sensor was being cleaned")
    r = rec(store, rid)
    assert r.status == "rejected"
    with store.session() as s:
        d = s.exec(select(Decision).where(Decision.recommendation_id == rid)).one()
    assert (d.verdict, d.reason, d.comment) == ("rejected", "false_alarm",
                                                "sensor was being cleaned")
    with pytest.raises(DecisionError, match="already rejected by Maya Lindqvist"):
        eng.approve(rid, user_id="tom", pin=PINS["tom"])
    tr = eng.track_record(PLANT_START)["work_order"]
    assert tr["rejected"] == 1 and tr["acceptance_rate"] == 0.0
    assert tr["rejection_reasons"] == {"false_alarm": 1}
    [fb] = feedback(store, PLANT_START)
    assert (fb["detector_id"], fb["reason"], fb["wrong"], fb["by"]) == (
        "bearing_temp_high", "false_alarm", "detection", "maya")


def test_two_person_rule_for_setpoints(store, loaded_config, frozen_clock):
    loaded_config.config.auth.two_person_setpoint = True
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
    first = eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    assert first.waiting_for_second and first.action_id is None
    assert rec(store, rid).status == "proposed" and actions_of(store, rid) == []
    with pytest.raises(AuthError, match="second, different person"):
        eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    second = eng.approve(rid, user_id="sam", pin=PINS["sam"])
    assert second.action_id is not None and len(actions_of(store, rid)) == 1


def test_advise_only_class_is_not_executed(store, loaded_config, frozen_clock):
    loaded_config.config.autonomy.work_order = "advise"
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    with pytest.raises(DecisionError, match="advise-only"):
        eng.approve(rid, user_id="maya", pin=PINS["maya"])
    assert actions_of(store, rid) == []


def test_promotion_to_auto_needs_admin_and_allows_undo(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    with pytest.raises(AuthError, match="may not change autonomy"):
        eng.decider.set_autonomy("work_order", "auto", "maya", PINS["maya"])
    with pytest.raises(AuthError, match="wrong PIN"):
        eng.decider.set_autonomy("work_order", "auto", "ada", "0000")
    assert eng.decider.autonomy_for("work_order") == "approve"
    eng.decider.set_autonomy("work_order", "auto", "ada", PINS["ada"])
    # persisted: a new engine over the same store sees the promotion
    eng2 = make_engine(store, loaded_config, frozen_clock)
    assert eng2.decider.autonomy_for("work_order") == "auto"
    assert "autonomy.changed" in audit_actions(store)

    # failure predicted in two days: the job is planned into the next window
    rid = eng2.on_detection(bearing(PLANT_START, predicted=PLANT_START + timedelta(days=2))
                            ).recommendation_id
    [act] = actions_of(store, rid)
    assert act.status == "pending" and "undo_until" in json.loads(act.params)
    with store.session() as s:
        d = s.exec(select(Decision).where(Decision.recommendation_id == rid)).one()
    assert d.user_id == "system:autonomy"
    eng2.run_outbox()
    with store.session() as s:
        wo = s.exec(select(WorkOrder)).one()
    assert wo.status == "scheduled"
    comp = eng2.decider.undo(act.id, "maya", PINS["maya"], "planned stop anyway")
    assert comp is not None
    eng2.run_outbox()
    with store.session() as s:
        assert s.get(WorkOrder, wo.id).status == "cancelled"
        assert s.get(Recommendation, rid).status == "undone"
    assert eng2.evaluate() == []  # an undone action is not scored
    frozen_clock.advance(901)
    rid2 = eng2.on_detection(bearing(PLANT_START, key="A-LATHE1:b2")).recommendation_id
    [act2] = actions_of(store, rid2)
    frozen_clock.advance(901)
    with pytest.raises(DecisionError, match="undo window"):
        eng2.decider.undo(act2.id, "maya", PINS["maya"])


def test_hold_recommendation_and_release_outcome(store, loaded_config, frozen_clock):
    from engine.helpers import add_genealogy
    add_genealogy(store, PLANT_START)
    plant = RecordingPlant()
    eng = make_engine(store, loaded_config, frozen_clock, plant=plant)
    rid = eng.on_detection(spc(PLANT_START)).recommendation_id
    r = rec(store, rid)
    assert r.decision_class == "lot_hold"
    assert json.loads(r.params)["lots"] == ["L-00101", "L-00102", "L-00104"]
    assert "batch B-0001 also went into L-00102, L-00104" in r.rationale
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    [done] = eng.run_outbox()
    hold_id = done.result["hold_id"]
    with store.session() as s:
        hold = s.get(Hold, hold_id)
        assert (hold.status, hold.created_by, hold.recommendation_id) == ("open", "quinn", rid)
        assert s.get(Lot, "L-00104").status == "held" and s.get(Lot, "L-00201").status == "planned"
    assert [a[0] for a in plant.named("hold_lot")] == ["L-00101", "L-00102", "L-00104"]
    rel = eng.request_release(hold_id, "scrap", "quinn", "diameter out of tolerance")
    eng.approve(rel, user_id="quinn", pin=PINS["quinn"])
    eng.run_outbox()
    with store.session() as s:
        assert s.get(Hold, hold_id).disposition == "scrap"
        assert s.get(Lot, "L-00102").status == "scrapped"
    assert len(plant.named("release_lot")) == 3
    [m] = eng.evaluate()
    assert m.label == "effective" and m.effect["disposition"] == "scrap"
    tr = eng.track_record(PLANT_START)
    assert tr["lot_hold"]["precision"] == 1.0 and tr["lot_hold"]["realised_impact"] == 3.0


def test_repeat_after_execution_does_not_duplicate_the_work_order(store, loaded_config,
                                                                   frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(bearing(PLANT_START)).recommendation_id
    eng.approve(rid, user_id="maya", pin=PINS["maya"])
    during = eng.on_detection(bearing(PLANT_START + timedelta(minutes=1)))
    assert (during.outcome, during.recommendation_id) == ("in_flight", rid)
    eng.run_outbox()
    after = eng.on_detection(bearing(PLANT_START + timedelta(minutes=2)))
    assert after.outcome == "ignored"  # the scheduled WO already answers this fault
    with store.session() as s:
        assert len(s.exec(select(WorkOrder)).all()) == 1
        assert len(s.exec(select(Recommendation)).all()) == 1
        d = s.exec(select(Decision)).one()
        # the signature still matches the executed row: it can be re-verified at any time
        assert d.record_hash == record_hash_of(s.get(Recommendation, rid))
    assert verify_decisions(store, rid) == [(d.id, True)]
    with store.engine.begin() as conn:  # someone edits the approved content afterwards
        exec_sql(conn, "UPDATE recommendation SET params = '{}' WHERE id = ?", (rid,))
    assert verify_decisions(store, rid) == [(d.id, False)]


def test_repeated_down_detection_reuses_the_proposed_plan(store, loaded_config, frozen_clock):
    from engine.helpers import detection
    calls: list[str] = []

    def small_replanner(equipment_id, start, duration, now):
        calls.append(equipment_id)
        return "PLAN-X", {"moved_orders": [{"order_id": "PO-0002"}], "strategy": "repair",
                          "weighted_tardiness_before": 120, "weighted_tardiness_after": 60}

    eng = make_engine(store, loaded_config, frozen_clock, replanner=small_replanner)

    def down(minute: int):
        return detection(kind="state", detector_id="unplanned_down", problem_key="A-MILL1:down",
                         equipment_id="A-MILL1", line_id="A", tag_id="A-MILL1.state",
                         priority="high", onset=PLANT_START + timedelta(minutes=minute),
                         value=None, summary="A-MILL1 down", ctx=None,
                         evidence={"state": "down_unplanned"})

    first = eng.on_detection(down(0))
    second = eng.on_detection(down(1))
    assert (first.outcome, second.outcome) == ("created", "merged")
    assert calls == ["A-MILL1"]
    r = rec(store, first.recommendation_id)
    assert json.loads(r.params)["plan_id"] == "PLAN-X" and "1 order(s) move" in r.rationale
    assert "weighted tardiness 120 → 60 min" in r.rationale  # the plan's cost is shown


def test_concurrent_submissions_make_one_recommendation(store, loaded_config, frozen_clock):
    import threading
    engines = [make_engine(store, loaded_config, frozen_clock) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def go(e):
        try:
            barrier.wait()
            e.on_detection(bearing(PLANT_START))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.session() as s:
        rows = s.exec(select(Recommendation)).all()
    assert len(rows) == 1 and json.loads(rows[0].evidence)["count"] == 4
