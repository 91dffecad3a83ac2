"""Processes of the harness: a headless runtime on free ports, orphans, events, store checks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos import ROOT, child_env, cli
from runtime.twin import free_port

CONFIG = ROOT / "config.toml"


@dataclass
class Headless:
    """``loopline run --headless`` as its own process; events go to a file we tail."""

    db: Path
    args: list[str] = field(default_factory=list)
    config: Path = CONFIG
    opcua_port: int = field(default_factory=free_port)
    modbus_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    events_path: Path | None = None
    _pos: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr_path: Path | None = None
    logs: Path | None = None  # where events and stderr go (default: beside the store)

    def start(self, tag: str = "run") -> Headless:
        logs = self.logs or self.db.parent
        self.events_path = logs / f"{self.db.stem}-{tag}-events.jsonl"
        self.events_path.unlink(missing_ok=True)
        self._pos, self.events = 0, []
        self.stderr_path = logs / f"{self.db.stem}-{tag}-stderr.txt"
        err = self.stderr_path.open("wb")
        cmd = [sys.executable, "-m", "console.cli", "run", "--headless", "--quiet",
               "--config", str(self.config), "--db", str(self.db),
               "--events", str(self.events_path), *self.args]
        if "--no-sim" not in self.args:
            cmd += ["--opcua-port", str(self.opcua_port), "--modbus-port",
                    str(self.modbus_port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL,
                                     stderr=err)
        err.close()
        return self

    @property
    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""
        except OSError:
            return ""

    def poll_events(self) -> list[dict[str, Any]]:
        """New events since the last call (complete lines only)."""
        if self.events_path is None or not self.events_path.exists():
            return []
        with self.events_path.open("rb") as f:
            f.seek(self._pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._pos += end
        new = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                new.append(json.loads(line))
        self.events.extend(new)
        return new

    def wait_for(self, pred: Any, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        for e in self.events:
            if pred(e):
                return e
        while time.monotonic() < deadline:
            for e in self.poll_events():
                if pred(e):
                    return e
            if self.proc is not None and self.proc.poll() is not None:
                for e in self.poll_events():
                    if pred(e):
                        return e
                return None
            time.sleep(0.05)
        return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 90) -> dict[str, Any] | None:
        """SIGTERM, wait, return the summary event (None if it never came)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.poll_events()
        return next((e for e in reversed(self.events) if e.get("kind") == "runtime"
                     and e.get("event") == "summary"), None)


def twins_of_port(port: int) -> list[int]:
    """Processes serving the twin on ``port`` (an orphan when its launcher is gone)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sim" in args and b"--opcua-port" in args and str(port).encode() in args:
            out.append(int(d.name))
    return out


def wait_gone(pids_of: Any, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = pids_of()
        if not left:
            return []
        time.sleep(0.1)
    return pids_of()


def reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def integrity(db: Path) -> str:
    con = sqlite3.connect(db, timeout=30)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def doubled_actions(db: Path) -> int:
    """Effects recorded twice: an action done twice, or stock moved twice for one action."""
    con = sqlite3.connect(db, timeout=30)
    try:
        done = con.execute("SELECT count(*) FROM (SELECT entity_id FROM audit_entry WHERE "
                           "action='action.done' GROUP BY entity_id HAVING count(*) > 1)"
                           ).fetchone()[0]
        moved = con.execute("SELECT count(*) FROM (SELECT json_extract(detail, '$.action_id')"
                            " a FROM audit_entry WHERE action='stock.moved' GROUP BY a "
                            "HAVING count(*) > 1)").fetchone()[0]
        return int(done) + int(moved)
    finally:
        con.close()


def audit_ok(db: Path) -> tuple[bool, str]:
    res = cli("audit", "verify", "--db", str(db))
    return res.returncode == 0, (res.stdout + res.stderr).strip()


def count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def own_tracebacks(stderr: str) -> int:
    """Errors logged with a traceback by loopline's code: one per log record (a chained
    exception's second "Traceback" is the same record), none for a library's own (e.g.
    asyncua's publish loop when a server goes away: that shows in the driver state)."""
    n, armed = 0, False
    for line in stderr.splitlines():
        if line.startswith("Traceback"):
            n += armed
            armed = False
        elif line[:4].isdigit():  # a log line: "2026-01-05 06:00:00,000 ERROR name: ..."
            armed = not any(f" {lib}" in line for lib in ("asyncua", "pymodbus",
                                                           "apscheduler"))
    return n
