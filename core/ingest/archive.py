"""Move chunks older than the hot window from the store to Parquet, exactly once, crash-safe.

Layout: ``archive_dir/date=<YYYY-MM-DD>/part-<lo>-<hi>.parquet`` (hive partition by
the samples' UTC date; a chunk is one tag's hour, so it never crosses midnight).
Columns: ``tag`` (int32 tag number, see ``sample_tag``), ``ts`` (timestamp µs UTC),
``value`` (f64, null when none), ``quality`` (int8), ``reason`` (int32 code, null when
none) and ``chunk`` (the ``sample_chunk.seq`` the row came from); rows sorted by
(tag, ts), zstd, times delta-encoded, ids dictionary/RLE encoded, small row groups
with statistics so one tag's read touches one or two of them per file.
Context is not repeated in the files: it stays in ``context_interval`` and
``core.history`` joins it, for archived rows as for hot ones.

A pass first compacts the recent rows up to the rollup mark (``compaction``), then
works in chunk-seq ranges. Each range is written to a journal
(``_archive_journal.json``: seq range and cutoff) before its files are written
completely (temp file, fsync, rename), then its chunks are deleted, then the journal
is removed. File names are a function of the journal, so a run that died anywhere in
between is redone on the next run with the same names: files are overwritten, never
doubled, chunks are deleted only after their file exists, and chunks are immutable,
so the redone range holds the same rows. Readers drop archived rows whose chunk is
still in SQLite, so the window between rename and delete shows every sample once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.ingest.compaction import compact
from core.store.chunks import decode, to_us
from core.store.raw import RawConnection, connect_raw, sqlite_path

JOURNAL = "_archive_journal.json"
ROLLUP_KEY = "ingest.rollup_through"
ROW_GROUP = 65_536
SCHEMA: dict[str, pl.DataType] = {
    "tag": pl.Int32(), "ts": pl.Datetime("us", "UTC"), "value": pl.Float64(),
    "quality": pl.Int8(), "reason": pl.Int32(), "chunk": pl.Int64()}


@dataclass
class ArchiveReport:
    rows: int = 0
    files: list[Path] = field(default_factory=list)
    redone: bool = False  # a range left by an interrupted run was finished


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_table(table: Any, path: Path | str) -> None:
    """Write an archive table (pyarrow, sorted by (tag, ts)) with the archive's encodings.

    pyarrow, for the encodings polars does not write: times DELTA_BINARY_PACKED (a
    regular sampling interval costs next to nothing), ids and quality dictionary/RLE,
    values dictionary-encoded when they repeat (a sensor's resolution: a few thousand
    distinct values a day) and BYTE_STREAM_SPLIT when they mostly do not (full-precision
    noise, where a dictionary only adds a page).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n = table.num_rows
    distinct = pc.count_distinct(table["value"]).as_py() if n else 0
    repeats = distinct <= n // 2
    pq.write_table(table, str(path), compression="zstd", compression_level=6,
                   row_group_size=ROW_GROUP, write_statistics=True,
                   use_dictionary=["tag", "quality", "reason", "chunk",
                                   *(["value"] if repeats else [])],
                   column_encoding={"ts": "DELTA_BINARY_PACKED",
                                    **({} if repeats else {"value": "BYTE_STREAM_SPLIT"})})


def write_parquet(df: pl.DataFrame, path: Path | str) -> None:
    """One archive file from a frame in ``SCHEMA``: sorted by (tag, ts), see ``write_table``."""
    write_table(df.sort(["tag", "ts"], maintain_order=True).to_arrow(), path)


