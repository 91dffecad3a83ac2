"""`loopline run --headless` end to end: a real twin process, real OPC UA and Modbus, the
real store — and a second process deciding while the runtime is live.

Each test starts the CLI as a child process, reads its JSON lines as they come and
waits on the events it needs (bounded by a deadline, never a fixed sleep), then stops
it with SIGTERM and checks the clean shutdown and the store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.store.raw import connect_raw
from runtime.twin import free_port

REPO = Path(__file__).resolve().parents[2]


class Headless:
    """A `loopline run --headless` child and the events it printed so far."""

    def __init__(self, tmp: Path, *args: str, db: str | None = None) -> None:
        self.db = db or str(tmp / "run.db")  # a SQLite file or a PostgreSQL URL
        cmd = [sys.executable, "-m", "console.cli", "run", "--headless", "--db", str(self.db),
               "--opcua-port", str(free_port()), "--modbus-port", str(free_port()),
               "--events", "-", "--no-ml", "--stats-every", "2", *args]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            ev = json.loads(line)  # every line must be one JSON object
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 120.0
                 ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"runtime exited ({self.proc.returncode}) first: "
                                         f"{self.proc.stderr.read() if self.proc.stderr else ''}")
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = sorted({e['kind'] for e in self.events})
                    raise AssertionError(f"no such event within {timeout:g} s; saw {kinds}")
                self._cv.wait(min(left, 1.0))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(10)
        self.stderr = self.proc.stderr.read() if self.proc.stderr else ""
        return rc

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        with self._cv:
            return [e for e in self.events if e["kind"] == kind
                    and all(e.get(k) == v for k, v in match.items())]


@pytest.mark.slow
def test_injected_bearing_fault_runs_the_whole_loop(tmp_path: Path, db_url: str) -> None:
    """detection → recommendation → decision → execution → outcome for the injected fault."""
    run = Headless(tmp_path, "--speed", "1800", "--seed", "3", "--approve", "auto",
                   "--inject", "bearing:A-LATHE1@10m", "--truth", str(tmp_path / "truth.jsonl"),
                   db=db_url)
    try:
        run.wait_for(lambda e: e["kind"] == "runtime" and e.get("event") == "started", 90)
        # before the failure the limits ask for a work order; if the fast twin outruns
        # them, the failure itself asks for a re-plan: either way the loop must close
        rec = run.wait_for(lambda e: e["kind"] == "recommendation"
                           and e.get("decision_class") in ("work_order", "replan")
                           and e.get("equipment_id") == "A-LATHE1", 150)
        rid = rec["recommendation_id"]
        run.wait_for(lambda e: e["kind"] == "execution" and e.get("recommendation_id") == rid
                     and e.get("status") == "done", 60)
        out = run.wait_for(lambda e: e["kind"] == "outcome"
                           and e.get("recommendation_id") == rid, 120)
    finally:
        rc = run.stop()
    assert rc == 0, run.stderr
    dets = [e for e in run.of("detection") if e.get("equipment_id") == "A-LATHE1"]
    assert dets, "the fault was never detected"
    decision = run.of("decision", recommendation_id=rid)
    assert [d["verdict"] for d in decision] == ["approved"]
    assert out["label"] in ("effective", "ineffective", "not_needed", "unknown")
    # every event carries UTC time and its context ids
    assert all(e["ts"].endswith("+00:00") for e in run.events)
    assert rec["line_id"] == "A"
    truth = [json.loads(x) for x in (tmp_path / "truth.jsonl").read_text().splitlines()]
    fault = next(t for t in truth if t.get("event") == "fault_started"
                 and t.get("equipment") == "A-LATHE1")
    if rec["decision_class"] == "work_order":
        assert rec["ts"] < fault["failure_at"].replace("Z", "+00:00")
    else:
        assert any(t.get("event") == "failure" for t in truth)
    # a clean stop: summary event last, nothing lost between driver and store
    summary = run.events[-1]
    assert summary["kind"] == "runtime" and summary["event"] == "summary"
    ing = summary["detail"]["ingest"]
    assert ing["received"] == ing["stored"] + ing["quarantined"] and ing["dropped"] == 0
    con = connect_raw(run.db)
    try:
        acts = con.execute("SELECT status FROM action WHERE recommendation_id=?",
                           (rid,)).fetchall()
        outcomes = con.execute("SELECT count(*) FROM outcome o JOIN action a "
                               "ON a.id = o.action_id WHERE a.recommendation_id=?",
                               (rid,)).fetchone()[0]
    finally:
        con.close()
    assert acts == [("done",)] and outcomes == 1


# A second process that has already imported the CLI and waits for the id on stdin: at
# 900x a setpoint's hour of validity is 4 wall seconds, less than a cold interpreter's
# start on a busy machine, and the test is about exactly-once, not start-up time.
_WARM_APPROVER = (
    "import sys\n"
    "from console.cli import main\n"
    "import console.commands.decide_cmd, core.engine.engine  # noqa: F401 (warm)\n"
    "print('ready', flush=True)\n"
    "rid = sys.stdin.readline().strip()\n"
    "sys.exit(main(['approve', rid, *sys.argv[1:]]))\n"
)


@pytest.mark.slow
def test_approval_from_a_second_process_is_executed_once(tmp_path: Path, db_url: str) -> None:
    run = Headless(tmp_path, "--speed", "900", "--seed", "3", "--approve", "never",
                   "--truth", str(tmp_path / "truth.jsonl"), db=db_url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    approver = subprocess.Popen(
        [sys.executable, "-c", _WARM_APPROVER, "--user", "quinn", "--pin", "4444", "--db",
         str(run.db)], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert approver.stdout is not None and approver.stdin is not None
        assert approver.stdout.readline().strip() == "ready", approver.stderr
        # quality may decide both what SPC brings first: a correction or a hold
        rec = run.wait_for(lambda e: e["kind"] == "recommendation"
                           and e.get("decision_class") in ("lot_hold", "setpoint")
                           and e.get("status") == "created", 150)
        rid = rec["recommendation_id"]
        assert not run.of("decision", recommendation_id=rid), "approved without anyone"
        _, err = approver.communicate(rid + "\n", timeout=60)
        assert approver.returncode == 0, err
        cmd = [sys.executable, "-m", "console.cli", "approve", rid, "--user", "quinn",
               "--pin", "4444", "--db", str(run.db)]
        again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 1 and "already" in again.stderr.lower(), again.stderr
        run.wait_for(lambda e: e["kind"] == "execution" and e.get("recommendation_id") == rid
                     and e.get("status") == "done", 60)
    finally:
        if approver.poll() is None:
            approver.kill()
            approver.wait()
        rc = run.stop()
    assert rc == 0, run.stderr
    done = [e for e in run.of("execution", recommendation_id=rid) if e["status"] == "done"]
    assert len(done) == 1
    con = connect_raw(run.db)
    try:
        acts = con.execute("SELECT status, attempts FROM action WHERE recommendation_id=?",
                           (rid,)).fetchall()
    finally:
        con.close()
    assert acts == [("done", 1)]
    truth = [json.loads(x) for x in (tmp_path / "truth.jsonl").read_text().splitlines()]
    held = [t for t in truth if t.get("event") == "lot_held"]
    assert len({t["lot"] for t in held}) == len(held), "a lot was held twice"
    if rec["decision_class"] == "setpoint":  # the machine saw exactly one write
        eq, name = rec["summary"].split()[1].split(".", 1)
        writes = [t for t in truth if t.get("event") == "setpoint"
                  and t.get("equipment") == eq and t.get("name") == name.rstrip(":")]
        assert len(writes) == 1, writes


def test_run_without_headless_or_with_bad_arguments_says_why(tmp_path: Path) -> None:
    from console.cli import main

    for argv, words in ((["run"], "--headless"),
                        (["run", "--headless", "--duration", "soon"], "bad time"),
                        (["run", "--headless", "--inject", "melt:A-LATHE1@1h"], "fault kind"),
                        (["run", "--headless", "--speed", "9000"], "out of range")):
        proc = subprocess.run([sys.executable, "-m", "console.cli", *argv, "--db",
                               str(tmp_path / "x.db")], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 1, (argv, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert callable(main)
