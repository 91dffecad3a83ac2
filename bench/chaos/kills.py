"""SIGKILL of the runtime at random points (start-up, twin start, mid-execution), and the
twin killed and restarted under a running runtime."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.chaos import ROOT, Row, child_env
from bench.chaos.procs import (
    Headless,
    audit_ok,
    count,
    doubled_actions,
    integrity,
    reap,
    twins_of_port,
    wait_gone,
)

RUN_ARGS = ["--speed", "600", "--approve", "auto", "--faults-per-day", "40", "--no-ml",
            "--stats-every", "1"]


# every stored sample: recent rows, the chunks compaction made of older ones, text values
STORED_SAMPLES = ("SELECT (SELECT count(*) FROM sample)"
                  " + (SELECT coalesce(sum(n), 0) FROM sample_chunk)"
                  " + (SELECT count(*) FROM sample_text)")

def runtime_kills(workdir: Path, seed: int, trials: int, max_at_s: float = 14.0) -> Row:
    """Kill points: a third within 0.5 s of the twin's spawn (its servers still starting),
    a third the moment an action is claimed (mid-execution), a third at a random time in
    [0.1 s, max_at_s] (imports, store open, drivers connecting, the loop running)."""
    rng = random.Random(seed)
    row = Row("runtime SIGKILL")
    db = workdir / "kills.db"
    orphans = integrity_bad = audit_bad = mid_action = 0
    resumed = executed = 0
    last_samples = 0
    for i in range(trials):
        row.trials += 1
        at = rng.uniform(0.1, max_at_s)
        run = Headless(db, [*RUN_ARGS, "--seed", str(rng.randrange(1000))]).start(f"k{i}")
        t0 = time.monotonic()
        if i % 3 == 0:  # the worst moment: the twin spawned, still starting its servers
            while not twins_of_port(run.opcua_port) and time.monotonic() - t0 < 60:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
        elif i % 3 == 1:  # mid-execution: right after an action was claimed
            if run.wait_for(lambda e: e.get("kind") == "execution"
                            and e.get("status") == "running", 90) is not None:
                mid_action += 1
        else:
            time.sleep(at)
        at = time.monotonic() - t0
        assert run.proc is not None
        run.kill()
        left = wait_gone(lambda r=run: twins_of_port(r.opcua_port), 8.0)
        if left:
            orphans += 1
            row.fail(f"kill at {at:.1f} s left twin pid(s) {left} serving")
            reap(left)
        if not db.exists():
            continue  # killed before the store was created
        ic = integrity(db)
        if ic != "ok":
            integrity_bad += 1
            row.fail(f"kill at {at:.1f} s: integrity_check {ic}")
        ok, text = audit_ok(db)
        if not ok:
            audit_bad += 1
            row.fail(f"kill at {at:.1f} s: audit verify: {text[-200:]}")
        n = count(db, STORED_SAMPLES)
        if n < last_samples:
            row.data_lost += last_samples - n
            row.fail(f"kill at {at:.1f} s: stored samples went from {last_samples} to {n}")
        last_samples = max(last_samples, n)
        run.poll_events()
        resumed += sum(1 for e in run.events if e.get("status") == "resumed")
        executed += sum(1 for e in run.events if e.get("kind") == "execution"
                        and e.get("status") == "done")
    # a last clean start must come up (no port held, no lock left) and resume what was left
    final = Headless(db, [*RUN_ARGS, "--seed", "1"]).start("final")
    up = final.wait_for(lambda e: e.get("kind") == "runtime" and e.get("event") == "started",
                        90)
    if up is None:
        row.fail(f"the start after the kills did not come up: {final.stderr[-300:]}")
    time.sleep(3)
    final.stop()
    resumed += sum(1 for e in final.events if e.get("status") == "resumed")
    if db.exists():
        row.doubled = doubled_actions(db)
        if row.doubled:
            row.fail(f"{row.doubled} action(s) executed twice")
    row.note = (f"integrity ok {row.trials - integrity_bad}/{row.trials}, audit ok "
                f"{row.trials - audit_bad}/{row.trials}, orphans {orphans}, killed "
                f"mid-action {mid_action}, actions done {executed}, resumed {resumed}, "
                f"samples kept {last_samples:,}")
    return row


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _twin_config(workdir: Path, op: int, mp: int) -> Path:
    """config.toml pointing at an external twin on these ports, the simulator off."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace("opc.tcp://127.0.0.1:4840/", f"opc.tcp://127.0.0.1:{op}/")
    text = text.replace("port = 5020", f"port = {mp}")
    text = text.replace('master_data = "data/master.toml"',
                        f'master_data = "{ROOT / "data" / "master.toml"}"')
    text = text.replace("[simulator]\nenabled = true", "[simulator]\nenabled = false")
    p = workdir / "external-twin.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _start_twin(op: int, mp: int, start: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "sim", "--config", str(ROOT / "config.toml"),
                             "--opcua-port", str(op), "--modbus-port", str(mp), "--speed",
                             "60", "--start", start], cwd=ROOT, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _lost_all(events: list[dict[str, Any]], drivers: set[str]) -> bool:
    return drivers <= {e.get("driver_id") for e in events if e.get("kind") == "connection"
                       and e.get("state") in ("reconnecting", "down")}


