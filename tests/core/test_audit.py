"""The audit chain: append, durable guards against rewriting, tampering found by verify."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from core import audit
from core.store.db import Store, exec_sql
from core.store.raw import RawConnection, connect_raw

ROOT = Path(__file__).resolve().parents[2]


def _fill(store: Store, n: int = 5) -> None:
    for i in range(n):
        audit.append(store.engine, "sam", "test.event", "thing", f"T{i}", {"i": i})


def test_chain_holds_and_links(store: Store) -> None:
    _fill(store)
    res = audit.verify(store.engine)
    assert res.ok and res.checked == 5
    rows = audit.recent(store.engine, 10)
    assert [r.seq for r in rows] == [5, 4, 3, 2, 1]
    assert rows[0].detail == {"i": 4}


def test_database_refuses_update_and_delete(store: Store) -> None:
    _fill(store, 2)
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as c:
        exec_sql(c, "UPDATE audit_entry SET actor='eve' WHERE seq=1")
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as c:
        exec_sql(c, "DELETE FROM audit_entry WHERE seq=2")
    assert audit.verify(store.engine).ok


def _raw(store: Store) -> RawConnection:
    """A tamperer with the owner's rights: drops the guards, then rewrites freely."""
    con = connect_raw(store.target)
    on = " ON audit_entry" if con.dialect == "postgresql" else ""
    con.execute(f"DROP TRIGGER audit_entry_no_update{on}")
    con.execute(f"DROP TRIGGER audit_entry_no_delete{on}")
    return con


def test_tampered_content_found_at_that_entry(store: Store) -> None:
    _fill(store, 6)
    con = _raw(store)
    con.execute("UPDATE audit_entry SET detail='{\"i\": 99}' WHERE seq=4")
    con.commit()
    con.close()
    res = audit.verify(store.engine)
    assert not res.ok and res.first_bad_seq == 4
    assert "entry 4" in res.message()


def test_deleted_entry_found(store: Store) -> None:
    _fill(store, 6)
    con = _raw(store)
    con.execute("DELETE FROM audit_entry WHERE seq=3")
    con.commit()
    con.close()
    res = audit.verify(store.engine)
    assert not res.ok and res.first_bad_seq == 3


def test_rehashed_entry_breaks_next_link(store: Store) -> None:
    """An attacker who recomputes an entry's own hash still breaks the next link."""
    _fill(store, 4)
    rows = {r.seq: r for r in audit.recent(store.engine, 10)}
    r2 = rows[2]
    new_hash = audit.entry_hash(rows[1].hash, 2, r2.ts, "eve", r2.action, r2.entity,
                                r2.entity_id, '{"i": 1}')
    con = _raw(store)
    con.execute("UPDATE audit_entry SET actor='eve', hash=? WHERE seq=2", (new_hash,))
    con.commit()
    con.close()
    res = audit.verify(store.engine)
    assert not res.ok and res.first_bad_seq == 3


def test_cli_verify_exit_codes(store: Store) -> None:
    _fill(store, 3)
    run = [sys.executable, "-m", "console.cli", "--db", str(store.target), "audit", "verify"]
    ok = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0 and "3 entries" in ok.stdout
    con = _raw(store)
    con.execute("UPDATE audit_entry SET action='x' WHERE seq=2")
    con.commit()
    con.close()
    bad = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, check=False)
    assert bad.returncode == 1 and "entry 2" in bad.stdout
