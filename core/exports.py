"""Exports of store tables to Parquet or CSV with polars, for spreadsheets and notebooks.

Each dataset is read with SQLAlchemy (so times come back as aware UTC through the
store's own column types) into a polars frame typed from the table's columns, then
written atomically (temp file + rename: a script never reads half a file). ``samples``
joins the hot SQLite rows and the Parquet archive through ``core.history``; ``oee`` is
one row per equipment per shift window, computed by ``core.reports``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Boolean, Float, Integer, SmallInteger, Table, select

from core import history
from core.reports import oee_by_shift_window, resolve_range
from core.store.db import Store, guard
from core.store.models import (
    AuditEntry,
    Hold,
    HoldLot,
    Lot,
    Recommendation,
    SampleTag,
    TagMeta,
    WorkOrder,
)
from core.store.types import UTCDateTime

DATASETS = ("samples", "lots", "holds", "workorders", "recommendations", "audit", "oee",
            "defects")
FORMATS = ("parquet", "csv")
_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)

# dataset -> (table, the time column --since/--until filter on)
TABLES: dict[str, tuple[Table, str]] = {
    "lots": (Lot.__table__, "created_at"),  # type: ignore[attr-defined]
    "holds": (Hold.__table__, "created_at"),  # type: ignore[attr-defined]
    "workorders": (WorkOrder.__table__, "created_at"),  # type: ignore[attr-defined]
    "recommendations": (Recommendation.__table__, "created_at"),  # type: ignore[attr-defined]
    "audit": (AuditEntry.__table__, "ts"),  # type: ignore[attr-defined]
}


class ExportError(Exception):
    """The export cannot be made as asked: str() says why."""


def polars_type(sa_type: Any) -> pl.DataType:
    if isinstance(sa_type, UTCDateTime):
        return pl.Datetime("us", "UTC")
    if isinstance(sa_type, Boolean):
        return pl.Boolean()
    if isinstance(sa_type, Integer | SmallInteger):
        return pl.Int64()
    if isinstance(sa_type, Float):
        return pl.Float64()
    return pl.String()


def table_frame(store: Store, table: Table, time_col: str | None = None,
                since: datetime | None = None, until: datetime | None = None) -> pl.DataFrame:
    """Rows of one table in primary-key order, [since, until) on ``time_col``."""
    q = select(table)
    if time_col is not None:
        col = table.c[time_col]
        if since is not None:
            q = q.where(col >= since)
        if until is not None:
            q = q.where(col < until)
    q = q.order_by(*table.primary_key.columns)
    schema = {c.name: polars_type(c.type) for c in table.columns}
    with guard(store), store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q)]
    return pl.DataFrame(rows, schema=schema, orient="row")


def samples_frame(store: Store, archive_dir: str | Path | None, since: datetime | None,
                  until: datetime | None) -> pl.DataFrame:
    """Hot and archived samples in [since, until), one frame in core.history's contract."""
    st, tm = SampleTag.__table__, TagMeta.__table__  # type: ignore[attr-defined]
    with guard(store), store.engine.connect() as conn:
        tags = {r[0] for r in conn.execute(select(tm.c.id))}
        tags |= {r[0] for r in conn.execute(select(st.c.tag_id))}
    if archive_dir is not None and Path(archive_dir).exists():  # files from before v4
        files = [str(p) for p in Path(archive_dir).glob("line=*/date=*/*.parquet")]
        if files:
            tags |= set(pl.scan_parquet(files, hive_partitioning=False).select("tag_id")
                        .unique().collect()["tag_id"].to_list())
    return history.history(store, archive_dir, sorted(tags), since or _FAR_PAST,
                           until or _FAR_FUTURE)


def frame(store: Store, dataset: str, since: datetime | None = None,
          until: datetime | None = None, archive_dir: str | Path | None = None,
          now: datetime | None = None) -> pl.DataFrame:
    """The dataset as a polars frame."""
    if dataset not in DATASETS:
        raise ExportError(f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")
    if dataset == "samples":
        return samples_frame(store, archive_dir, since, until)
    if dataset == "defects":  # one row per inspected unit and defect (core.vision)
        from core.vision import inspections

        return inspections(store, since=since, until=until)
    if dataset == "oee":
        start, end = resolve_range(store, since, until, now)
        rows = oee_by_shift_window(store, start, end)
        schema = {"shift_id": pl.String(), "window_start": pl.Datetime("us", "UTC"),
                  "window_end": pl.Datetime("us", "UTC"), "equipment_id": pl.String(),
                  "line_id": pl.String(), "planned_busy_s": pl.Float64(),
                  "run_s": pl.Float64(), "ideal_s": pl.Float64(), "good": pl.Int64(),
                  "scrap": pl.Int64(), "availability": pl.Float64(),
                  "performance": pl.Float64(), "quality": pl.Float64(), "oee": pl.Float64()}
        return pl.DataFrame(rows, schema=schema)
    table, time_col = TABLES[dataset]
    df = table_frame(store, table, time_col, since, until)
    if dataset == "holds":  # the lots of each hold, as a list a spreadsheet can read
        links = table_frame(store, HoldLot.__table__)  # type: ignore[attr-defined]
        lots = (links.sort("lot_id").group_by("hold_id", maintain_order=True)
                .agg(pl.col("lot_id").str.join(",").alias("lots")))
        df = df.join(lots, left_on="id", right_on="hold_id", how="left")
    return df


def write(df: pl.DataFrame, fmt: str, out: str | Path) -> Path:
    """Write atomically: a temp file beside the target, then a rename."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        if fmt == "parquet":
            df.write_parquet(tmp)
        else:
            df.write_csv(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    return path
