"""The small and the aggregate reads agree with history() across recent rows, chunks and archive."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from core.history import aggregate, history, latest, newest_ts
from core.ingest.archive import archive
from core.ingest.compaction import compact
from core.store.db import open_store
from core.store.sample_writer import write_samples

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _store(tmp_path: Path):  # type: ignore[no-untyped-def]
    st = open_store(str(tmp_path / "a.db"))
    rows = [{"tag_id": f"E.t{i % 2}", "ts": T0 + timedelta(seconds=7 * i),
             "value": float(i % 50), "quality": 2 if i % 13 == 0 else 0, "equipment_id": "E",
             "lot_id": f"L-{i // 5000}"} for i in range(30_000)]
    with st.begin() as c:
        write_samples(c, rows)
    return st, rows


def test_aggregate_equals_minutes_of_history(tmp_path: Path) -> None:
    st, _ = _store(tmp_path)
    archive(tmp_path / "a.db", tmp_path / "h", T0 + timedelta(days=1, hours=12), 12)
    span = (T0, T0 + timedelta(days=5))
    got = aggregate(st, tmp_path / "h", ["E.t0", "E.t1"], *span)
    h = history(st, tmp_path / "h", ["E.t0", "E.t1"], *span).filter(pl.col("quality") == 0)
    want = (h.sort("tag_id", "ts").group_by_dynamic("ts", every="1m", group_by="tag_id")
            .agg(pl.col("value").min().alias("min"), pl.col("value").mean().alias("mean"),
                 pl.col("value").max().alias("max"), pl.len().cast(pl.UInt32).alias("count")))
    assert got.height == want.height > 1000
    assert got.select("tag_id", "ts", "min", "max", "count").equals(
        want.select("tag_id", "ts", "min", "max", "count"))
    assert (got["mean"] - want["mean"]).abs().max() < 1e-9
    st.close()


def test_latest_and_newest_over_rows_and_chunks(tmp_path: Path) -> None:
    st, rows = _store(tmp_path)
    con = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    compact(con, 20_000)  # the older two thirds in chunks, the rest recent rows
    con.close()
    with st.engine.connect() as c:
        got = latest(c, ["E.t0", "E.t1", "E.none"], 12_000)
        good = latest(c, ["E.t1"], 5, good_only=True)
        assert newest_ts(c) == rows[-1]["ts"]
    t0_rows = [r for r in rows if r["tag_id"] == "E.t0"]
    assert [p[0] for p in got["E.t0"]] == [r["ts"] for r in t0_rows[-12_000:]]
    assert "E.none" not in got
    want = [r for r in rows if r["tag_id"] == "E.t1" and r["quality"] == 0][-5:]
    assert [(p[0], p[1]) for p in good["E.t1"]] == [(r["ts"], r["value"]) for r in want]
    st.close()
