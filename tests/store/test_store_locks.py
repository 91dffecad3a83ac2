"""Named locks across processes sharing a store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store import StoreError
from core.store.db import open_store

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from core.store.db import open_store
st = open_store(sys.argv[1])
assert st.try_lock("line:A")
print("held", flush=True)
time.sleep(120)
"""


def test_try_lock_is_exclusive_between_stores_until_unlocked(db_url: str) -> None:
    with open_store(db_url) as a, open_store(db_url) as b:
        assert a.try_lock("line:A")
        assert a.holds("line:A")
        assert not b.try_lock("line:A")
        assert b.try_lock("line:B")  # another name is another lock
        a.unlock("line:A")
        assert not a.holds("line:A")
        assert b.try_lock("line:A") and b.holds("line:A")


def test_lock_waits_then_times_out_with_a_clear_error(db_url: str) -> None:
    with open_store(db_url) as a, open_store(db_url) as b:
        with a.lock("report"):
            t0 = time.monotonic()
            with pytest.raises(StoreError, match=r"'report'.*held by another process"), \
                    b.lock("report", timeout_s=0.3):
                pass
            assert time.monotonic() - t0 >= 0.25
        with b.lock("report", timeout_s=5):  # free again once the block ended
            assert b.holds("report")
        assert not b.holds("report")


def test_closing_the_store_frees_its_locks(db_url: str) -> None:
    a = open_store(db_url)
    assert a.try_lock("line:A")
    a.close()
    with open_store(db_url) as b:
        assert b.try_lock("line:A")


def test_a_killed_holder_frees_its_lock(db_url: str) -> None:
    open_store(db_url).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db_url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with open_store(db_url) as b:
            assert not b.try_lock("line:A")
            proc.kill()
            proc.wait(30)
            deadline = time.monotonic() + 30  # the server notices the dropped session
            while not b.try_lock("line:A"):
                assert time.monotonic() < deadline, "lock not freed after the holder died"
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
