"""Archive to Parquet and history over hot + archived rows, without duplicates."""
# the archive holds tag numbers and times only: context comes back from the intervals

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import polars as pl
from ingest_helpers import CTX, T0, rows

from core.history import history
from core.ingest.archive import JOURNAL, Archiver, archive
from core.ingest.writer import StoreWriter
from core.samples import Context, ContextSample, Quality
from core.store.db import open_store
from ml import contract

TAGS = ["A-LATHE1.bearing_temp", "C-EXTR1.zone_temp"]
C_CTX = Context(equipment_id="C-EXTR1", line_id="C", order_id="PO-0005", lot_id="L-00501")


def _fill(db: Path, tmp_path: Path) -> None:
    """48 h of one sample per 10 min per tag (tag 0 on line A, tag 1 on line C), some Bad."""
    out = []
    for i in range(48 * 6):
        ts = T0 + timedelta(minutes=10 * i)
        for k, tag in enumerate(TAGS):
            bad = i % 50 == 7
            out.append(ContextSample(tag, ts, None if bad else float(i + 1000 * k),
                                     Quality.BAD if bad else Quality.GOOD, None,
                                     CTX if k == 0 else C_CTX))
    with StoreWriter(db, tmp_path / "spill", flush_ms=10) as w:
        w.submit(out)
        assert w.drain(30)


def test_archive_then_history_hot_and_archived(tmp_path: Path) -> None:
    db, arch = tmp_path / "h.db", tmp_path / "history"
    store = open_store(str(db))
    _fill(db, tmp_path)
    now = T0 + timedelta(hours=48)
    before = history(store, None, TAGS, T0, now)
    assert before.height == 2 * 48 * 6
    rep = archive(db, arch, now, hot_window_h=24)
    assert rep.rows == 2 * 24 * 6
    # the pass compacted the recent rows; the younger half stays as chunks in SQLite
    assert rows(db, "SELECT count(*) FROM sample") == [(0,)]
    assert rows(db, "SELECT sum(n) FROM sample_chunk") == [(2 * 24 * 6,)]
    dirs = sorted(p.relative_to(arch).parent.as_posix() for p in rep.files)
    assert dirs == ["date=2026-01-05", "date=2026-01-06"]
    f = pl.read_parquet(rep.files[0])
    assert f.columns == ["tag", "ts", "value", "quality", "reason", "chunk"]
    assert f.select(["tag", "ts"]).equals(f.select(["tag", "ts"]).sort(["tag", "ts"]))
    after = history(store, arch, TAGS, T0, now)
    assert after.equals(before)
    assert after.schema["ts"] == pl.Datetime("us", "UTC")
    assert contract.history(after).schema == contract.HISTORY_SCHEMA  # ml/ accepts it
    assert after.schema["quality"] == pl.Int8 and after.schema["value"] == pl.Float64
    assert after.filter(pl.col("quality") == 2)["value"].null_count() == \
        after.filter(pl.col("quality") == 2).height > 0
    # a range across the boundary, one tag
    mid = history(store, arch, TAGS[1:], T0 + timedelta(hours=23), T0 + timedelta(hours=25))
    assert mid.height == 12 and mid["tag_id"].unique().to_list() == [TAGS[1]]
    assert mid["lot_id"].unique().to_list() == ["L-00501"]
    # re-running archives nothing more and duplicates nothing
    assert archive(db, arch, now, hot_window_h=24).rows == 0
    assert history(store, arch, TAGS, T0, now).equals(before)
    store.close()


def test_interrupted_archive_is_redone_without_duplicates(tmp_path: Path) -> None:
    db, arch = tmp_path / "h.db", tmp_path / "history"
    store = open_store(str(db))
    _fill(db, tmp_path)
    now = T0 + timedelta(hours=48)
    full = history(store, None, TAGS, T0, now)

    class Crash(Exception):
        pass

    class _NoDelete:
        """The connection of a process that dies just before deleting archived rows."""

        def __init__(self, con: sqlite3.Connection) -> None:
            self.con = con

        def execute(self, sql: str, *a: object) -> sqlite3.Cursor:
            if sql.startswith("DELETE"):
                raise Crash()
            return self.con.execute(sql, *a)  # type: ignore[arg-type]

    class CrashingArchiver(Archiver):
        def _chunk(self, con, lo, hi, cutoff, report):  # type: ignore[no-untyped-def]
            super()._chunk(_NoDelete(con), lo, hi, cutoff, report)

    with contextlib.suppress(Crash):
        CrashingArchiver(db, arch, chunk_rows=1000).run(now, 24)
    assert (arch / JOURNAL).exists() and json.loads((arch / JOURNAL).read_text())["lo"] == 1
    # between the crash and the next run, history still shows every row once
    assert history(store, arch, TAGS, T0, now).equals(full)
    rep = archive(db, arch, now, hot_window_h=24)
    assert rep.redone and not (arch / JOURNAL).exists()
    assert history(store, arch, TAGS, T0, now).equals(full)
    n_files = len(list(arch.glob("date=*/*.parquet")))
    assert n_files == 2  # redone files overwrote, not added
    store.close()
