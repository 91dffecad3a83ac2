"""Batch insert of contextualized samples: one executemany per batch, never ORM rows.

``write_samples(conn, rows)`` is the primitive the threaded store-and-forward writer
builds on: it joins the caller's transaction, so the caller decides batch size and
commit cadence. Rows are dicts with the ``sample`` table's column names, or
``ContextSample``/``Sample`` objects, converted by ``to_row``. Numbers and booleans go
to ``value``; strings to ``text_value``; Bad samples keep their reason and no number.
Timestamps are stored as ``core.store.types.UTCDateTime`` text, the same format the
ingest path writes, so both kinds of rows sort and compare as one column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, insert

from core.samples import ContextSample, Quality, Sample
from core.store.models import Sample as SampleRow

TABLE = SampleRow.__table__  # type: ignore[attr-defined]
COLUMNS: tuple[str, ...] = tuple(c.name for c in TABLE.columns if c.name != "id")
_CTX_FIELDS = ("equipment_id", "line_id", "order_id", "lot_id", "recipe_id", "batch_id",
               "shift_id", "operator_id")
_INSERT = insert(TABLE)


def to_row(s: ContextSample | Sample) -> dict[str, Any]:
    """One sample as a row dict for the sample table.

    A non-finite number becomes Bad with a reason; a Bad sample never keeps a number
    (DESIGN: Bad values are stored as such and never feed a model).
    """
    v, quality, reason = s.value, int(s.quality), s.reason
    num: float | None = None
    txt: str | None = None
    if isinstance(v, str):
        txt = v
    elif v is not None:
        num = float(v)  # bool and int too
        if not math.isfinite(num):
            num, quality = None, int(Quality.BAD)
            reason = reason or f"non-finite value {v}"
    if quality == Quality.BAD:
        num = None
    row: dict[str, Any] = {
        "tag_id": s.tag_id,
        "ts": s.source_ts,
        "value": num,
        "text_value": txt,
        "quality": quality,
        "reason": reason,
    }
    ctx = getattr(s, "ctx", None)
    for f in _CTX_FIELDS:
        row[f] = getattr(ctx, f, None) if ctx is not None else None
    return row


def _normalize(r: Mapping[str, Any] | ContextSample | Sample) -> dict[str, Any]:
    if isinstance(r, ContextSample | Sample):
        return to_row(r)
    # every row of an executemany must carry the same keys
    return {c: r.get(c, 0 if c == "quality" else None) for c in COLUMNS}


def write_samples(conn: Connection,
                  rows: Iterable[Mapping[str, Any] | ContextSample | Sample]) -> int:
    """Insert all rows with one executemany in the caller's transaction; returns the count."""
    batch = [_normalize(r) for r in rows]
    if not batch:
        return 0
    conn.execute(_INSERT, batch)
    return len(batch)
