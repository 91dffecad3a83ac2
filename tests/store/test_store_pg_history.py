"""History on a real PostgreSQL server: day partitions, COPY writer, archive, same reads as SQLite.

The server is the suite's throwaway cluster (``pg_cluster``/``pg_url`` in
tests/conftest.py); each test gets its own database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core import history as h
from core.ingest.pg_archive import PgArchiver
from core.samples import Context, ContextSample, Quality
from core.store import pg_history
from core.store.db import Store, open_store
from core.store.pg_copy import PgCopyWriter
from core.store.sample_writer import write_samples

pytestmark = pytest.mark.postgresql
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
TAGS = ["A-M1.temp", "A-M1.speed", "A-M1.lot", "B-M2.temp"]


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    st = open_store(pg_url)
    try:
        yield st
    finally:
        st.close()


def _ctx(eq: str, lot: str) -> Context:
    return Context(equipment_id=eq, line_id=eq[0], order_id="PO-1", lot_id=lot,
                   recipe_id="R-1", batch_id="B-1", shift_id="early", operator_id="olga")


def samples(start: datetime, n: int) -> list[ContextSample]:
    """n seconds of 4 tags: numbers, a text tag, a Bad sample with a reason, a lot change."""
    out = []
    for i in range(n):
        ts = start + timedelta(seconds=i)
        lot = "L-1" if i < n // 2 else "L-2"
        for tag in TAGS:
            eq = tag.split(".")[0]
            if tag.endswith(".lot"):
                out.append(ContextSample(tag, ts, lot, Quality.GOOD, None, _ctx(eq, lot)))
            elif i % 17 == 5:
                out.append(ContextSample(tag, ts, None, Quality.BAD, "timeout", _ctx(eq, lot)))
            else:
                out.append(ContextSample(tag, ts, round(i * 0.5 + len(tag), 3), Quality.GOOD,
                                         None, _ctx(eq, lot)))
    return out


def write(store: Store, batch: list[ContextSample]) -> None:
    with store.begin() as conn:
        write_samples(conn, batch)


def days(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return sorted(pg_history.partitions(conn))


def read(store: Store, archive: Path | None, lo: datetime, hi: datetime) -> pl.DataFrame:
    return h.history(store, archive, TAGS, lo, hi)


def day_no(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) // 86_400


def test_sample_is_partitioned_by_day(pg_store: Store) -> None:
    with pg_store.engine.connect() as conn:
        kind = conn.exec_driver_sql("SELECT relkind FROM pg_class WHERE relname = 'sample'"
                                    ).scalar_one()
        key = conn.exec_driver_sql("SELECT pg_get_partkeydef('sample'::regclass)").scalar_one()
    assert kind == "p" and key == "RANGE (ts)"
    assert days(pg_store) == []
    assert pg_store.schema_version() is not None


def test_partitions_created_ahead_and_for_a_late_sample(pg_store: Store) -> None:
    d = day_no(T0)
    write(pg_store, samples(T0, 60))
    assert days(pg_store) == [d, d + 1]  # today, and tomorrow ahead of midnight
    late = T0 - timedelta(days=6, hours=3)
    write(pg_store, [ContextSample("A-M1.temp", late, 1.25, Quality.GOOD, None,
                                   _ctx("A-M1", "L-0"))])
    assert days(pg_store) == [d - 6, d, d + 1]  # just the late sample's day, none ahead
    got = read(pg_store, None, late - timedelta(hours=1), late + timedelta(hours=1))
    assert got.select("tag_id", "value").rows() == [("A-M1.temp", 1.25)]
    with pg_store.engine.connect() as conn:
        n = conn.exec_driver_sql(f"SELECT count(*) FROM {pg_history.partition_name(d - 6)}"
                                 ).scalar_one()
    assert n == 1


def test_copy_writer_round_trip_same_as_sqlite(pg_store: Store, tmp_path: Path) -> None:
    """The same samples through the COPY writer and through SQLite read back identically."""
    batch = samples(T0, 300)
    lite = open_store(str(tmp_path / "lite.db"))
    try:
        for part in (batch[:500], batch[500:]):
            write(lite, part)
        con = pg_store.engine.raw_connection()
        try:
            w = PgCopyWriter(con.driver_connection)  # type: ignore[attr-defined]
            assert w.write_stamped(batch[:500])
            con.commit()
            w.write_stamped(batch[500:])
            con.commit()
        finally:
            con.close()
        lo, hi = T0 - timedelta(minutes=1), T0 + timedelta(hours=1)
        a, b = read(lite, None, lo, hi), read(pg_store, None, lo, hi)
        assert a.height == len(batch) == b.height
        assert a.equals(b)
        assert b.filter(pl.col("tag_id") == "A-M1.lot")["text_value"].unique().sort().to_list() \
            == ["L-1", "L-2"]
        bad = b.filter(pl.col("quality") == 2)
        assert bad.height and bad["reason"].unique().to_list() == ["timeout"]
        assert bad["value"].null_count() == bad.height
        assert b.filter(pl.col("ts") >= T0 + timedelta(seconds=150))["lot_id"].unique(
            ).to_list() == ["L-2"]
        agg_a = h.aggregate(lite, None, TAGS, lo, hi)
        agg_b = h.aggregate(pg_store, None, TAGS, lo, hi)
        assert agg_a.height > 0 and agg_a.equals(agg_b)
        with lite.engine.connect() as c1, pg_store.engine.connect() as c2:
            assert h.latest(c1, TAGS, 3) == h.latest(c2, TAGS, 3)
            assert h.newest_ts(c1) == h.newest_ts(c2) == T0 + timedelta(seconds=299)
    finally:
        lite.close()


def _three_days(store: Store) -> tuple[datetime, datetime]:
    for k in range(3):
        write(store, samples(T0 + timedelta(days=k), 120))
    return T0 - timedelta(hours=1), T0 + timedelta(days=3)


def test_archive_detaches_old_days_exactly_once(pg_store: Store, tmp_path: Path) -> None:
    arch = tmp_path / "history"
    lo, hi = _three_days(pg_store)
    before = read(pg_store, arch, lo, hi)
    d = day_no(T0)
    now = T0 + timedelta(days=3, hours=1)  # cutoff: day 3 06:00 - 24 h → days 0 and 1 are old
    rep = PgArchiver(pg_store, arch).run(now, 24)
    assert rep.rows == 2 * 120 * 3  # numbers only: text samples stay in sample_text
    assert sorted(p.parent.name for p in rep.files) == ["date=2026-01-05", "date=2026-01-06"]
    assert days(pg_store) == [d + 2, d + 3, d + 4]  # the old two dropped; ahead of now
    after = read(pg_store, arch, lo, hi)
    assert after.equals(before)
    files = sorted(arch.rglob("*.parquet"))
    again = PgArchiver(pg_store, arch).run(now, 24)
    assert again.rows == 0 and sorted(arch.rglob("*.parquet")) == files
    assert read(pg_store, arch, lo, hi).equals(before)
    assert h.aggregate(pg_store, arch, TAGS, lo, hi)["count"].sum() == \
        before.filter((pl.col("quality") == 0) & pl.col("value").is_not_null()).height


class _DiesBeforeCommit(PgArchiver):
    """An archive pass that dies after its files are renamed, before the detach commits."""

    def _day(self, conn: Any, day: int, name: str, report: Any) -> bool:
        super()._day(conn, day, name, report)
        raise RuntimeError("killed")


def test_archive_interrupted_before_commit_reads_once_and_is_redone(
        pg_store: Store, tmp_path: Path) -> None:
    arch = tmp_path / "history"
    lo, hi = _three_days(pg_store)
    before = read(pg_store, arch, lo, hi)
    now = T0 + timedelta(days=3, hours=1)
    with pytest.raises(RuntimeError, match="killed"):
        _DiesBeforeCommit(pg_store, arch).run(now, 24)
    files = sorted(arch.rglob("*.parquet"))
    assert files and day_no(T0) in days(pg_store)  # files written, partition still attached
    assert read(pg_store, arch, lo, hi).equals(before)  # archived copies skipped: once
    rep = PgArchiver(pg_store, arch).run(now, 24)
    assert rep.rows == 2 * 120 * 3
    assert set(files) <= set(arch.rglob("*.parquet"))  # the same names, overwritten
    assert read(pg_store, arch, lo, hi).equals(before)


def test_late_sample_for_an_archived_day(pg_store: Store, tmp_path: Path) -> None:
    """A writer that still believes the day attached re-creates it; both parts read once."""
    arch = tmp_path / "history"
    lo, hi = _three_days(pg_store)
    con = pg_store.engine.raw_connection()
    try:
        w = PgCopyWriter(con.driver_connection)  # type: ignore[attr-defined]
        con.commit()
        assert day_no(T0) in w.days
        now = T0 + timedelta(days=3, hours=1)
        first = PgArchiver(pg_store, arch).run(now, 24)
        late = T0 + timedelta(seconds=7, microseconds=500)
        w.write_stamped([ContextSample("A-M1.temp", late, 99.5, Quality.GOOD, None,
                                       _ctx("A-M1", "L-1"))])
        con.commit()
    finally:
        con.close()
    assert day_no(T0) in days(pg_store)
    got = read(pg_store, arch, lo, hi)
    assert got.height == 3 * 120 * 4 + 1
    assert got.filter(pl.col("ts") == late)["value"].to_list() == [99.5]
    second = PgArchiver(pg_store, arch).run(now, 24)
    assert second.rows == 1 and {p.name for p in second.files}.isdisjoint(
        p.name for p in first.files)
    assert read(pg_store, arch, lo, hi).equals(got)


def test_bench_store_reports_postgres_beside_raw_copy(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main as bench_main

    url = pg_url
    assert bench_main(["store", "--rows", "600", "--batch", "250", "--reps", "1",
                       "--db", url, "--json"]) == 0
    pg = json.loads(capsys.readouterr().out)["postgresql"]
    names = [r["name"] for r in pg["results"]]
    assert names[0] == "raw psycopg COPY (binary)" and "PgCopyWriter (ContextSample)" in names
    assert pg["results"][0]["ratio_to_raw"] == 1.0
    assert all(r["rows_per_s"] > 0 for r in pg["results"]) and pg["bytes_per_sample"] > 0
    assert "fsync" in pg["server"]


def test_bench_history_reports_postgres_reads(
        pg_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from bench.__main__ import main as bench_main

    url = pg_url
    assert bench_main(["history", "--days", "1", "--tags", "36", "--pg-tags", "36",
                       "--hot-hours", "18", "--reps", "2", "--dir", str(tmp_path / "h"),
                       "--db", url, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["postgresql"]
    assert r["hot"] == 36 * 18 * 3600
    assert r["tag_8h"]["hot_p95_s"] > 0 and r["tag_8h"]["raw_fetch_p95_s"] > 0
    assert r["tag_8h"]["archive_p95_s"] > 0 and r["tag_span_1m"]["minutes"] > 0
    assert r["ml_window"]["rows"] == 36 * (18 * 3600 - 1)


def test_plain_sample_table_becomes_partitioned_on_upgrade(pg_url: str) -> None:
    """A PostgreSQL store made before the partitioned layout (version 5) upgrades in place."""
    from sqlmodel import SQLModel

    from core.store.models import Sample

    st = open_store(pg_url)
    d = day_no(T0)
    with st.begin() as conn:
        conn.exec_driver_sql("DROP TABLE sample CASCADE")
        conn.exec_driver_sql("DROP SEQUENCE IF EXISTS sample_id_seq")
        SQLModel.metadata.create_all(conn, tables=[Sample.__table__])  # type: ignore[attr-defined]
        us = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
        conn.exec_driver_sql("INSERT INTO sample (tag, ts, value, quality) VALUES "
                             f"(1, {us}, 1.5, 0), (1, {us - 86_400_000_000}, 2.5, 0)")
        conn.exec_driver_sql("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    st.close()
    st = open_store(pg_url)
    try:
        with st.engine.connect() as conn:
            assert pg_history.is_partitioned(conn)
            rows = conn.exec_driver_sql("SELECT id, value FROM sample ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [(1, 1.5), (2, 2.5)]
        assert days(st) == [d - 1, d]
        with st.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO sample (tag, ts, value) VALUES (1, {us + 1}, 3.5)")
            assert conn.exec_driver_sql("SELECT max(id) FROM sample").scalar_one() == 3
    finally:
        st.close()


def test_store_writer_copies_into_partitions_and_archiver_detaches(
        pg_store: Store, tmp_path: Path) -> None:
    """The ingest path on PostgreSQL: StoreWriter → COPY writer; no compaction; the chunk
    Archiver of a PostgreSQL store archives whole days."""
    from core.ingest.archive import Archiver
    from core.ingest.writer import StoreWriter

    batch = samples(T0, 200) + samples(T0 + timedelta(days=1), 100)
    w = StoreWriter(pg_store.target, tmp_path / "spill", flush_ms=20).start()
    try:
        assert w.submit(batch) == len(batch)
        assert w.drain(30)
        assert w.compact_now(30)
    finally:
        stats = w.close()
    assert stats.stored == len(batch) and stats.compacted == 0 and not stats.error
    assert days(pg_store) == [day_no(T0), day_no(T0) + 1, day_no(T0) + 2]
    lo, hi = T0 - timedelta(hours=1), T0 + timedelta(days=2)
    before = read(pg_store, None, lo, hi)
    assert before.height == len(batch)
    with pg_store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sample_rollup").scalar_one() > 0
    rep = Archiver(pg_store.target, tmp_path / "history").run(
        T0 + timedelta(days=2, hours=1), 24)
    assert rep.rows == 200 * 3 and day_no(T0) not in days(pg_store)
    assert read(pg_store, tmp_path / "history", lo, hi).equals(before)
