"""A store from before the narrow history (version 3) migrates and reads the same.

The wide rows (and a Parquet file the old archiver wrote) are the reference: after
``open_store`` upgrades the file, ``core.history`` returns exactly the frame the wide
rows describe, the tables are narrow, and the store writer carries on where it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from legacy_store import WIDE_COLUMNS, make_v3
from sqlalchemy import inspect

from core.history import COLUMNS, OUT_SCHEMA, history
from core.ingest.writer import StoreWriter
from core.samples import Context, ContextSample, Quality
from core.store.db import open_store
from core.store.migrations import SCHEMA_VERSION
from core.store.raw import connect_raw

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)
EQS = [("A-LATHE1", "A"), ("A-MILL1", "A"), ("C-EXTR1", "C")]
FAR = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _text(ts: datetime) -> str:
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _wide_rows(seconds: int, start: datetime = T0) -> list[tuple[object, ...]]:
    """1 Hz rows of 3 machines x 3 signals + a text tag, one plant tag without context;
    each machine changes lot every 10 minutes (staggered), every 37th row is Bad."""
    out: list[tuple[object, ...]] = []
    k = 0
    for sec in range(seconds):
        ts = _text(start + timedelta(seconds=sec))
        for n, (eq, line) in enumerate(EQS):
            lot = f"L-{(sec + 200 * n) // 600:05d}"
            ctx = (eq, line, f"PO-{n + 1:04d}", lot, "R-SH20", "B-0001",
                   "early" if sec < 900 else "late", "olga")
            for name in ("bearing_temp", "spindle_load", "vibration_rms"):
                k += 1
                bad = k % 37 == 0
                out.append((f"{eq}.{name}", ts, None if bad else round(20 + (k % 91) * 0.37, 3),
                            None, 2 if bad else 0, "timeout" if bad else None, *ctx))
            if sec % 120 == 0:
                out.append((f"{eq}.state_text", ts, None, f"running-{sec // 120}", 0, None,
                            *ctx))
        out.append(("plant.clock", ts, float(sec), None, 1 if sec % 50 == 0 else 0,
                    "stale" if sec % 50 == 0 else None, *([None] * 8)))
    return out


def _expected(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema=dict.fromkeys(WIDE_COLUMNS, pl.String()) | {
        "value": pl.Float64(), "quality": pl.Int8()}, orient="row")
    df = df.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us",
                                                      time_zone="UTC"))
    return df.select(COLUMNS).cast(OUT_SCHEMA).sort(["ts", "tag_id"], maintain_order=True)


def _old_archive_file(arch: Path, rows: list[tuple[object, ...]]) -> None:
    """What the version-3 archiver wrote: line/date partitions, strings, an id column."""
    df = _expected(rows).with_columns(pl.int_range(1, len(rows) + 1, dtype=pl.Int64).alias("id"))
    for (line, day), part in df.with_columns(
            pl.col("line_id").fill_null("_none").alias("_l"),
            pl.col("ts").dt.date().cast(pl.String).alias("_d")).group_by(["_l", "_d"]):
        d = arch / f"line={line}" / f"date={day}"
        d.mkdir(parents=True)
        part.drop("_l", "_d").write_parquet(d / "part-000000000001-000000001000-x.parquet")


def test_v3_store_migrates_and_reads_the_same(db_url: str, tmp_path: Path) -> None:
    db, arch = db_url, tmp_path / "history"
    archived = _wide_rows(600, T0 - timedelta(days=2))
    hot = _wide_rows(1800)
    make_v3(db, hot)
    con = connect_raw(db)
    con.execute("INSERT INTO meta (key, value) VALUES ('ingest.rollup_through', '9000')")
    con.close()
    _old_archive_file(arch, archived)
    tags = sorted({str(r[0]) for r in hot})

    with open_store(str(db)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        got = history(store, arch, tags, *FAR)
        assert got.equals(_expected(archived + hot))
        # and a window inside a lot, one machine's tags only
        lo, hi = T0 + timedelta(minutes=11), T0 + timedelta(minutes=12)
        part = history(store, None, ["A-MILL1.bearing_temp", "A-MILL1.state_text"], lo, hi)
        want = _expected(hot).filter(pl.col("tag_id").is_in(["A-MILL1.bearing_temp",
                                                             "A-MILL1.state_text"])
                                     & pl.col("ts").is_between(lo, hi, closed="left"))
        assert part.equals(want) and part["lot_id"].unique().to_list() == ["L-00001"]

    with open_store(db) as store, store.engine.connect() as c:
        tables = set(inspect(c).get_table_names())
        assert "sample_v3" not in tables and {"sample_chunk", "context_interval"} <= tables
        cols = [col["name"] for col in inspect(c).get_columns("sample")]
        assert cols == ["id", "tag", "ts", "value", "quality", "reason"]
    con = connect_raw(db)
    try:
        n_num = con.execute("SELECT count(*) FROM sample").fetchone()[0]
        n_txt = con.execute("SELECT count(*) FROM sample_text").fetchone()[0]
        assert n_num + n_txt == len(hot) and n_txt == 3 * 15
        # context: one interval per change per machine, not one copy per row
        n_iv = con.execute("SELECT count(*) FROM context_interval").fetchone()[0]
        assert n_iv <= 3 * (1 + 3 + 1 + 1)
        assert con.execute("SELECT count(*) FROM sample_tag").fetchone()[0] == len(tags)
        # the rollup mark follows the rows (old id 9000 → the 9000th row, minus text rows)
        mark = int(con.execute("SELECT value FROM meta WHERE key = 'ingest.rollup_through'")
                   .fetchone()[0])
        assert mark == sum(1 for r in hot[:9000] if r[3] is None)
    finally:
        con.close()

    # the writer carries on: the open intervals continue, new rows read back with them
    ctx = Context(equipment_id="A-LATHE1", line_id="A", order_id="PO-0001", lot_id="L-00002",
                  recipe_id="R-SH20", batch_id="B-0001", shift_id="late", operator_id="olga")
    more = [ContextSample("A-LATHE1.bearing_temp", T0 + timedelta(seconds=1800 + i), 30.0 + i,
                          Quality.GOOD, None, ctx) for i in range(5)]
    with StoreWriter(db, tmp_path / "spill", flush_ms=10) as w:
        w.submit(more)
        assert w.drain(30)
    with open_store(str(db)) as store:
        after = history(store, None, ["A-LATHE1.bearing_temp"], T0 + timedelta(seconds=1799),
                        FAR[1])
    assert after["value"].to_list()[1:] == [30.0, 31.0, 32.0, 33.0, 34.0]
    assert after["lot_id"].to_list() == ["L-00002"] * 6
