"""Schema versions: fresh stores are stamped, old ones upgraded in order, bad ones refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from legacy_store import make_v3
from sqlalchemy import Connection, text

from core.store import StoreError, migrations
from core.store.db import open_store
from core.store.migrations import SCHEMA_VERSION, Step


def _schema(path: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        con.close()


def _make_v1(path: Path) -> None:
    """A store as version 1 of loopline left it: no sample(ts) index, no audit triggers."""
    make_v3(path)
    con = sqlite3.connect(path)
    con.execute("DROP INDEX ix_sample_ts")
    con.execute("DROP TRIGGER audit_entry_no_update")
    con.execute("DROP TRIGGER audit_entry_no_delete")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()


def test_fresh_store_is_stamped_with_the_newest_version(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "x.db"  # parent folders are created
    with open_store(str(path)) as st:
        assert st.schema_version() == SCHEMA_VERSION >= 2
    assert path.is_file()


def test_version_1_store_is_upgraded_to_the_same_schema_as_a_fresh_one(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    _make_v1(old)
    assert "ix_sample_ts" not in {n for _, n, _ in _schema(old)}
    with open_store(str(old)) as st:
        assert st.schema_version() == SCHEMA_VERSION
    open_store(str(fresh)).close()
    assert _schema(old) == _schema(fresh)


def test_steps_run_in_order_only_above_the_stored_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _make_v1(path)
    ran: list[int] = []

    def step(v: int) -> Callable[[Connection], None]:
        def apply(conn: Connection) -> None:
            ran.append(v)
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS t{v} (x INTEGER)"))
        return apply

    steps = [Step(2, "two", step(2)), Step(3, "three", step(3)), Step(4, "four", step(4))]
    st = open_store(str(path), upgrade=False)
    try:
        assert [s.version for s in migrations.upgrade(st.engine, steps)] == [2, 3, 4]
        assert ran == [2, 3, 4]
        assert st.schema_version() == 4
        assert migrations.upgrade(st.engine, steps) == []  # nothing left to do
        assert ran == [2, 3, 4]
    finally:
        st.close()


def test_failed_step_leaves_the_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    _make_v1(path)

    def boom(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("disk on fire")

    steps = [Step(2, "index", migrations._v2_sample_ts_index), Step(3, "breaks", boom)]
    st = open_store(str(path), upgrade=False)
    try:
        with pytest.raises(StoreError, match=r"version 3 \(breaks\) failed: disk on fire"):
            migrations.upgrade(st.engine, steps)
        assert st.schema_version() == 2
        assert "half_done" not in {n for _, n, _ in _schema(path)}  # rolled back
    finally:
        st.close()


def test_store_from_a_newer_loopline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    open_store(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 99, newer than"):
        open_store(str(path))


def test_steps_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        migrations.upgrade(None, [Step(3, "a", lambda c: None),  # type: ignore[arg-type]
                                  Step(2, "b", lambda c: None)])


def test_every_table_compiles_for_postgresql() -> None:
    """The URL-built engine is meant to move to PostgreSQL: no SQLite-only DDL."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable
    from sqlmodel import SQLModel

    import core.store.models  # noqa: F401 - registers the tables

    pg = postgresql.dialect()
    for table in SQLModel.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=pg))
        assert f"CREATE TABLE {table.name}" in ddl
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=pg))
    sample = str(CreateTable(SQLModel.metadata.tables["sample"]).compile(dialect=pg))
    assert "ts BIGINT NOT NULL" in sample  # µs since the epoch, UTC
    assert "quality SMALLINT NOT NULL" in sample
    chunk = str(CreateTable(SQLModel.metadata.tables["sample_chunk"]).compile(dialect=pg))
    assert "data BYTEA NOT NULL" in chunk
