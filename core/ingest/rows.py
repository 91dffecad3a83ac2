"""Sample rows as the writer carries and spills them (see ``core.store.narrow``).

``(tag_id, ts_us, value, text, quality, reason, ctx)``: time as integer µs since the
epoch (UTC), the context as the 8-tuple of ids in ``CTX_FIELDS`` order. Non-finite
floats become Bad; Bad samples keep no number. ``from_spilled`` also reads the wide
rows an older loopline spilled (14 columns, time as text), so a spill buffer left
before an upgrade is forwarded.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from core.samples import Context, ContextSample, Quality
from core.store.chunks import to_us
from core.store.narrow import CTX, CTX_FIELDS, QUALITY, TEXT, TS, VALUE, Row

__all__ = ["CTX", "CTX_FIELDS", "QUALITY", "TEXT", "TS", "VALUE", "Row", "ctx_tuple",
           "from_spilled", "row_dict", "to_row", "ts_text"]
ROW_COLUMNS: tuple[str, ...] = ("tag_id", "ts", "value", "text_value", "quality", "reason",
                                "ctx")


def ts_text(ts: datetime) -> str:
    """SQLAlchemy's SQLite text form of a time (``sample_rollup.minute``)."""
    if ts.tzinfo is not None and ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(" ", "microseconds")


def ctx_tuple(c: Context | None) -> tuple[Any, ...] | None:
    if c is None:
        return None
    return (c.equipment_id, c.line_id, c.order_id, c.lot_id, c.recipe_id, c.batch_id,
            c.shift_id, c.operator_id)


def to_row(s: ContextSample, ts: int | None = None,
           ctx: tuple[Any, ...] | None = None) -> Row:
    """One contextualized sample as a row; raises TypeError/ValueError if it cannot be.

    ``ts``/``ctx`` are the already converted time and context when the caller has them
    (a poll block shares one timestamp object, a machine one Context object).
    """
    v = s.value
    quality = int(s.quality)
    reason = s.reason
    text = None
    if v is None:
        num = None
    elif isinstance(v, str):
        num, text = None, v
    elif isinstance(v, bool | int | float):
        num = float(v)
        if not math.isfinite(num):
            num, quality = None, int(Quality.BAD)
            reason = reason or f"non-finite value {v}"
    else:
        raise TypeError(f"value of type {type(v).__name__} cannot be stored")
    if quality == Quality.BAD:
        num = None  # Bad values are never kept as numbers
    if ts is None:
        ts = to_us(s.source_ts)
    if ctx is None:
        ctx = ctx_tuple(s.ctx)
    if reason is not None and not isinstance(reason, str):
        reason = str(reason)
    return (s.tag_id, ts, num, text, quality, reason, ctx)


def from_spilled(r: list[Any] | tuple[Any, ...]) -> Row:
    """A row read back from a spill file (this layout, or the wide one before it)."""
    if len(r) == 7:
        ctx = r[CTX]
        return (r[0], int(r[TS]), r[VALUE], r[TEXT], r[QUALITY], r[5],
                tuple(ctx) if ctx is not None else None)
    ts = datetime.fromisoformat(r[1]).replace(tzinfo=UTC)
    return (r[0], to_us(ts), r[2], r[3], r[4], r[5], tuple(r[6:14]))


def row_dict(row: Row) -> dict[str, Any]:
    out = dict(zip(ROW_COLUMNS[:6], row[:6], strict=True))
    ctx = row[CTX]
    out.update(zip(CTX_FIELDS, ctx or (None,) * len(CTX_FIELDS), strict=True))
    return out
