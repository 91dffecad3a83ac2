"""Archive old days from PostgreSQL to Parquet: copy out, detach, drop; exactly once.

Same files as the SQLite archiver (``core.ingest.archive``):
``archive_dir/date=<YYYY-MM-DD>/part-*.parquet`` with columns tag, ts, value, quality,
reason, chunk, sorted by (tag, ts), the same encodings; ``core.history`` reads both
alike. A day is archived once its partition lies wholly before ``now - hot_window_h``.

One transaction per day partition ``sample_dYYYYMMDD`` (oid ``P``):

1. ``LOCK TABLE <partition> IN SHARE MODE``: readers go on, a late sample for that day
   waits until the day is archived (it then makes a new partition of the day, which a
   later pass archives in files of its own);
2. ``COPY (SELECT ... WHERE tag in a range) TO STDOUT (FORMAT csv)`` read by polars,
   one file per range of 64 tag numbers, ``part-pg<P>-t<first tag>.parquet``, each
   written completely (temp file, fsync, rename) with ``chunk = -P``;
3. ``ALTER TABLE sample DETACH PARTITION``, ``DROP TABLE``, commit.

A reader drops archived rows whose ``chunk`` marks a partition still attached
(``pg_history.markers``), so between a rename and the commit every sample is read once.
A pass that died before the commit left the partition attached and its rows unchanged
(locked): the next pass writes the same file names from the same rows, overwriting.
After the commit the files are complete. So every row is in exactly one place.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.ingest.archive import SCHEMA, ArchiveReport, _write_atomic
from core.store import pg_history
from core.store.chunks import to_us

TAG_RANGE = 64  # tag numbers per file: bounds the memory of one copy-out
LOCK_TIMEOUT = "30s"


def _copy_out(con: Any, sql: str) -> bytes:
    buf = bytearray()
    with con.cursor() as cur, cur.copy(sql) as cp:
        for data in cp:
            buf += data
    return bytes(buf)


def day_frame(csv: bytes, marker: int) -> pl.DataFrame:
    """COPY csv (tag, ts, value, quality, reason) → an archive frame in ``SCHEMA``."""
    df = pl.read_csv(io.BytesIO(csv), has_header=False,
                     new_columns=["tag", "ts", "value", "quality", "reason"],
                     schema_overrides={"tag": pl.Int32(), "ts": pl.Int64(),
                                       "value": pl.Float64(), "quality": pl.Int8(),
                                       "reason": pl.Int32()})
    return df.with_columns(
        pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC"),
        pl.lit(marker, pl.Int64()).alias("chunk")).select(list(SCHEMA)).cast(SCHEMA)  # type: ignore[arg-type]


class PgArchiver:
    """Archives a PostgreSQL store's day partitions of ``sample`` into ``archive_dir``.

    ``target``: an open ``Store`` or the store's URL (``Store.target``).
    """

    def __init__(self, target: Any, archive_dir: str | Path, *,
                 tag_range: int = TAG_RANGE) -> None:
        self.target = target.target if hasattr(target, "engine") else str(target)
        self.dir = Path(archive_dir)
        self.tag_range = tag_range

    def _connect(self) -> Any:
        import psycopg

        from core.store.raw import libpq_url

        return psycopg.connect(libpq_url(str(self.target)))  # integers only: no TimeZone

    def _day(self, conn: Any, day: int, name: str, report: ArchiveReport) -> bool:
        """Archive one partition in the open transaction; False when it vanished meanwhile."""
        pg_history._exec(conn, f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        pg_history._exec(conn, f"LOCK TABLE {name} IN SHARE MODE")
        still = pg_history.partitions(conn).get(day)
        if still is None or still[1] != name:
            return False
        oid = still[0]
        con = conn
        span = pg_history._exec(conn, f"SELECT min(tag), max(tag), count(*) FROM {name}")[0]
        if span[2]:
            date = pg_history.day_date(day).isoformat()
            first = int(span[0]) - int(span[0]) % self.tag_range
            for lo in range(first, int(span[1]) + 1, self.tag_range):
                csv = _copy_out(con, f"COPY (SELECT tag, ts, value, quality, reason FROM {name} "
                                     f"WHERE tag >= {lo} AND tag < {lo + self.tag_range} "
                                     "ORDER BY tag, ts) TO STDOUT (FORMAT csv)")
                if not csv:
                    continue
                df = day_frame(csv, -oid)
                path = self.dir / f"date={date}" / f"part-pg{oid}-t{lo:06d}.parquet"
                _write_atomic(df, path)
                report.files.append(path)
                report.rows += df.height
        pg_history._exec(conn, f"ALTER TABLE sample DETACH PARTITION {name}")
        pg_history._exec(conn, f"DROP TABLE {name}")
        return True

    def run(self, now: datetime, hot_window_h: float) -> ArchiveReport:
        """Archive every day partition that ends before ``now - hot_window_h``; safe to re-run.

        Also creates today's and tomorrow's partitions (the write path then needs none).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        report = ArchiveReport()
        cutoff = to_us(now.astimezone(UTC) - timedelta(hours=hot_window_h))
        with self._connect() as conn:
            with conn.transaction():
                pg_history.create_ahead(conn, now)
                old = sorted((d, v[1]) for d, v in pg_history.partitions(conn).items()
                             if (d + 1) * pg_history.DAY_US <= cutoff)
            for day, name in old:
                with conn.transaction():
                    self._day(conn, day, name, report)
        return report


def archive(store: Any, archive_dir: str | Path, now: datetime,
            hot_window_h: float = 24.0) -> ArchiveReport:
    """One archiving pass of a PostgreSQL store (see ``PgArchiver``)."""
    return PgArchiver(store, archive_dir).run(now, hot_window_h)
