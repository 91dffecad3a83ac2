"""A write transaction that takes the store's write lock up front.

Read-then-write steps (is there an open recommendation for this problem? then insert)
must not interleave across processes; on SQLite a deferred transaction would let two
writers read the same 'nothing open' and both insert. SQLite: BEGIN IMMEDIATE;
PostgreSQL: a transaction advisory lock all such writers take
(``core.store.locks.begin_write``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from core.store.db import Store, guard
from core.store.locks import begin_write


@contextmanager
def write_txn(store: Store) -> Iterator[Connection]:
    with guard(store):
        if store.engine.dialect.name != "sqlite":
            with store.engine.begin() as conn:
                begin_write(conn)
                yield conn
            return
        with store.engine.connect() as conn:
            begin_write(conn)
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
