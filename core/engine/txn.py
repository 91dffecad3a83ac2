"""A write transaction that takes SQLite's write lock up front (BEGIN IMMEDIATE).

Read-then-write steps (is there an open recommendation for this problem? then insert)
must not interleave across processes; on SQLite a deferred transaction would let two
writers read the same 'nothing open' and both insert. Other dialects use a normal
transaction (PostgreSQL would need a unique partial index for the same guarantee).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from core.store.db import Store, guard


@contextmanager
def write_txn(store: Store) -> Iterator[Connection]:
    with guard(store):
        if store.engine.dialect.name != "sqlite":
            with store.engine.begin() as conn:
                yield conn
            return
        with store.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
