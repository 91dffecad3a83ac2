"""Named locks across processes sharing one store, on either engine.

``with store.lock("line:A"):`` waits for the lock (``timeout_s`` → StoreError when it
runs out); ``store.try_lock("line:A")`` takes it only if free and returns whether it
did, ``store.unlock("line:A")`` gives it back, ``store.holds("line:A")`` says whether
this store still holds it. A lock is held by this process (one Store object) until
unlocked, the store is closed, or the process dies — then the database or the OS
frees it, so a crashed holder never wedges the others.

- PostgreSQL: a session advisory lock (``pg_advisory_lock`` / ``pg_try_advisory_lock``)
  on a connection of its own, keyed by a 64-bit hash of the name. If that connection
  drops (server restart, network), the server frees the lock: ``holds`` then says so.
- SQLite: an exclusive ``flock`` on a file beside the database
  (``<db>.lock.<name>``), which the OS frees when the process dies. Every lock has
  its own file description, so two stores in one process exclude each other too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.store import StoreError

if TYPE_CHECKING:
    from core.store.db import Store

_POLL_S = 0.05


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of a lock name (stable across processes)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


def lock_file(db: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return db.with_name(f"{db.name}.lock.{safe}")


class _Held:
    """One held lock: the connection or open file that holds it."""

    def __init__(self, handle: Any, pg: bool) -> None:
        self.handle, self.pg = handle, pg

    def alive(self, key: int) -> bool:
        if not self.pg:
            return not self.handle.closed
        try:
            row = self.handle.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objid = (%s::bigint & 4294967295)::oid "
                "AND classid = ((%s::bigint >> 32) & 4294967295)::oid",
                (key, key)).fetchone()
        except Exception:  # the connection is gone, and the lock with it
            return False
        return bool(row and row[0])

    def release(self, key: int) -> None:
        if self.pg:
            with contextlib.suppress(Exception):
                self.handle.execute("SELECT pg_advisory_unlock(%s)", (key,))
        else:
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.flock(self.handle, fcntl.LOCK_UN)
        with contextlib.suppress(Exception):
            self.handle.close()


def _held(store: Store) -> dict[str, _Held]:
    d = store.__dict__.get("_locks")
    if d is None:
        d = store.__dict__["_locks"] = {}
    return d


def _pg_connect(store: Store) -> Any:
    import psycopg

    from core.store.raw import libpq_url

    try:
        return psycopg.connect(libpq_url(str(store.target)), autocommit=True,
                               connect_timeout=10)
    except psycopg.Error as e:
        from core.store.db import explain

        raise StoreError(explain(store.where, e)) from e


def _sqlite_open(store: Store, name: str) -> Any:
    if store.path is None:
        raise StoreError(f"the store {store.where} has no file to lock beside")
    return open(lock_file(store.path, name), "a+")  # held open while locked


def _acquire(store: Store, name: str, wait_s: float | None) -> bool:
    """Take the lock, waiting up to ``wait_s`` (None: forever, 0: not at all)."""
    held = _held(store)
    if name in held:
        raise StoreError(f"lock {name!r} is already held by this store")
    key = lock_key(name)
    if store.dialect == "postgresql":
        import psycopg

        con = _pg_connect(store)
        try:
            if wait_s == 0:
                got = bool(con.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
            else:
                if wait_s is not None:
                    con.execute(f"SET lock_timeout = {max(1, int(wait_s * 1000))}")
                try:
                    con.execute("SELECT pg_advisory_lock(%s)", (key,))
                    got = True
                except psycopg.errors.LockNotAvailable:
                    got = False
                con.execute("SET lock_timeout = 0")
        except BaseException:
            con.close()
            raise
        if not got:
            con.close()
            return False
        held[name] = _Held(con, pg=True)
        return True
    import fcntl

    f = _sqlite_open(store, name)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait_s is None else fcntl.LOCK_NB))
            break
        except BlockingIOError:
            if deadline is None or time.monotonic() >= deadline:
                f.close()
                return False
            time.sleep(_POLL_S)
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    held[name] = _Held(f, pg=False)
    return True


def try_lock(store: Store, name: str) -> bool:
    """Take ``name`` if nobody holds it; True when this store now holds it."""
    return _acquire(store, name, 0)


def unlock(store: Store, name: str) -> None:
    """Give ``name`` back (nothing when this store does not hold it)."""
    h = _held(store).pop(name, None)
    if h is not None:
        h.release(lock_key(name))


def holds(store: Store, name: str) -> bool:
    """Whether this store still holds ``name`` (False after its connection dropped)."""
    h = _held(store).get(name)
    return h is not None and h.alive(lock_key(name))


def release_all(store: Store) -> None:
    for name in list(_held(store)):
        unlock(store, name)


@contextmanager
def lock(store: Store, name: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold ``name`` for the block, waiting for it (StoreError after ``timeout_s``)."""
    if not _acquire(store, name, timeout_s):
        raise StoreError(f"lock {name!r} on the store {store.where} is held by another "
                         f"process (waited {timeout_s:g} s)")
    try:
        yield
    finally:
        unlock(store, name)


# ---------------------------------------------------------------- transaction locks

WRITE_LOCK = "loopline.write"  # the store-wide "write lock up front" of read-then-write steps


def begin_write(conn: Any) -> None:
    """Take the store-wide write lock at the start of ``conn``'s transaction.

    SQLite: ``BEGIN IMMEDIATE`` (must be the transaction's first statement). PostgreSQL:
    a transaction advisory lock every such writer takes, so read-then-write steps (is
    there an open recommendation? then insert; seed a new store) take turns across
    processes just as they do on SQLite; freed at commit or rollback.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        xact_lock(conn, WRITE_LOCK)


def xact_lock(conn: Any, name: str) -> None:
    """Hold ``name`` until ``conn``'s transaction ends (PostgreSQL; SQLite's writers
    already take turns on the database lock, so nothing is needed there)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})
