"""The history tables on PostgreSQL: ``sample`` partitioned by day, partitions made as needed.

SQLite keeps recent rows in one append-only table and compacts them into per-tag
chunks; on PostgreSQL the day is the unit instead. ``sample`` is declared
``PARTITION BY RANGE (ts)`` (µs since the epoch, UTC) with one partition per UTC day,
``sample_dYYYYMMDD`` covering [midnight, next midnight). A day's partition is created
the first time a row for it is written (a late sample for an old day too) and the
next day's ahead of it, so midnight costs no DDL in the write path; a day older than
the hot window is archived to Parquet and its partition detached and dropped
(``core.store.pg_archive``), which costs a catalog change instead of a DELETE of a
day of rows. Every partition has the parent's (tag, ts) index, so one tag's hours
are an index range in one or two partitions. The other history tables
(``sample_tag``, ``sample_reason``, ``sample_text``, ``context_interval``,
``sample_chunk``, ``sample_rollup``) are the models' tables, as on SQLite.

``create_history(conn, tables)`` is the migrations' history layout for the PostgreSQL
dialect (``create_all`` every table). The ``id`` column is kept (a sequence default,
as SQLite's rowid): the store writer's rollup marks refer to it.
Partition DDL takes a transaction-scoped advisory lock, so two writers that meet a
new day at once create it once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY_US = 86_400_000_000
PARENT = "sample"
_NAME = re.compile(r"^sample_d(\d{8})$")
_LOCK_KEY = 0x6C6F6F70  # "loop": the advisory lock of partition DDL
SAMPLE_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS sample_id_seq",
    "CREATE TABLE IF NOT EXISTS sample ("
    " id bigint NOT NULL DEFAULT nextval('sample_id_seq'),"
    " tag integer NOT NULL, ts bigint NOT NULL, value double precision,"
    " quality smallint NOT NULL DEFAULT 0, reason integer"
    ") PARTITION BY RANGE (ts)",
    "ALTER SEQUENCE sample_id_seq AS bigint OWNED BY sample.id",
    "CREATE INDEX IF NOT EXISTS ix_sample_tag_ts ON sample (tag, ts)",
    # ids grow with the heap: a BRIN range index finds "rows after the rollup mark"
    # (the store writer's recovery) in the newest blocks, for next to nothing per row
    "CREATE INDEX IF NOT EXISTS ix_sample_id_brin ON sample USING brin (id)",
)


def day_of(ts_us: int) -> int:
    """UTC day number (days since the epoch) of a µs time."""
    return ts_us // DAY_US


def day_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def partition_name(day: int) -> str:
    return f"sample_d{day_date(day):%Y%m%d}"


def name_day(name: str) -> int | None:
    m = _NAME.match(name)
    if m is None:
        return None
    d = datetime.strptime(m.group(1), "%Y%m%d").date()
    return (d - date(1970, 1, 1)).days


def _exec(con: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run on a DB-API (psycopg) connection or an SQLAlchemy connection."""
    if hasattr(con, "exec_driver_sql"):
        res = con.exec_driver_sql(sql, params) if params else con.exec_driver_sql(sql)
        return [tuple(r) for r in res.fetchall()] if res.returns_rows else []
    cur = con.cursor()
    try:
        cur.execute(sql, params or None)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def is_partitioned(conn: Any) -> bool:
    got = _exec(conn, "SELECT relkind FROM pg_class WHERE oid = to_regclass('sample')")
    return bool(got) and got[0][0] == "p"


def partition_existing(conn: Any) -> int:
    """A plain ``sample`` table to the partitioned one (migration step 6); rows moved."""
    if is_partitioned(conn) or not _exec(conn, "SELECT to_regclass('sample')")[0][0]:
        return 0
    _exec(conn, "ALTER TABLE sample RENAME TO sample_plain")
    _exec(conn, "ALTER INDEX IF EXISTS ix_sample_tag_ts RENAME TO ix_sample_plain_tag_ts")
    for stmt in SAMPLE_DDL:  # the plain table's serial sequence is reused, ids go on
        _exec(conn, stmt)
    days = [int(r[0]) for r in _exec(
        conn, f"SELECT DISTINCT floor(ts::numeric / {DAY_US}) FROM sample_plain")]
    ensure_days(conn, days)
    _exec(conn, "INSERT INTO sample (id, tag, ts, value, quality, reason) "
                "SELECT id, tag, ts, value, quality, reason FROM sample_plain")
    n = _exec(conn, "SELECT count(*) FROM sample_plain")[0][0]
    _exec(conn, "DROP TABLE sample_plain")
    return int(n)


def create_history(conn: Any, tables: Sequence[Any]) -> None:
    """The history tables among ``tables`` on PostgreSQL: ``sample`` partitioned by day,
    the others as the models define them (missing ones only)."""
    from sqlmodel import SQLModel

    if any(t.name == PARENT for t in tables):
        for stmt in SAMPLE_DDL:
            _exec(conn, stmt)
    others = [t for t in tables if t.name != PARENT]
    if others:
        SQLModel.metadata.create_all(conn, tables=others, checkfirst=True)