def _connected_all(events: list[dict[str, Any]], drivers: set[str]) -> bool:
    return drivers <= {e.get("driver_id") for e in events if e.get("kind") == "connection"
                       and e.get("state") == "connected"}


def _max_received(events: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e.get("kind") == "stats":
            for k, n in _received(e).items():
                out[k] = max(out.get(k, 0), n)
    return out


def _received(ev: dict[str, Any]) -> dict[str, int]:
    drv = (ev.get("detail") or {}).get("drivers") or {}
    return {k: int(v.get("values_received", 0)) for k, v in drv.items()}


def server_restarts(workdir: Path, seed: int, trials: int) -> Row:
    """The twin (both servers) SIGKILLed and restarted with its clock started over; the
    time from both ports answering again to new values arriving from both drivers."""
    from runtime.twin import free_port

    rng = random.Random(seed)
    row = Row("twin kill + restart")
    op, mp = free_port(), free_port()
    cfg = _twin_config(workdir, op, mp)
    start = "2026-01-05T06:00:00Z"  # every restart starts the plant clock over
    twin = _start_twin(op, mp, start)
    run = Headless(workdir / "restarts.db", ["--no-sim", "--stats-every", "0.25", "--no-ml",
                                             "--approve", "never"], config=cfg)
    resumes: list[float] = []
    try:
        while not (_answers(op) and _answers(mp)):
            time.sleep(0.1)
        run.start("r")
        first = run.wait_for(lambda e: e.get("kind") == "stats"
                             and min(_received(e).values() or [0]) > 0, 120)
        if first is None:
            row.fail(f"no data from the twin at all: {run.stderr[-300:]}")
            return row
        drivers = set(_received(first))
        for _ in range(trials):
            row.trials += 1
            time.sleep(rng.uniform(0.5, 2.0))
            twin.send_signal(signal.SIGKILL)
            twin.wait(10)
            mark = len(run.events)
            lost = run.wait_for(lambda e, m=mark: _lost_all(run.events[m:], drivers), 30)
            if lost is None:
                row.fail("the drivers did not notice the twin was gone")
            time.sleep(rng.uniform(0.5, 3.0))
            run.poll_events()
            before = _max_received(run.events)
            mark = len(run.events)
            twin = _start_twin(op, mp, start)
            while not (_answers(op) and _answers(mp)):
                if twin.poll() is not None:
                    row.fail("the twin did not restart")
                    break
                time.sleep(0.02)
            back = time.monotonic()
            got = run.wait_for(lambda e, m=mark: _connected_all(run.events[m:], drivers), 60)
            if got is None:
                row.fail("the drivers did not reconnect within 60 s")
                continue
            took = time.monotonic() - back
            resumes.append(took)
            data = run.wait_for(lambda e, b=before: e.get("kind") == "stats" and all(
                n > b.get(k, 0) for k, n in _received(e).items()), 30)
            if data is None:
                row.fail("connected again, but no new values within 30 s")
            if took > 2.0:
                row.fail(f"reconnected {took:.1f} s after the server was back (target 2 s)")
    finally:
        summary = run.stop()
        twin.send_signal(signal.SIGTERM)
        try:
            twin.wait(15)
        except subprocess.TimeoutExpired:
            twin.kill()
    jumps = sum(1 for e in run.events if e.get("detector_id") == "clock_jump"
                and e.get("kind") == "detection")
    ing = (summary or {}).get("detail", {}).get("ingest", {})
    if summary is None:
        row.fail("no summary from the runtime")
    elif not ing.get("balanced", False) or ing.get("dropped", 0):
        row.data_lost += int(ing.get("dropped", 0))
        row.fail(f"ingest not balanced: {ing}")
    resumes.sort()
    med = resumes[len(resumes) // 2] if resumes else float("nan")
    row.note = (f"both drivers connected again after the server was back (new values "
                f"checked in the next stats): median {med:.2f} s, max "
                f"{max(resumes, default=float('nan')):.2f} s, ≤2 s in "
                f"{sum(1 for r in resumes if r <= 2.0)}/{row.trials}; clock-jump alarms "
                f"{jumps}; out-of-order samples flagged {ing.get('out_of_order', '?')}")
    return row
