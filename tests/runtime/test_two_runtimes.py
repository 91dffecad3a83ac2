"""Two line PCs on one store against the twin: `loopline run --headless --lines A` and
`--lines B,C`, each a child process with its own host name, sharing one SQLite file.

Checked: each runtime starts only its lines' drivers and the lines' samples are stored
once (by their owner); a runtime for a line another live runtime holds is refused with
who holds it; a setpoint approved from a third process (the CLI) is executed exactly once,
by the owner of that machine's line; after one runtime is killed, another started with
its lines waits for the lease to lapse, takes them over and executes what was approved
meanwhile; the plant-wide OEE per line comes from the one store. Events are waited on
(bounded), never slept for.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from core.clock import WallClock
from core.config import load_config
from core.history import newest_ts
from core.masterdata import ensure_master_data, plant_epoch
from core.oee import by_line
from core.store.db import open_store, to_url
from runtime.line_scope import LineScope
from runtime.twin import free_port, start_twin

REPO = Path(__file__).resolve().parents[2]
TTL = "8"  # lease seconds: short, so a takeover comes soon
KILLED_TTL = "20"  # the PC that is killed: its successor, however slow to start, finds
# the lease still live and has to wait for it to lapse


def _config(tmp: Path, opcua: int, modbus: int) -> Path:
    """The default plant, its drivers pointed at this test's twin, its data under tmp."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace('master_data = "data/master.toml"',
                        f'master_data = "{REPO / "data" / "master.toml"}"')
    text = text.replace("opc.tcp://127.0.0.1:4840/loopline/",
                        f"opc.tcp://127.0.0.1:{opcua}/loopline/")
    text = re.sub(r"(?m)^port = 5020$", f"port = {modbus}", text)
    p = tmp / "plant.toml"
    p.write_text(text, encoding="utf-8")
    return p


class LinePC:
    """`loopline run --headless --no-sim --lines …` as one line PC (its own host name),
    and the JSON-line events it printed so far."""

    def __init__(self, tmp: Path, cfg: Path, db: str, host: str, *args: str,
                 ttl: str = TTL) -> None:
        cmd = [sys.executable, "-m", "console.cli", "run", "--headless", "--no-sim",
               "--no-ml", "--config", str(cfg), "--db", db, "--events", "-",
               "--stats-every", "2", "--lease-ttl", ttl, *args]
        env = {**os.environ, "PYTHONPATH": str(REPO), "LOOPLINE_RUNTIME_HOST": host}
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
            ev = json.loads(line)
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

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._cv:
            return [e for e in self.events if e["kind"] == kind]

    def started(self) -> dict[str, Any]:
        return self.wait_for(lambda e: e["kind"] == "runtime" and e.get("event") == "started",
                             120)


def _cli(cfg: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args, "--config", str(cfg),
                           "--db", db], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def _q(db: str, sql: str, **args: object) -> list[tuple]:
    """A query on the shared store, whichever engine it is on."""
    eng = create_engine(to_url(db))
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), args)]
    finally:
        eng.dispose()


def _request(cfg: Path, db: str, eq: str, name: str, eq_type: str) -> str:
    """A setpoint change within the recipe's limits: requested by sam (shift lead);
    four-eyes: quinn (quality) approves it, from another process."""
    rid_, lo, hi = _q(db, "SELECT recipe_id, lo, hi FROM recipe_setpoint WHERE id LIKE :p "
                      "ORDER BY id LIMIT 1", p=f"%.{eq_type}.{name}")[0]
    want = round((lo + hi) / 2 + (hi - lo) / 7, 1)
    r = _cli(cfg, db, "request", "setpoint", eq, name, str(want), "--recipe", rid_,
             "--reason", "two-runtime test", "--user", "sam", "--pin", "2222", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)["recommendation_id"]
    a = _cli(cfg, db, "approve", rec, "--user", "quinn", "--pin", "4444", "--json")
    assert a.returncode == 0, a.stderr
    return rec


def _done(pc: LinePC, rec: str, timeout: float = 90) -> dict[str, Any]:
    return pc.wait_for(lambda e: e["kind"] == "execution" and e.get("recommendation_id") == rec
                       and e.get("status") == "done", timeout)