def create_all(conn: Any) -> None:
    """Every model table on PostgreSQL, ``sample`` partitioned by day (the migrations')."""
    from sqlmodel import SQLModel

    create_history(conn, SQLModel.metadata.sorted_tables)


def partitions(con: Any) -> dict[int, tuple[int, str]]:
    """Attached day partitions of ``sample``: day → (table oid, name)."""
    rows = _exec(con, "SELECT c.oid::bigint, c.relname FROM pg_inherits i "
                      "JOIN pg_class c ON c.oid = i.inhrelid "
                      "WHERE i.inhparent = 'sample'::regclass")
    out = {}
    for oid, name in rows:
        day = name_day(name)
        if day is not None:
            out[day] = (int(oid), name)
    return out


def ensure_days(con: Any, days: Iterable[int], known: set[int] | None = None) -> set[int]:
    """Create the partitions of ``days`` that do not exist; returns the days now attached.

    Runs in the caller's transaction (the DDL commits or rolls back with the rows).
    ``known``: days the caller already knows to be attached (skipped without a query).
    """
    want = set(days) - (known or set())
    if not want:
        return set(known or ())
    _exec(con, "SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    have = set(partitions(con))
    for day in sorted(want - have):
        _exec(con, f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF sample "
                   f"FOR VALUES FROM ({day * DAY_US}) TO ({(day + 1) * DAY_US})")
        have.add(day)
    return have


def create_ahead(con: Any, now: datetime, ahead_days: int = 1) -> set[int]:
    """Today's partition and ``ahead_days`` more (the writer and the archive pass call it)."""
    from core.store.chunks import to_us

    today = day_of(to_us(now.astimezone(UTC)))
    return ensure_days(con, range(today, today + ahead_days + 1))


def markers(con: Any, lo: int, hi: int) -> set[int]:
    """``chunk`` markers (minus the partition's oid) of attached partitions touching [lo, hi).

    The archive writes a day's rows with ``chunk = -oid`` before it detaches the
    partition in the same transaction; a reader that finds the partition still attached
    drops those archived rows (``core.history``), as it drops archived rows of chunks
    still in SQLite, so every sample is read once.
    """
    first, last = day_of(lo), day_of(max(lo, hi - 1))
    return {-oid for day, (oid, _) in partitions(con).items() if first <= day <= last}


def sample_frame(conn: Any, nums: Sequence[int], lo: int, hi: int) -> Any:
    """``sample`` rows of tag numbers in [lo, hi) µs as a polars frame (tag, ts, value,
    quality, reason), in no particular order.

    A month-scale read is millions of rows, and a cursor's per-row Python tuples cost
    more than the server's work. So the server packs each tag-hour's rows into binary
    columns (``string_agg`` of ``int8send(ts)``, ``float8send(value)``, ...: big-endian
    arrays, NaN / -1 for a missing value / reason) and numpy reads them as they come:
    one row per tag-hour, as a SQLite chunk. The aggregates of one group see the same
    rows in the same order, so the columns line up (checked against ``count(*)``).
    """
    import numpy as np
    import polars as pl

    schema = {"tag": pl.Int64(), "ts": pl.Int64(), "value": pl.Float64(),
              "quality": pl.Int8(), "reason": pl.Int64()}
    if not nums:
        return pl.DataFrame(schema=schema)
    con = conn.connection.driver_connection if hasattr(conn, "connection") else conn
    sql = ("SELECT tag, count(*), string_agg(int8send(ts), ''::bytea), "
           "string_agg(float8send(coalesce(value, 'NaN'::float8)), ''::bytea), "
           "string_agg(int2send(quality), ''::bytea), "
           "string_agg(int4send(coalesce(reason, -1)), ''::bytea) "
           "FROM sample WHERE tag = ANY(%s) AND ts >= %s AND ts < %s "
           "GROUP BY tag, ts / 3600000000")
    with con.cursor(binary=True) as cur:
        cur.execute(sql, ([int(n) for n in nums], int(lo), int(hi)))
        rows = cur.fetchall()
    if not rows:
        return pl.DataFrame(schema=schema)
    lens = [int(r[1]) for r in rows]
    ts = np.frombuffer(b"".join(r[2] for r in rows), ">i8")
    value = np.frombuffer(b"".join(r[3] for r in rows), ">f8")
    quality = np.frombuffer(b"".join(r[4] for r in rows), ">i2")
    reason = np.frombuffer(b"".join(r[5] for r in rows), ">i4")
    if not len(ts) == len(value) == len(quality) == len(reason) == sum(lens):
        raise RuntimeError("sample columns of one group do not line up")
    return pl.DataFrame({
        "tag": np.repeat(np.array([r[0] for r in rows], np.int64), lens),
        "ts": ts.astype(np.int64),
        "value": pl.Series(value.astype(np.float64), nan_to_null=True),
        "quality": quality.astype(np.int8),
        "reason": pl.Series(reason.astype(np.int64)).set(pl.Series(reason < 0), None),
    }, schema=schema)
