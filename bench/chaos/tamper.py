"""Audit tampering of every kind, done as anyone holding the file can: the triggers
dropped, rows edited, deleted, reordered or the chain re-hashed after an edit. Each case
must be found by ``loopline audit verify`` (with the witness beside the store)."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

from bench.chaos import Row, cli, cli_batch

CASES = ("edit", "delete_middle", "delete_end", "reorder", "rehash_after_edit",
         "delete_newest", "witness_deleted")


def _raw(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
    con.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    return con


def _rehash_from(con: sqlite3.Connection, seq: int) -> None:
    """Recompute every hash from ``seq`` on, as a forger who knows the algorithm would."""
    from core.audit import GENESIS, entry_hash
    from core.clock import parse_utc

    rows = con.execute("SELECT seq, ts, actor, action, entity, entity_id, detail "
                       "FROM audit_entry ORDER BY seq").fetchall()
    prev = GENESIS
    for s, ts, actor, action, entity, entity_id, detail in rows:
        if s >= seq:
            h = entry_hash(prev, s, parse_utc(ts), actor, action, entity, entity_id, detail)
            con.execute("UPDATE audit_entry SET prev_hash=?, hash=? WHERE seq=?", (prev, h, s))
        prev = con.execute("SELECT hash FROM audit_entry WHERE seq=?", (s,)).fetchone()[0]


def tamper(db: Path, case: str, rng: random.Random) -> None:
    con = _raw(db)
    n = con.execute("SELECT max(seq) FROM audit_entry").fetchone()[0]
    mid = rng.randint(2, n - 2)
    if case == "edit":
        con.execute("UPDATE audit_entry SET actor='eve' WHERE seq=?", (mid,))
    elif case == "delete_middle":
        con.execute("DELETE FROM audit_entry WHERE seq=?", (mid,))
    elif case == "delete_end":
        con.execute("DELETE FROM audit_entry WHERE seq>?", (n - rng.randint(1, 3),))
    elif case == "reorder":
        a = con.execute("SELECT detail FROM audit_entry WHERE seq=?", (mid,)).fetchone()[0]
        b = con.execute("SELECT detail FROM audit_entry WHERE seq=?", (mid + 1,)).fetchone()[0]
        con.execute("UPDATE audit_entry SET detail=? WHERE seq=?", (b, mid))
        con.execute("UPDATE audit_entry SET detail=? WHERE seq=?", (a, mid + 1))
        con.execute("UPDATE audit_entry SET seq=-1 WHERE seq=?", (mid,))
        con.execute("UPDATE audit_entry SET seq=? WHERE seq=?", (mid, mid + 1))
        con.execute("UPDATE audit_entry SET seq=? WHERE seq=-1", (mid + 1,))
    elif case == "rehash_after_edit":
        con.execute("UPDATE audit_entry SET detail='{\"forged\": true}' WHERE seq=?", (mid,))
        _rehash_from(con, mid)
    elif case in ("delete_newest", "witness_deleted"):
        # only the newest entry gone (and, for witness_deleted, the witness too: the
        # head an export published finds it)
        con.execute("DELETE FROM audit_entry WHERE seq=?", (n,))
    con.commit()
    con.close()


def _args(db: Path, config: Path, anchor: str | None = None) -> list[str]:
    return ["audit", "verify", "--config", str(config), "--db", str(db),
            *(["--anchor", anchor] if anchor else [])]


def _seed_chain(db: Path, entries: int) -> str:
    """A store with ``entries`` audit entries appended the way loopline appends them;
    returns the head an export would have published."""
    from core import audit
    from core.store.db import open_store

    store = open_store(str(db))
    try:
        for i in range(entries):
            audit.append(store.engine, "sam", "chaos.event", "thing", f"T{i}", {"i": i})
        h = audit.head(store.engine)
        assert h is not None
        return h.text()
    finally:
        store.close()


def run(workdir: Path, config: Path, seed: int, rounds: int = 1,
        batch: bool = False) -> Row:
    """``batch``: verify every case in one CLI process (fast, for the test suite) instead
    of a ``loopline audit verify`` process per case."""
    rng = random.Random(seed)
    row = Row("audit tampering")
    found = 0
    base = workdir / "audit-base.db"
    anchor = _seed_chain(base, 30)
    cases: list[tuple[str, list[str]]] = [("untampered", _args(base, config))]
    for r in range(rounds):
        for case in CASES:
            d = workdir / f"tamper-{r}-{case}"
            d.mkdir(parents=True, exist_ok=True)
            db = d / "loopline.db"
            shutil.copy(base, db)
            shutil.copy(base.with_name("audit-base.audit-head"), d / "loopline.audit-head")
            tamper(db, case, rng)
            if case == "witness_deleted":
                (d / "loopline.audit-head").unlink()
            cases.append((case, _args(db, config, anchor if case == "witness_deleted"
                                      else None)))
    if batch:
        results = cli_batch([a for _, a in cases], workdir)
    else:
        results = [(r.returncode, r.stdout, r.stderr, None)
                   for r in (cli(*a) for _, a in cases)]
    for (case, _), (rc, out, err, crashed) in zip(cases, results, strict=True):
        if case == "untampered":
            if rc != 0:
                row.fail(f"untampered chain refused: {out.strip()} {err.strip()}")
            continue
        row.trials += 1
        if crashed or "Traceback" in err:
            row.fail(f"{case}: traceback {crashed or ''}")
        elif rc == 1 and "BROKEN" in out:
            found += 1
        else:
            row.fail(f"{case}: not found ({rc}: {out.strip()} {err.strip()[-200:]})")
    row.note = f"{found}/{row.trials} tamperings found by audit verify"
    return row