def _runtime_runs_on(db: str, loaded: Any) -> None:
    """The runtime's ingest must accept this store: on PostgreSQL it does not yet (the
    PostgreSQL store writer is another issue's part). Probed, not assumed: once it does,
    this test runs there too."""
    from core.clock import FrozenClock
    from core.ingest.pipeline import IngestPipeline
    from core.store import StoreError

    with open_store(db) as st:
        try:
            IngestPipeline(loaded, st, FrozenClock(datetime.now(UTC)))
        except StoreError as e:
            pytest.xfail(f"the runtime cannot ingest into this store yet: {e}")


@pytest.mark.slow
def test_two_line_pcs_share_one_store(tmp_path: Path, db_url: str) -> None:
    """On SQLite (one file) and on PostgreSQL (one database of a throwaway cluster)."""
    op, mb = free_port(), free_port()
    cfg = _config(tmp_path, op, mb)
    db = db_url
    loaded = load_config(cfg)
    _runtime_runs_on(db, loaded)
    twin = start_twin(loaded, opcua_port=op, modbus_port=mb,
                      extra_args=["--speed", "60", "--seed", "5", "--faults-per-day", "0"])
    pcs: list[LinePC] = []
    try:
        with open_store(db) as st:  # the store and its master data, once
            ensure_master_data(st, loaded, WallClock())
        a = LinePC(tmp_path, cfg, db, "pc-a", "--lines", "A")
        bc = LinePC(tmp_path, cfg, db, "pc-bc", "--lines", "B,C", ttl=KILLED_TTL)
        pcs += [a, bc]
        sa, sbc = a.started()["detail"], bc.started()["detail"]
        assert sa["drivers"] == ["opcua"] and sa["lines"] == ["A"]
        assert sbc["drivers"] == ["modbus", "opcua"] and sbc["lines"] == ["B", "C"]
        # a third runtime for a line already owned is refused, naming the owner
        dup = _cli(cfg, db, "run", "--headless", "--no-sim", "--no-ml", "--lines", "C",
                   "--duration", "5")
        assert dup.returncode == 1
        assert re.search(r"line C is owned by runtime pc-bc:\d+:\w+ on host pc-bc \(pid "
                         r"\d+\) since .*; stop it or wait until its lease expires at",
                         dup.stderr), dup.stderr
        st = _cli(cfg, db, "status", "--json")
        owners = {ln["id"]: ln["owner"] for ln in json.loads(st.stdout)["lines"]}
        assert owners["A"]["host"] == "pc-a" and owners["C"]["host"] == "pc-bc"
        assert all(o["live"] for o in owners.values())

        # approvals from the CLI: each executed once, by the owner of the machine's line
        rec_a = _request(cfg, db, "A-LATHE1", "speed_sp", "lathe")
        rec_c = _request(cfg, db, "C-EXTR1", "temp_sp", "extruder")
        _done(a, rec_a)
        _done(bc, rec_c)
        a.wait_for(lambda e: e["kind"] == "stats" and e["detail"]["ingest"]["stored"] > 0)
        bc.wait_for(lambda e: e["kind"] == "stats" and e["detail"]["ingest"]["stored"] > 0)

        # line PC B,C dies; an approval for line C waits in the store meanwhile
        bc.proc.send_signal(signal.SIGKILL)
        bc.proc.wait(30)
        killed_at = datetime.now(UTC)
        bc2 = LinePC(tmp_path, cfg, db, "pc-bc2", "--lines", "B,C", "--wait-for-lines", "60")
        pcs.append(bc2)
        rec_c2 = _request(cfg, db, "C-OVEN1", "temp_sp", "oven")
        bc2.wait_for(lambda e: e.get("event") == "lease_wait", 60)  # the old lease is live
        took = [bc2.wait_for(lambda e, ln=ln: e.get("event") == "lease_takeover"
                             and e["detail"]["line"] == ln, 60) for ln in ("B", "C")]
        seen = datetime.now(UTC)
        for t in took:  # the lease was live at the kill, and taken over only once it lapsed
            expired = datetime.fromisoformat(t["detail"]["expired_at"])
            assert t["detail"]["host"] == "pc-bc" and killed_at < expired <= seen
        bc2.started()
        _done(bc2, rec_c2)
        a.wait_for(lambda e: e["kind"] == "stats" and e["detail"]["uptime_s"] > 0)
    finally:
        rcs = [pc.stop() for pc in pcs]
        twin.stop()
    assert rcs[0] == 0 and rcs[2] == 0, (pcs[0].stderr, pcs[2].stderr)
    ran = {pc: {e.get("recommendation_id") for e in pc.of("execution")} for pc in pcs}
    assert rec_a in ran[pcs[0]] and rec_a not in ran[pcs[1]] | ran[pcs[2]]
    assert rec_c in ran[pcs[1]] and rec_c not in ran[pcs[0]] | ran[pcs[2]]
    assert rec_c2 in ran[pcs[2]] and rec_c2 not in ran[pcs[0]] | ran[pcs[1]]
    # whatever else the loop executed on its own (a replenishment by policy...): each
    # action only by a runtime of its line (plant-wide ones: the home runtime, line A's)
    eng = create_engine(to_url(db))
    try:
        with eng.connect() as conn:
            for pc, lines in ((pcs[0], ["A"]), (pcs[1], ["B", "C"]), (pcs[2], ["B", "C"])):
                scope = LineScope(loaded, lines)
                for ev in pc.of("execution"):
                    row = conn.execute(text("SELECT id, params, recommendation_id FROM action "
                                            "WHERE id = :i"), {"i": ev["action_id"]}).one()
                    assert scope.owns_action(conn, row, None), (lines, ev)
    finally:
        eng.dispose()
    for rec in (rec_a, rec_c, rec_c2):
        assert _q(db, "SELECT kind, status, attempts FROM action WHERE recommendation_id = :r",
                  r=rec) == [("write_setpoint", "done", 1)]
        assert _q(db, "SELECT count(*) FROM audit_entry WHERE action = 'action.claimed' AND "
                  "entity_id IN (SELECT CAST(id AS TEXT) FROM action WHERE "
                  "recommendation_id = :r)", r=rec) == [(1,)]
    # every line's samples, each stored once: no tag has two rows at one source time
    per_line = dict(_q(db, "SELECT substr(t.tag_id, 1, 1), count(*) FROM sample s JOIN "
                       "sample_tag t ON t.num = s.tag GROUP BY 1"))
    assert all(per_line.get(x, 0) > 100 for x in "ABC"), per_line
    dups = dict(_q(db, "SELECT substr(t.tag_id, 1, 1), count(*) FROM (SELECT tag, ts FROM "
                   "sample GROUP BY tag, ts HAVING count(*) > 1) d JOIN sample_tag t ON "
                   "t.num = d.tag GROUP BY 1"))
    assert "A" not in dups, dups  # two runtimes never read one line at the same time
    # the successor's subscription re-delivers each B tag's current value once, with the
    # source time its killed predecessor had stored already: at most one repeat per tag
    b_tags = _q(db, "SELECT count(*) FROM sample_tag WHERE tag_id LIKE 'B-%'")[0][0]
    assert dups.get("B", 0) <= b_tags, (dups, b_tags)
    assert _q(db, "SELECT count(*) FROM line_lease") == [(0,)]  # clean stops gave them back
    # the plant-wide view: OEE per line, over the run, from the one store
    with open_store(db) as st:
        with st.engine.connect() as conn:
            end = newest_ts(conn)
        start = plant_epoch(st)
        assert start is not None and end is not None
        oee = by_line(st, start, end)
        rep = _cli(cfg, db, "report", "oee", "--by", "line", "--json",
                   "--since", start.isoformat(), "--until", end.isoformat())
    assert rep.returncode == 0, rep.stderr
    for line in "ABC":  # every line produced, and its OEE is a real fraction
        o = oee[line]
        assert o.good > 0 and o.oee is not None and 0 < o.oee <= 1, (line, o.as_dict())
    print({k: round(v.oee or 0, 3) for k, v in oee.items()})
