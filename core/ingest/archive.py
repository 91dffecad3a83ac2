"""Move samples older than the hot window from SQLite to Parquet, crash-safe.

Layout: ``archive_dir/line=<line>/date=<YYYY-MM-DD>/part-<lo>-<hi>-<cutoff>.parquet``
(hive partitions; samples without a line go to ``line=_none``). Work goes in chunks
of row ids. Each chunk is first written to a journal (``_archive_journal.json``: id
range and cutoff), then its files are written completely (temp file, fsync, rename),
then its rows are deleted from the hot table, then the journal is removed. File names
are a function of the journal, so a run that died anywhere in between is redone on
the next run with the same names: files are overwritten, never doubled, and rows are
deleted only after their file exists. The ``id`` column is kept in the files so
``core.history`` can drop a row seen in both places.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from core.ingest.rows import ROW_COLUMNS, ts_text

JOURNAL = "_archive_journal.json"
NO_LINE = "_none"
TS_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(), "tag_id": pl.String(), "ts": pl.String(), "value": pl.Float64(),
    "text_value": pl.String(), "quality": pl.Int8(), "reason": pl.String(),
    **{c: pl.String() for c in ROW_COLUMNS[6:]},
}


@dataclass
class ArchiveReport:
    rows: int = 0
    files: list[Path] = field(default_factory=list)
    redone: bool = False  # a chunk left by an interrupted run was finished


def rows_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    """Raw sample rows (id first, ts as stored text) to a typed frame."""
    df = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return df.with_columns(pl.col("ts").str.to_datetime(TS_FORMAT, time_unit="us",
                                                        time_zone="UTC"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    df.write_parquet(tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Archiver:
    """Archives one SQLite store's sample table into ``archive_dir``."""

    def __init__(self, db_path: str | Path, archive_dir: str | Path, *,
                 chunk_rows: int = 200_000) -> None:
        self.db_path = Path(db_path)
        self.dir = Path(archive_dir)
        self.chunk_rows = chunk_rows

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(str(self.db_path), isolation_level=None, timeout=30)
        con.execute("PRAGMA busy_timeout=30000")
        return con

    def _journal(self) -> Path:
        return self.dir / JOURNAL

    def _chunk(self, con: sqlite3.Connection, lo: int, hi: int, cutoff: str,
               report: ArchiveReport) -> None:
        cols = ", ".join(("id", *ROW_COLUMNS))
        rows = con.execute(f"SELECT {cols} FROM sample WHERE id BETWEEN ? AND ? AND ts < ? "
                           "ORDER BY id", (lo, hi, cutoff)).fetchall()
        if rows:
            df = rows_frame(rows)
            stamp = cutoff.replace("-", "").replace(":", "").replace(" ", "T")[:15]
            keyed = df.with_columns(
                pl.col("line_id").fill_null(NO_LINE).alias("_line"),
                pl.col("ts").dt.date().cast(pl.String).alias("_date"))
            for (line, day), part in keyed.group_by(["_line", "_date"], maintain_order=True):
                path = (self.dir / f"line={line}" / f"date={day}"
                        / f"part-{lo:012d}-{hi:012d}-{stamp}.parquet")
                _write_atomic(part.drop("_line", "_date"), path)
                report.files.append(path)
            report.rows += len(rows)
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM sample WHERE id BETWEEN ? AND ? AND ts < ?", (lo, hi, cutoff))
        con.execute("COMMIT")

    def run(self, now: datetime, hot_window_h: float) -> ArchiveReport:
        """Archive every sample older than ``now - hot_window_h``; safe to re-run."""
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
            cutoff = ts_text(now.astimezone(UTC) - timedelta(hours=hot_window_h))
            snap = con.execute("SELECT max(id) FROM sample").fetchone()[0]
            if snap is None:
                return report
            lo = con.execute("SELECT min(id) FROM sample WHERE ts < ?", (cutoff,)).fetchone()[0]
            while lo is not None and lo <= snap:
                hi = min(lo + self.chunk_rows - 1, snap)
                tmp = jpath.with_suffix(".tmp")
                tmp.write_text(json.dumps({"lo": lo, "hi": hi, "cutoff": cutoff}))
                os.replace(tmp, jpath)
                _fsync_dir(self.dir)
                self._chunk(con, lo, hi, cutoff, report)
                jpath.unlink()
                lo = con.execute("SELECT min(id) FROM sample WHERE ts < ? AND id > ?",
                                 (cutoff, hi)).fetchone()[0]
            return report
        finally:
            con.close()


def archive(db_path: str | Path, archive_dir: str | Path, now: datetime,
            hot_window_h: float = 24.0) -> ArchiveReport:
    """One archiving pass (see ``Archiver``)."""
    return Archiver(db_path, archive_dir).run(now, hot_window_h)