def _write_atomic(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    write_parquet(df, tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def chunks_frame(rows: list[tuple[int, int, int, bytes]]) -> pl.DataFrame:
    """(seq, tag, t0, data) chunk rows to an archive frame."""
    import numpy as np

    cols = [(seq, tag, decode(blob, t0)) for seq, tag, t0, blob in rows]
    if not cols:
        return pl.DataFrame(schema=SCHEMA)
    lens = [len(c.ts) for _, _, c in cols]
    reason = np.concatenate([c.reason for _, _, c in cols])
    df = pl.DataFrame({
        "tag": np.repeat(np.array([t for _, t, _ in cols], np.int32), lens),
        "ts": np.concatenate([c.ts for _, _, c in cols]),
        "value": pl.Series(np.concatenate([c.value for _, _, c in cols]), nan_to_null=True),
        "quality": np.concatenate([c.quality for _, _, c in cols]).astype(np.int8),
        "reason": pl.Series(reason).set(pl.Series(reason < 0), None),
        "chunk": np.repeat(np.array([s for s, _, _ in cols], np.int64), lens),
    })
    return df.with_columns(pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC")
                           ).cast(SCHEMA)  # type: ignore[arg-type]


class Archiver:
    """Archives one store's chunks (a SQLite file path or a store URL) into ``archive_dir``."""

    def __init__(self, db_path: str | Path, archive_dir: str | Path, *,
                 chunk_rows: int = 2_000) -> None:
        self.db_path = db_path if isinstance(db_path, str) and "://" in db_path \
            else Path(db_path)
        self.dir = Path(archive_dir)
        self.chunk_rows = chunk_rows  # chunks (not samples) per range

    def _connect(self) -> RawConnection:
        return connect_raw(self.db_path, timeout_s=30)

    def _journal(self) -> Path:
        return self.dir / JOURNAL

    def _chunk(self, con: RawConnection, lo: int, hi: int, cutoff: int,
               report: ArchiveReport) -> None:
        rows = con.execute("SELECT seq, tag, t0, data FROM sample_chunk "
                           "WHERE seq BETWEEN ? AND ? AND t1 < ? ORDER BY seq",
                           (lo, hi, cutoff)).fetchall()
        if rows:
            df = chunks_frame(rows).with_columns(
                pl.col("ts").dt.date().cast(pl.String).alias("_date"))
            for (day,), part in df.group_by(["_date"], maintain_order=True):
                path = self.dir / f"date={day}" / f"part-{lo:012d}-{hi:012d}.parquet"
                _write_atomic(part.drop("_date"), path)
                report.files.append(path)
                report.rows += part.height
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM sample_chunk WHERE seq BETWEEN ? AND ? AND t1 < ?",
                    (lo, hi, cutoff))
        con.execute("COMMIT")

    def run(self, now: datetime, hot_window_h: float) -> ArchiveReport:
        """Archive every chunk that ends before ``now - hot_window_h``; safe to re-run.

        On PostgreSQL whole day partitions are archived instead (``core.ingest.pg_archive``).
        """
        if sqlite_path(self.db_path) is None:
            from core.ingest.pg_archive import PgArchiver

            return PgArchiver(self.db_path, self.dir).run(now, hot_window_h)
        self.dir.mkdir(parents=True, exist_ok=True)
        report = ArchiveReport()
        con = self._connect()
        try:
            jpath = self._journal()
            if jpath.exists():
                j = json.loads(jpath.read_text())
                self._chunk(con, j["lo"], j["hi"], j["cutoff"], report)
                jpath.unlink()
                report.redone = True
            cutoff = to_us(now.astimezone(UTC) - timedelta(hours=hot_window_h))
            mark = con.execute("SELECT value FROM meta WHERE key = ?", (ROLLUP_KEY,)).fetchone()
            compact(con, int(mark[0]) if mark else None)  # rows not yet rolled up stay
            snap = con.execute("SELECT max(seq) FROM sample_chunk").fetchone()[0]
            if snap is None:
                return report
            lo = con.execute("SELECT min(seq) FROM sample_chunk WHERE t1 < ?",
                             (cutoff,)).fetchone()[0]
            while lo is not None and lo <= snap:
                hi = min(lo + self.chunk_rows - 1, snap)
                tmp = jpath.with_suffix(".tmp")
                tmp.write_text(json.dumps({"lo": lo, "hi": hi, "cutoff": cutoff}))
                os.replace(tmp, jpath)
                _fsync_dir(self.dir)
                self._chunk(con, lo, hi, cutoff, report)
                jpath.unlink()
                lo = con.execute("SELECT min(seq) FROM sample_chunk WHERE t1 < ? AND seq > ?",
                                 (cutoff, hi)).fetchone()[0]
            return report
        finally:
            con.close()


def archive(db_path: str | Path, archive_dir: str | Path, now: datetime,
            hot_window_h: float = 24.0) -> ArchiveReport:
    """One archiving pass (see ``Archiver``)."""
    return Archiver(db_path, archive_dir).run(now, hot_window_h)
