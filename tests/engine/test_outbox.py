"""Exactly once: approve → outbox → adapters, across dropped engines and killed processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from core import audit
from core.engine.decide import idempotency_key
from core.engine.executors import MemoryDevice, RecordingPlant
from core.engine.outbox import Executor
from core.store.models import Action, Hold, HoldLot, Lot, Meta, Recommendation, Stock
from engine.helpers import (
    PINS,
    PLANT_START,
    FileDevice,
    add_genealogy,
    detection,
    make_engine,
    scrap_setpoint,
    spc,
)

HERE = Path(__file__).resolve().parent


def rows(store, model) -> list:
    with store.session() as s:
        return list(s.exec(select(model)).all())


def one_action(store) -> Action:
    [a] = rows(store, Action)
    return a


def audit_actions(store) -> list[str]:
    return [r.action for r in reversed(audit.recent(store.engine, 500))]


def test_approved_in_one_engine_executed_by_another(store, loaded_config, frozen_clock):
    add_genealogy(store, PLANT_START)
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(spc(PLANT_START)).recommendation_id
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    del eng  # the process that approved is gone before executing
    plant = RecordingPlant()
    eng2 = make_engine(store, loaded_config, frozen_clock, plant=plant)
    assert eng2.executor.recover() == []  # nothing was running
    [res] = eng2.run_outbox()
    assert res.status == "done" and res.result["already_done"] is False
    assert eng2.run_outbox() == []  # nothing left
    assert len(rows(store, Hold)) == 1 and len(rows(store, HoldLot)) == 3
    assert len(plant.named("hold_lot")) == 3
    with store.session() as s:
        assert s.get(Lot, "L-00102").status == "held"
        assert s.get(Recommendation, rid).status == "executed"


def test_action_left_running_is_resumed_without_duplicate(store, loaded_config, frozen_clock):
    add_genealogy(store, PLANT_START)
    eng = make_engine(store, loaded_config, frozen_clock)
    rid = eng.on_detection(spc(PLANT_START)).recommendation_id
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    act = one_action(store)
    view = eng.executor.claim(act.id)  # the dead process claimed it …
    assert view is not None
    eng.executor.adapters["hold_lots"].execute(view)  # … did the work, died before 'done'
    assert one_action(store).status == "running"
    assert eng.executor.claim(act.id) is None  # nobody else can claim a running action
    plant = RecordingPlant()
    eng2 = make_engine(store, loaded_config, frozen_clock, plant=plant)
    assert eng2.executor.recover() == [act.id]
    [res] = eng2.run_outbox()
    assert res.status == "done" and res.result["already_done"] is True
    a = one_action(store)
    assert (a.status, a.attempts) == ("done", 2)
    assert len(rows(store, Hold)) == 1 and len(rows(store, HoldLot)) == 3
    acts = audit_actions(store)
    assert acts.count("hold.created") == 1 and "action.resumed" in acts


def test_device_write_resumed_after_crash_writes_once(store, loaded_config, frozen_clock,
                                                      tmp_path):
    class Killed(BaseException):
        """Stands in for the process dying between the write and its read-back."""

    class DyingDevice(MemoryDevice):
        def write(self, tag_id: str, value: float) -> None:
            super().write(tag_id, value)
            raise Killed()

    dev = DyingDevice({"B-MOLD1.temp_sp": 240.0})
    eng = make_engine(store, loaded_config, frozen_clock, device=dev)
    rid = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    with pytest.raises(Killed):
        eng.run_outbox()
    assert one_action(store).status == "running"
    survivor = MemoryDevice(dict(dev.values))  # the device kept the written value
    eng2 = make_engine(store, loaded_config, frozen_clock, device=survivor)
    eng2.executor.recover()
    [res] = eng2.run_outbox()
    assert res.status == "done" and res.result["written"] is False
    assert dev.writes == [("B-MOLD1.temp_sp", 235.0)] and survivor.writes == []


def test_read_back_mismatch_fails_with_reason(store, loaded_config, frozen_clock):
    dev = MemoryDevice({"B-MOLD1.temp_sp": 240.0}, stuck={"B-MOLD1.temp_sp": 240.0})
    eng = make_engine(store, loaded_config, frozen_clock, device=dev)
    rid = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    [res] = eng.run_outbox()
    assert res.status == "failed"
    assert res.result["error"] == ("read-back mismatch on B-MOLD1.temp_sp: wrote 235, device "
                                   "reports 240.0")
    a = one_action(store)
    assert a.status == "failed" and "read-back mismatch" in json.loads(a.result)["error"]
    with store.session() as s:
        assert s.get(Recommendation, rid).status == "failed"
    assert "action.failed" in audit_actions(store)


def test_interlock_refuses_out_of_limit_setpoint_before_writing(store, loaded_config,
                                                                frozen_clock):
    dev = MemoryDevice({"B-MOLD1.temp_sp": 240.0})
    eng = make_engine(store, loaded_config, frozen_clock, device=dev)
    # the rule clamps a request beyond the recipe range (R-HL molder temp 225..255 °C)
    rid = eng.on_detection(scrap_setpoint(PLANT_START, target=300.0)).recommendation_id
    with store.session() as s:
        r = s.get(Recommendation, rid)
    assert json.loads(r.params)["value"] == 255.0 and "clamped to the recipe limit" in r.rationale
    # an action carrying an out-of-limit value (tampered, or limits changed) is refused
    params = {**json.loads(r.params), "value": 300.0}
    with store.session() as s:
        s.add(Action(kind="write_setpoint", params=json.dumps(params),
                     idempotency_key="manual:1", created_at=PLANT_START))
        s.commit()
    [res] = eng.run_outbox()
    assert res.status == "failed"
    assert res.result["error"].startswith("interlock: B-MOLD1.temp_sp = 300 is outside the "
                                          "recipe limits 225..255")
    assert dev.writes == []


def test_replenish_moves_stock_once(store, loaded_config, frozen_clock):
    plant = RecordingPlant()  # repeats of the same command are kept once, as the twin does
    eng = make_engine(store, loaded_config, frozen_clock, plant=plant)
    det = detection(kind="material", detector_id="material_short", problem_key="A:M-ST20",
                    equipment_id="A-LATHE1", line_id="A", tag_id=None, priority="medium",
                    onset=PLANT_START, value=None, summary="M-ST20 short at 14:00",
                    ctx=None, evidence={"material_id": "M-ST20", "shortage_qty": 400})
    res = eng.on_detection(det)
    # replenish is 'auto' in config.toml: approved by policy, no person involved
    [act] = rows(store, Action)
    assert act.kind == "replenish" and act.idempotency_key == idempotency_key(
        res.recommendation_id, "replenish")
    [done] = eng.run_outbox()
    assert done.status == "done"
    with store.session() as s:
        s.get(Action, act.id)
        row = s.get(Action, act.id)
        row.status = "pending"  # as if a crash lost the 'done' but not the move
        s.add(row)
        s.commit()
    [again] = eng.run_outbox()
    assert again.result["already_done"] is True
    assert plant.named("replenish") == [("A", "M-ST20", "B-0003", act.idempotency_key)]
    with store.session() as s:
        assert s.get(Stock, "WH:B-0003").quantity == 600.0
        assert s.get(Stock, "A-LS:B-0003").quantity == 400.0
        assert s.get(Meta, f"outbox:{act.idempotency_key}") is not None


class RefusingPlant(RecordingPlant):
    """A line whose command tag takes no replenish request (a Modbus line: no code)."""

    def replenish(self, line_id, material_id, batch_id, key):
        from core.engine.executors.base import ActionFailed

        raise ActionFailed(f"line {line_id} has no command code for replenish")


def test_a_failed_replenish_leaves_the_stock_where_it_was(store, loaded_config,
                                                          frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock, plant=RefusingPlant())
    det = detection(kind="material", detector_id="material_short", problem_key="A:M-ST20",
                    equipment_id="A-LATHE1", line_id="A", tag_id=None, priority="medium",
                    onset=PLANT_START, value=None, summary="M-ST20 short at 14:00",
                    ctx=None, evidence={"material_id": "M-ST20", "shortage_qty": 400})
    eng.on_detection(det)
    [res] = eng.run_outbox()
    assert res.status == "failed" and "no command code" in res.result["error"]
    with store.session() as s:  # store and action agree: nothing moved
        assert s.get(Stock, "WH:B-0003").quantity == 1000.0
        assert s.get(Stock, "A-LS:B-0003") is None
    assert "stock.moved" not in audit_actions(store)


def test_no_adapter_and_unknown_rows_fail_clearly(store, loaded_config, frozen_clock):
    ex = Executor(store, {}, frozen_clock)
    with store.session() as s:
        s.add(Action(kind="launch_rocket", params="{}", idempotency_key="k:1",
                     created_at=PLANT_START))
        s.commit()
    [res] = ex.run_once()
    assert res.result["error"] == "no adapter for action kind 'launch_rocket' is configured"


def _run_child(db: Path | str, mode: str, device_dir: Path, until: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    proc = subprocess.Popen([sys.executable, str(HERE / "child_engine.py"), str(db), mode,
                             str(device_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        seen = []
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line.strip())
            if line.strip().startswith(until):
                break
        else:
            raise AssertionError(f"child ended early: {seen} {proc.stderr.read()}")  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode,until", [("after_approval", "APPROVED"),
                                        ("in_hold_adapter", "IN_ADAPTER")])
def test_sigkill_between_approval_and_execution_holds_once(store, loaded_config, frozen_clock,
                                                           tmp_path, mode, until):
    add_genealogy(store, PLANT_START)
    _run_child(store.target, mode, tmp_path / "dev", until)
    a = one_action(store)
    assert a.status == ("pending" if mode == "after_approval" else "running")
    plant = RecordingPlant()
    eng = make_engine(store, loaded_config, frozen_clock, plant=plant)
    eng.executor.recover()
    [res] = eng.run_outbox()
    assert res.status == "done"
    assert len(rows(store, Hold)) == 1 and len(rows(store, HoldLot)) == 3
    assert one_action(store).status == "done"
    assert [x[0] for x in plant.named("hold_lot")] == ["L-00101", "L-00102", "L-00104"]


def test_sigkill_after_device_write_writes_once(store, loaded_config, frozen_clock, tmp_path):
    _run_child(store.target, "in_device_adapter", tmp_path / "dev", "IN_ADAPTER")
    dev = FileDevice(tmp_path / "dev")
    assert dev.writes() == ["B-MOLD1.temp_sp=235.0"] and one_action(store).status == "running"
    eng = make_engine(store, loaded_config, frozen_clock, device=dev)
    assert eng.executor.recover() == [one_action(store).id]
    [res] = eng.run_outbox()
    assert res.status == "done" and res.result["written"] is False
    assert dev.writes() == ["B-MOLD1.temp_sp=235.0"]  # exactly one device write


def test_async_device_writer_and_transient_retry(store, loaded_config, frozen_clock):
    class FlakyAsyncDevice:
        """An async writer (like a driver) whose first write finds the link down."""

        def __init__(self) -> None:
            self.value = 240.0
            self.fail_next = True
            self.writes: list[float] = []

        async def read(self, tag_id: str) -> float:
            return self.value

        async def write(self, tag_id: str, value: float) -> None:
            if self.fail_next:
                self.fail_next = False
                raise ConnectionError("connection reset by peer")
            self.writes.append(value)
            self.value = value

    dev = FlakyAsyncDevice()
    eng = make_engine(store, loaded_config, frozen_clock, device=dev)
    rid = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
    eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    [first] = eng.run_outbox()
    assert first.status == "pending" and "connection reset" in first.result["error"]
    [second] = eng.run_outbox()
    assert second.status == "done" and second.result["read_back"] == 235.0
    a = one_action(store)
    assert (a.status, a.attempts, dev.writes) == ("done", 2, [235.0])
    assert "action.retry" in audit_actions(store)


def test_executor_thread_drains_the_outbox_until_stopped(store, loaded_config, frozen_clock):
    import threading

    from core.events import ExecutionEvent
    add_genealogy(store, PLANT_START)
    eng = make_engine(store, loaded_config, frozen_clock)
    finished = threading.Event()
    eng.bus.subscribe(lambda ev: finished.set() if isinstance(ev, ExecutionEvent)
                      and ev.status == "done" else None)
    stop = threading.Event()
    worker = threading.Thread(target=eng.executor.run_forever, args=(stop, 0.05))
    worker.start()
    try:
        rid = eng.on_detection(spc(PLANT_START)).recommendation_id
        eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
        assert finished.wait(60)
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive()
    assert one_action(store).status == "done" and len(rows(store, Hold)) == 1


def test_a_failing_rule_is_audited_and_does_not_raise(store, loaded_config, frozen_clock):
    def broken(*_a):
        raise RuntimeError("solver crashed")

    eng = make_engine(store, loaded_config, frozen_clock, replanner=broken)
    det = detection(kind="state", detector_id="unplanned_down", problem_key="s:A-MILL1",
                    equipment_id="A-MILL1", line_id="A", tag_id="A-MILL1.state",
                    priority="high", onset=PLANT_START, value=None, summary="down",
                    evidence={"problem": "down_unplanned"})
    res = eng.on_detection(det)
    assert res.outcome == "ignored" and "solver crashed" in res.message
    last = audit.recent(store.engine, 1)[0]
    assert last.action == "rec.rule_failed" and "solver crashed" in last.detail["error"]
