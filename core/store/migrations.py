"""Schema versions and the ordered steps that upgrade a store from one to the next.

A fresh store is created from the models and stamped with ``SCHEMA_VERSION``. An
existing store at version N runs every step above N in order, each in its own
transaction together with the new version number, so a failed step leaves the store
at the last good version. Afterwards ``create_all`` adds tables that are new in the
models (checkfirst), so a step only alters tables that already existed at its base.
Steps use plain SQL that both SQLite and PostgreSQL accept, idempotent where they can
be (``IF NOT EXISTS``): the version row and the step commit together, but a half-applied
DDL on a driver without transactional DDL must not wedge the next attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, inspect, select, text
from sqlmodel import SQLModel

from core.store import StoreError
from core.store.models import AUDIT_GUARD_SQL, Meta

BASELINE_VERSION = 1


@dataclass(frozen=True)
class Step:
    version: int  # the version the store is at after this step
    description: str
    apply: Callable[[Connection], None]


def _v2_sample_ts_index(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_sample_ts ON sample (ts)"))


def _v3_audit_guards(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for stmt in AUDIT_GUARD_SQL:
            conn.execute(text(stmt))


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
    from core.store.narrow import NarrowWriter

    conn.execute(text("DROP INDEX IF EXISTS ix_sample_tag_ts"))
    conn.execute(text("DROP INDEX IF EXISTS ix_sample_ts"))
    conn.execute(text("ALTER TABLE sample RENAME TO sample_v3"))
    SQLModel.metadata.create_all(conn, tables=[
        t.__table__ for t in (SampleTag, SampleReason, NarrowSample, SampleChunk,  # type: ignore[attr-defined]
                              SampleText, ContextInterval)])
    writer = NarrowWriter(conn.connection.driver_connection, conn.dialect.paramstyle)
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


STEPS: list[Step] = [
    Step(2, "index sample(ts) for hot-window pruning and time-range exports",
         _v2_sample_ts_index),
    Step(3, "triggers refusing UPDATE and DELETE on audit_entry", _v3_audit_guards),
    Step(4, "narrow history: tag numbers, integer times, chunks, context intervals",
         _v4_narrow_history),
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


def _lock(conn: Connection) -> None:
    """Open the transaction with the write lock taken (SQLite).

    pysqlite runs DDL outside any transaction unless one is open; BEGIN IMMEDIATE makes
    a step atomic and makes two processes opening a new store at once take turns.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
                SQLModel.metadata.create_all(conn)
                _write_version(conn, latest)
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
            SQLModel.metadata.create_all(conn, checkfirst=True)  # tables new since `current`
            if read_version(conn) is None:
                _write_version(conn, current)
    return ran
