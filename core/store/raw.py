"""A thread-owned DB-API connection to the store, for the hot paths that skip SQLAlchemy.

The store writer, compaction, the rollups and the archiver talk to the database with
plain SQL on one autocommit connection and explicit ``BEGIN IMMEDIATE``/``COMMIT``.
``connect_raw`` opens that connection for a SQLite file (sqlite3, WAL) or a
PostgreSQL URL (psycopg 3, autocommit) and ``RawConnection`` hides the few
differences, so those modules keep one text per statement:

- ``?`` placeholders become ``%s`` on PostgreSQL;
- ``BEGIN IMMEDIATE`` (SQLite's write lock up front) is a plain ``BEGIN``;
- ``SELECT last_insert_rowid()`` is ``SELECT lastval()`` (the last id this session made);
- a PostgreSQL connection that broke is reopened at the next statement outside a
  transaction (the failed statement raised a transient error, so the caller retried).

``DB_ERRORS`` is what any of them raises; ``is_transient`` says which errors go away
by waiting (a lock, a full disk, a server restart) rather than meaning a bad row.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

_TRANSIENT = ("locked", "busy", "disk i/o", "database or disk is full", "unable to open")


def _pg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # SQLite-only install
        return ()
    return (psycopg.Error,)


DB_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, *_pg_errors())


def is_transient(e: BaseException) -> bool:
    """Errors that go away by waiting (a lock, a full or failing disk, a lost server)."""
    if isinstance(e, sqlite3.OperationalError):
        return any(t in str(e).lower() for t in _TRANSIENT)
    try:
        import psycopg
    except ImportError:
        return False
    # OperationalError: connection lost, server shutting down, disk full, lock timeout,
    # serialization failure and deadlock (TransactionRollback) — all worth a retry
    return isinstance(e, psycopg.OperationalError)


@lru_cache(maxsize=512)
def pg_sql(sql: str, params: bool = True) -> str:
    """The PostgreSQL text of a statement written for SQLite (see the module doc).

    Without parameters psycopg sends the text as it is, so ``%`` stays single then.
    """
    s = sql.strip()
    if s.upper() == "BEGIN IMMEDIATE":
        return "BEGIN"
    if s.lower() == "select last_insert_rowid()":
        return "SELECT lastval()"
    return sql.replace("%", "%%").replace("?", "%s") if params else sql


def sqlite_path(target: str | Path) -> Path | None:
    """The file of a SQLite target (a path or ``sqlite:///…``); None for a server URL."""
    if isinstance(target, Path) or "://" not in target:
        return Path(target)
    url = make_url(target)
    return Path(url.database or "") if url.get_backend_name() == "sqlite" else None


def libpq_url(target: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq URI (no ``+psycopg``), password kept."""
    url = make_url(target)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class RawConnection:
    """One autocommit connection; ``execute``/``executemany`` take SQLite-style SQL."""

    def __init__(self, target: str | Path, *, timeout_s: float = 5.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.path = sqlite_path(target)
        self.dialect = "sqlite" if self.path is not None else "postgresql"
        self.paramstyle = "qmark" if self.path is not None else "format"
        self.raw: Any = self._open()

    def _open(self) -> Any:
        if self.path is not None:
            con = sqlite3.connect(str(self.path), timeout=self.timeout_s,
                                  isolation_level=None, check_same_thread=False)
            con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            return con
        import psycopg

        return psycopg.connect(libpq_url(str(self.target)), autocommit=True,
                               connect_timeout=max(1, int(self.timeout_s)))

    def _live(self) -> Any:
        if self.path is None and self.raw.closed:
            self.raw = self._open()  # outside a transaction by construction (it broke)
        return self.raw

    @property
    def in_transaction(self) -> bool:
        if self.path is not None:
            return bool(self.raw.in_transaction)
        from psycopg.pq import TransactionStatus

        return (not self.raw.closed
                and self.raw.info.transaction_status != TransactionStatus.IDLE)

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run one statement; returns a cursor (``fetchone``/``fetchall``)."""
        con = self._live()
        if self.path is not None:
            return con.execute(sql, params)
        if not params:
            return con.execute(pg_sql(sql, False))
        return con.execute(pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Any) -> None:
        con = self._live()
        if self.path is not None:
            con.executemany(sql, rows)
            return
        with con.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)

    def commit(self) -> None:
        """End an open transaction (statements outside one are committed already)."""
        if self.in_transaction:
            self.execute("COMMIT")

    def cursor(self) -> Any:
        """A driver cursor (``paramstyle`` placeholders), e.g. for ``NarrowWriter``."""
        return self._live().cursor()

    def close(self) -> None:
        self.raw.close()


def connect_raw(target: str | Path, *, timeout_s: float = 5.0) -> RawConnection:
    """An autocommit connection to the store at a SQLite path/URL or a PostgreSQL URL."""
    return RawConnection(target, timeout_s=timeout_s)
