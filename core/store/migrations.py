"""Schema versions and the ordered steps that upgrade a store from one to the next.

A fresh store is created from the models and stamped with ``SCHEMA_VERSION``. An
existing store at version N runs every step above N in order, each in its own
transaction together with the new version number, so a failed step leaves the store
at the last good version. Afterwards ``create_all`` adds tables that are new in the
models (checkfirst), so a step only alters tables that already existed at its base.
Steps use plain SQL that both SQLite and PostgreSQL accept (or branch on the dialect),
idempotent where they can be (``IF NOT EXISTS``): the version row and the step commit
together, but a half-applied DDL on a driver without transactional DDL must not wedge
the next attempt. Every table is made through ``create_tables``: the history tables
(``HISTORY_TABLES``) by the dialect's entry in ``HISTORY_LAYOUT`` — the models' tables
on SQLite, ``sample`` partitioned by day on PostgreSQL (``core.store.pg_history``) — the
rest from the models. On
PostgreSQL each schema change ends with ``core.store.roles.grant_writer`` (the
``loopline_writer`` role: no UPDATE/DELETE on the audit chain), and two processes
upgrading at once take turns on a transaction advisory lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Table, inspect, select, text
from sqlmodel import SQLModel

from core.store import StoreError
from core.store.models import DISPATCH, PRODUCTION_COUNT, Meta, audit_guard_sql

BASELINE_VERSION = 1


@dataclass(frozen=True)
class Step:
    version: int  # the version the store is at after this step
    description: str
    apply: Callable[[Connection], None]


# The narrow history: the tables a server store may lay out its own way (partitions).
HISTORY_TABLES = ("sample", "sample_text", "sample_chunk")


def plain_history(conn: Connection, tables: Sequence[Table]) -> None:
    """The history tables exactly as the models define them (SQLite)."""
    SQLModel.metadata.create_all(conn, tables=list(tables), checkfirst=True)


def partitioned_history(conn: Connection, tables: Sequence[Table]) -> None:
    """PostgreSQL: ``sample`` partitioned by day, the others as the models define them."""
    from core.store.pg_history import create_history

    create_history(conn, tables)


# dialect name -> creates the given history tables (they may be missing or present)
HISTORY_LAYOUT: dict[str, Callable[[Connection, Sequence[Table]], None]] = {
    "sqlite": plain_history,
    "postgresql": partitioned_history,
}


def create_tables(conn: Connection, tables: Sequence[Table] | None = None) -> None:
    """Create the missing tables among ``tables`` (default: all), history by dialect."""
    todo = list(SQLModel.metadata.sorted_tables if tables is None else tables)
    history = [t for t in todo if t.name in HISTORY_TABLES]
    rest = [t for t in todo if t.name not in HISTORY_TABLES]
    SQLModel.metadata.create_all(conn, tables=rest, checkfirst=True)
    if history:
        HISTORY_LAYOUT.get(conn.dialect.name, plain_history)(conn, history)


def _after_change(conn: Connection) -> None:
    """Privileges follow the schema (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from core.store.roles import grant_writer

        grant_writer(conn)


def _v2_sample_ts_index(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_sample_ts ON sample (ts)"))


def _v3_audit_guards(conn: Connection) -> None:
    for stmt in audit_guard_sql(conn.dialect.name):
        conn.exec_driver_sql(stmt)


def _v4_narrow_history(conn: Connection) -> None:
    """Wide sample rows (tag id, time text, context ids on every row) to the narrow tables.

    Rows are replayed in id (arrival) order through the same ``NarrowWriter`` the store
    writer uses, so tag numbers, reason codes, text samples and context intervals come
    out as if the rows had been written by this version; the rollup mark follows the rows.
    """
    from core.store.chunks import to_us
    from core.store.models import (
        ContextInterval,
        SampleChunk,
        SampleReason,
        SampleTag,
        SampleText,
    )
    from core.store.models import Sample as NarrowSample
    from core.store.pg_copy import narrow_writer

    conn.execute(text("DROP INDEX IF EXISTS ix_sample_tag_ts"))
    conn.execute(text("DROP INDEX IF EXISTS ix_sample_ts"))
    conn.execute(text("ALTER TABLE sample RENAME TO sample_v3"))
    create_tables(conn, [
        t.__table__ for t in (SampleTag, SampleReason, NarrowSample, SampleChunk,  # type: ignore[attr-defined]
                              SampleText, ContextInterval)])
    writer = narrow_writer(conn.connection.driver_connection, conn.dialect.paramstyle)
    cols = ("id, tag_id, ts, value, text_value, quality, reason, equipment_id, line_id, "
            "order_id, lot_id, recipe_id, batch_id, shift_id, operator_id")
    last = 0
    while True:
        rows = conn.execute(text(f"SELECT {cols} FROM sample_v3 WHERE id > :last "
                                 "ORDER BY id LIMIT 50000"), {"last": last}).fetchall()
        if not rows:
            break
        batch = []
        for r in rows:
            ts = r[2] if isinstance(r[2], datetime) else datetime.fromisoformat(str(r[2]))
            ctx = tuple(r[7:15])
            batch.append((r[1], to_us(ts), r[3], r[4], r[5], r[6], ctx if any(ctx) else None))
        writer.write(batch)
        last = rows[-1][0]
    mark = conn.execute(select(_META.c.value).where(_META.c.key == "ingest.rollup_through")
                        ).first()
    if mark is not None:  # old ids → new ids: number rows keep their order, renumbered from 1
        through = conn.execute(text("SELECT count(*) FROM sample_v3 WHERE id <= :m "
                                    "AND text_value IS NULL"), {"m": int(mark[0])}).scalar_one()
        conn.execute(_META.update().where(_META.c.key == "ingest.rollup_through")
                     .values(value=str(int(through))))
    conn.execute(text("DROP TABLE sample_v3"))


def _v5_plain_tables(conn: Connection) -> None:
    """production_count and dispatch were made on first use with SQLite DDL; now they
    are part of the schema (a SQLite store that has them keeps them as they are)."""
    create_tables(conn, [PRODUCTION_COUNT, DISPATCH])


def _v6_pg_sample_partitions(conn: Connection) -> None:
    """PostgreSQL: a plain ``sample`` table (made before the partitioned layout) becomes
    the day-partitioned one, rows and ids kept. Nothing to do on SQLite."""
    if conn.dialect.name == "postgresql":
        from core.store.pg_history import partition_existing

        partition_existing(conn)


def _v7_line_lease(conn: Connection) -> None:
    from core.store.models import LineLease

    create_tables(conn, [LineLease.__table__])  # type: ignore[attr-defined]


STEPS: list[Step] = [
    Step(2, "index sample(ts) for hot-window pruning and time-range exports",
         _v2_sample_ts_index),
    Step(3, "triggers refusing UPDATE and DELETE on audit_entry", _v3_audit_guards),
    Step(4, "narrow history: tag numbers, integer times, chunks, context intervals",
         _v4_narrow_history),
    Step(5, "production_count and dispatch made by the migrations, on either engine",
         _v5_plain_tables),
    Step(6, "PostgreSQL: sample partitioned by day", _v6_pg_sample_partitions),
    Step(7, "line_lease: which runtime owns which line", _v7_line_lease),
]

SCHEMA_VERSION = STEPS[-1].version if STEPS else BASELINE_VERSION

_META = Meta.__table__  # type: ignore[attr-defined]


def read_version(conn: Connection) -> int | None:
    """The stored schema version; None for a store without one."""
    if not inspect(conn).has_table("meta"):
        return None
    row = conn.execute(select(_META.c.value).where(_META.c.key == "schema_version")).first()
    return int(row[0]) if row else None


def _write_version(conn: Connection, version: int) -> None:
    exists = conn.execute(
        select(_META.c.key).where(_META.c.key == "schema_version")
    ).first()
    if exists:
        conn.execute(_META.update().where(_META.c.key == "schema_version")
                     .values(value=str(version)))
    else:
        conn.execute(_META.insert().values(key="schema_version", value=str(version)))


UPGRADE_LOCK_KEY = 0x6C6F6F706C696E65  # "loopline": the migrations' advisory lock


def _lock(conn: Connection) -> None:
    """Open the transaction with the write lock taken.

    pysqlite runs DDL outside any transaction unless one is open; BEGIN IMMEDIATE makes
    a step atomic and makes two processes opening a new store at once take turns. On
    PostgreSQL (transactional DDL) a transaction advisory lock does the taking turns.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": UPGRADE_LOCK_KEY})


def upgrade(engine: Engine, steps: Sequence[Step] | None = None) -> list[Step]:
    """Bring the store to the newest version; returns the steps that ran."""
    steps = list(STEPS if steps is None else steps)
    versions = [s.version for s in steps]
    if versions != sorted(set(versions)) or (versions and versions[0] <= BASELINE_VERSION):
        raise ValueError("migration steps must have strictly increasing versions above baseline")
    latest = versions[-1] if versions else BASELINE_VERSION
    with engine.connect() as conn:
        current = read_version(conn)
        fresh = not inspect(conn).get_table_names()
    if fresh:
        with engine.begin() as conn:
            _lock(conn)
            if not inspect(conn).get_table_names():  # nobody created it meanwhile
                create_tables(conn)
                _write_version(conn, latest)
                _after_change(conn)
                return []
            current = read_version(conn)
    if current is None:
        current = BASELINE_VERSION  # tables made before versioning existed: the baseline
    if current > latest:
        raise StoreError(
            f"the store is at schema version {current}, newer than this loopline "
            f"understands ({latest}); upgrade loopline or use another --db"
        )
    ran: list[Step] = []
    for step in steps:
        if step.version <= current:
            continue
        try:
            with engine.begin() as conn:
                _lock(conn)
                now_at = read_version(conn) or current
                if now_at >= step.version:  # another process got here first
                    continue
                step.apply(conn)
                _write_version(conn, step.version)
                _after_change(conn)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(
                f"upgrading the store to schema version {step.version} "
                f"({step.description}) failed: {e}"
            ) from e
        ran.append(step)
    with engine.connect() as conn:
        missing = set(SQLModel.metadata.tables) - set(inspect(conn).get_table_names())
        unversioned = read_version(conn) is None
    if missing or unversioned:  # only then take the write lock: readers open without it
        with engine.begin() as conn:
            _lock(conn)
            create_tables(conn)  # tables new since `current`
            if read_version(conn) is None:
                _write_version(conn, current)
            _after_change(conn)
    return ran
