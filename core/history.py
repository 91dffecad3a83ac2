"""History for a tag set and time range: hot SQLite rows and the Parquet archive as one frame.

The frame follows the ML contract (``ml/contract.py``): tag_id, ts (datetime[us, UTC]),
value (f64, null when Bad), quality (i8), equipment_id, line_id, lot_id, order_id,
recipe_id, batch_id, shift_id, operator_id, plus text_value and reason. The range is
``start <= ts < end``. A row present in both places (an archive run interrupted
between writing its file and deleting its rows) appears once: rows are matched on
(row id, tag, ts). Sorted by ts, then tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from core.ingest.archive import rows_frame
from core.ingest.rows import ROW_COLUMNS, ts_text
from core.store.db import Store, guard

CONTEXT = ["equipment_id", "line_id", "lot_id", "order_id", "recipe_id", "batch_id",
           "shift_id", "operator_id"]
COLUMNS = ["tag_id", "ts", "value", "quality", *CONTEXT, "text_value", "reason"]
_CHUNK = 500


def _hot(store: Store, tag_ids: Sequence[str], start: datetime, end: datetime) -> pl.DataFrame:
    cols = ", ".join(("id", *ROW_COLUMNS))
    rows: list[tuple[object, ...]] = []
    with guard(store), store.engine.connect() as conn:
        for i in range(0, len(tag_ids), _CHUNK):
            part = list(tag_ids[i:i + _CHUNK])
            marks = ", ".join("?" for _ in part)
            rows.extend(tuple(r) for r in conn.exec_driver_sql(
                f"SELECT {cols} FROM sample WHERE tag_id IN ({marks}) AND ts >= ? AND ts < ?",
                (*part, ts_text(start), ts_text(end))).fetchall())
    return rows_frame(rows)


def _archive_files(archive_dir: Path, start: datetime, end: datetime) -> list[str]:
    """Parquet files in the date partitions the range touches (partition pruning)."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    out = []
    for d in archive_dir.glob("line=*/date=*"):
        try:
            day = date.fromisoformat(d.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            out.extend(str(p) for p in d.glob("*.parquet"))
    return sorted(out)


def _archived(archive_dir: Path, tag_ids: Sequence[str], start: datetime,
              end: datetime) -> pl.DataFrame | None:
    files = _archive_files(archive_dir, start, end) if archive_dir.exists() else []
    if not files:
        return None
    in_range = pl.col("ts").is_between(start.astimezone(UTC), end.astimezone(UTC),
                                       closed="left")
    return (pl.scan_parquet(files, hive_partitioning=False)
            .filter(pl.col("tag_id").is_in(list(tag_ids)) & in_range).collect())


def history(store: Store, archive_dir: str | Path | None, tag_ids: Sequence[str],
            start: datetime, end: datetime) -> pl.DataFrame:
    """Hot + archived samples of ``tag_ids`` in [start, end) as one contract frame."""
    tag_ids = list(dict.fromkeys(tag_ids))
    frames = [_hot(store, tag_ids, start, end)]
    if archive_dir is not None:
        arch = _archived(Path(archive_dir), tag_ids, start, end)
        if arch is not None and arch.height:
            frames.append(arch.select(frames[0].columns).cast(frames[0].schema))
    df = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    df = df.unique(subset=["id", "tag_id", "ts"], keep="first", maintain_order=True)
    df = df.with_columns(
        pl.when(pl.col("quality") == 2).then(None).otherwise(pl.col("value")).alias("value"))
    return df.sort(["ts", "tag_id"]).select(COLUMNS)
