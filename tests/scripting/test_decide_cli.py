"""`loopline recs|approve|reject` against a store: outbox rows, refusals audited, and an
approval from a second process executed exactly once by this process's executor."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from engine.helpers import PINS, add_genealogy, bearing, make_engine, spc
from engine.helpers import PLANT_START as GENEALOGY_AT
from sqlmodel import select

from core import audit
from core.engine.executors import RecordingPlant, default_adapters
from core.engine.outbox import Executor
from core.events import EventBus, ExecutionEvent
from core.store.models import Action, Decision, Recommendation

REPO = Path(__file__).resolve().parents[2]
# the installed console script, as a shell would run it (python -m as a fallback)
_SCRIPT = Path(sys.executable).with_name("loopline")
LOOPLINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "console.cli"]


def _rec(store, loaded_config, clock, det) -> str:
    eng = make_engine(store, loaded_config, clock)
    rid = eng.on_detection(det).recommendation_id
    assert rid
    return rid


def _rows(store, model) -> list:
    with store.session() as s:
        return list(s.exec(select(model)).all())


def _audit_actions(store) -> list[str]:
    return [r.action for r in reversed(audit.recent(store.engine, 500))]


def test_recs_lists_open_recommendations_ranked(store, loaded_config, now_clock, cli):
    add_genealogy(store, GENEALOGY_AT)
    wo = _rec(store, loaded_config, now_clock, bearing(now_clock.now()))
    hold = _rec(store, loaded_config, now_clock, spc(now_clock.now()))
    rc, out, err = cli("recs", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert {r["id"] for r in rows} == {wo, hold}
    scores = [r["impact_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    rc, out, _ = cli("recs")
    assert rc == 0 and wo in out and "Recommendations" in out
    rc, _, err = cli("recs", "--status", "bogus")
    assert rc == 1 and "unknown status" in err


def test_approve_writes_decision_and_outbox_action(store, loaded_config, now_clock, cli):
    rid = _rec(store, loaded_config, now_clock, bearing(now_clock.now()))
    rc, out, err = cli("approve", rid, "--user", "maya", "--pin", PINS["maya"],
                       "--comment", "window tonight", "--json")
    assert rc == 0, err
    res = json.loads(out)
    [act] = _rows(store, Action)
    assert res["action_id"] == act.id and act.status == "pending"
    assert act.kind == "create_work_order" and act.idempotency_key == f"{rid}:{act.kind}"
    [dec] = _rows(store, Decision)
    assert (dec.verdict, dec.user_id, dec.comment) == ("approved", "maya", "window tonight")
    assert dec.signed_name and dec.record_hash
    assert _rows(store, Recommendation)[0].status == "approved"
    assert "decision.approved" in _audit_actions(store)
    assert audit.verify(store.engine).ok
    # a second approval is refused clearly and audited; still one action
    rc, _, err = cli("approve", rid, "--user", "tom", "--pin", PINS["tom"])
    assert rc == 1 and "already approved" in err and "Traceback" not in err
    assert len(_rows(store, Action)) == 1
    assert audit.verify(store.engine).ok


def test_wrong_pin_and_wrong_role_are_refused_and_audited(store, loaded_config, now_clock,
                                                          cli):
    rid = _rec(store, loaded_config, now_clock, bearing(now_clock.now()))
    rc, out, err = cli("approve", rid, "--user", "maya", "--pin", "0000")
    assert rc == 1 and out == ""
    assert err.startswith("loopline: ") and "PIN" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    refused = [r for r in audit.recent(store.engine, 50) if r.action == "decision.refused"]
    assert refused and refused[0].entity_id == rid and refused[0].actor == "maya"
    rc, _, err = cli("approve", rid, "--user", "olga", "--pin", PINS["olga"])
    assert rc == 1 and "may not" in err, err
    assert _rows(store, Action) == [] and _rows(store, Decision) == []
    assert _rows(store, Recommendation)[0].status == "proposed"
    assert audit.verify(store.engine).ok


def test_approve_unknown_and_expired(store, loaded_config, frozen_clock, cli):
    rc, _, err = cli("approve", "REC-nope", "--user", "maya", "--pin", PINS["maya"])
    assert rc == 1 and "no recommendation 'REC-nope'" in err
    # made at the 2026-01-05 plant start with a TTL of hours: stale by the wall clock now
    rid = _rec(store, loaded_config, frozen_clock, bearing(frozen_clock.now()))
    rc, _, err = cli("approve", rid, "--user", "maya", "--pin", PINS["maya"])
    assert rc == 1 and "expired" in err
    assert _rows(store, Recommendation)[0].status == "expired"
    assert audit.verify(store.engine).ok


def test_reject_with_reason(store, loaded_config, now_clock, cli):
    add_genealogy(store, GENEALOGY_AT)
    rid = _rec(store, loaded_config, now_clock, spc(now_clock.now()))
    rc, _, err = cli("reject", rid, "--user", "quinn", "--pin", PINS["quinn"],
                     "--reason", "other")
    assert rc == 1 and "needs a few words" in err
    rc, out, err = cli("reject", rid, "--user", "quinn", "--pin", PINS["quinn"],
                       "--reason", "false_alarm", "--text", "gauge was being calibrated")
    assert rc == 0, err
    assert f"{rid} rejected by quinn: false_alarm" in out
    [dec] = _rows(store, Decision)
    assert (dec.verdict, dec.reason, dec.comment) == ("rejected", "false_alarm",
                                                      "gauge was being calibrated")
    assert _rows(store, Recommendation)[0].status == "rejected"
    assert _rows(store, Action) == []
    assert "decision.rejected" in _audit_actions(store)
    rc, _, err = cli("reject", rid, "--user", "quinn", "--pin", PINS["quinn"],
                     "--reason", "not_now")
    assert rc == 1 and "already rejected" in err
    assert audit.verify(store.engine).ok


def test_approval_from_a_second_process_is_executed_once(store, loaded_config, now_clock,
                                                         config_path, db_path):
    add_genealogy(store, GENEALOGY_AT)
    rid = _rec(store, loaded_config, now_clock, spc(now_clock.now()))
    plant, bus = RecordingPlant(), EventBus()
    done = threading.Event()
    bus.subscribe(lambda ev: done.set() if isinstance(ev, ExecutionEvent)
                  and ev.status == "done" else None)
    executor = Executor(store, default_adapters(store, now_clock, plant), now_clock, bus)
    stop = threading.Event()
    runner = threading.Thread(target=executor.run_forever, args=(stop, 0.02), daemon=True)
    runner.start()
    try:
        proc = subprocess.run(
            [*LOOPLINE, "approve", rid, "--user", "quinn",
             "--pin", PINS["quinn"], "--config", str(config_path), "--db", str(db_path)],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert done.wait(timeout=60), "the executor never ran the approved action"
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert executor.run_once() == []
    [act] = _rows(store, Action)
    assert act.status == "done" and act.attempts == 1
    held = plant.named("hold_lot")
    assert len(held) == len({args[0] for args in held}) > 0 and plant.repeats == 0
    assert _rows(store, Recommendation)[0].status == "executed"
    assert audit.verify(store.engine).ok
