"""``NarrowWriter`` on PostgreSQL: the same catalogue and context logic, rows by binary COPY.

``PgCopyWriter`` is a ``NarrowWriter`` (tag numbers, reason codes and context
intervals exactly as on SQLite, so ``write(rows)`` and ``write_stamped(samples)``
behave the same) whose two bulk inserts — number rows into ``sample`` and text rows
into ``sample_text`` — are one ``COPY ... FROM STDIN (FORMAT BINARY)`` each instead of
an ``executemany`` of INSERTs: no statement per row, no text parsing of numbers.
Before the copy it makes sure the day partitions of the batch's times exist
(``core.store.pg_history``; a late sample for an old day creates that day's). The
copy runs in a savepoint: if an archive pass detached a day this writer still
believed attached ("no partition ... found for row"), the savepoint is rolled back,
the partitions are re-read and created, and the copy runs once more.

``narrow_writer(con, paramstyle)`` picks the writer for a connection (the store writer's
``RawConnection`` too, whose explicit ``BEGIN`` makes the copy's savepoint a nested one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.store import pg_history
from core.store.narrow import INSERT_SAMPLE, INSERT_TEXT, NarrowWriter

COPY_SAMPLE = "COPY sample (tag, ts, value, quality, reason) FROM STDIN (FORMAT BINARY)"
COPY_TEXT = "COPY sample_text (tag, ts, text, quality, reason) FROM STDIN (FORMAT BINARY)"
SAMPLE_TYPES = ("int4", "int8", "float8", "int2", "int4")
TEXT_TYPES = ("int4", "int8", "text", "int2", "int4")


def is_psycopg(con: Any) -> bool:
    return type(con).__module__.split(".")[0] == "psycopg"


def batch_days(rows: Sequence[Sequence[Any]], ts_index: int = 1) -> set[int]:
    """UTC day numbers of the rows' times (one pass; a batch is mostly one day)."""
    day = pg_history.DAY_US
    ts = [r[ts_index] for r in rows]
    lo, hi = min(ts) // day, max(ts) // day
    if hi - lo <= 1:
        return set(range(lo, hi + 1))
    return {t // day for t in ts}  # a late sample of an old day: just its day


class PgCopyWriter(NarrowWriter):
    """A ``NarrowWriter`` on a psycopg 3 connection that bulk-loads with binary COPY."""

    def __init__(self, con: Any, ahead_days: int = 1) -> None:
        self.days: set[int] = set()
        self.ahead_days = ahead_days
        super().__init__(con, "format")

    def reload(self) -> None:
        super().reload()
        self.days = set(pg_history.partitions(self.con))

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if sql == INSERT_SAMPLE:
            self._copy(COPY_SAMPLE, SAMPLE_TYPES, rows, partitioned=True)
        elif sql == INSERT_TEXT:
            self._copy(COPY_TEXT, TEXT_TYPES, rows, partitioned=False)
        else:
            super()._many(sql, rows)

    def _ensure(self, rows: Sequence[Sequence[Any]]) -> None:
        days = batch_days(rows)
        if not days <= self.days:
            top = max(days)
            want = set(days)
            if top >= max(self.days, default=top):  # a new newest day: the next ones ahead
                want |= set(range(top, top + self.ahead_days + 1))
            self.days = pg_history.ensure_days(self.con, want, self.days)

    def _copy(self, sql: str, types: Sequence[str], rows: Sequence[Sequence[Any]],
              partitioned: bool) -> None:
        import psycopg

        with self.con.cursor() as cur0:  # the psycopg connection (also under core.store.raw)
            con = cur0.connection
        if not con.autocommit and \
                con.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            con.execute("SELECT 1")  # begin the caller's transaction: the copy is a savepoint
        for attempt in (0, 1):
            if partitioned:
                self._ensure(rows)
            try:
                with con.transaction(), con.cursor() as cur, cur.copy(sql) as cp:
                    cp.set_types(types)
                    write = cp.write_row
                    for r in rows:
                        write(r)
                return
            except psycopg.errors.CheckViolation:
                if attempt or not partitioned:
                    raise
                self.days = set(pg_history.partitions(self.con))  # detached meanwhile


def narrow_writer(con: Any, paramstyle: str = "qmark") -> NarrowWriter:
    """The history writer for a connection: COPY on PostgreSQL (a psycopg connection or a
    ``core.store.raw.RawConnection`` to one), INSERTs elsewhere."""
    if is_psycopg(con) or getattr(con, "dialect", None) == "postgresql":
        return PgCopyWriter(con)
    return NarrowWriter(con, paramstyle)
