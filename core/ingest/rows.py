"""Sample rows as the writer stores them: tuples in ``sample`` column order.

Timestamps are formatted exactly as SQLAlchemy's SQLite ``DateTime`` stores them
(``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC) so rows written here and rows written
through the ORM sort and compare as one column. Non-finite floats become Bad.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from core.samples import ContextSample, Quality
from core.store.sample_writer import COLUMNS

ROW_COLUMNS: tuple[str, ...] = (
    "tag_id", "ts", "value", "text_value", "quality", "reason", "equipment_id", "line_id",
    "order_id", "lot_id", "recipe_id", "batch_id", "shift_id", "operator_id",
)
assert set(ROW_COLUMNS) == set(COLUMNS), "sample table columns changed"
TS, VALUE, TEXT, QUALITY = 1, 2, 3, 4
Row = tuple[Any, ...]
INSERT_SQL = (f"INSERT INTO sample ({', '.join(ROW_COLUMNS)}) "
              f"VALUES ({', '.join('?' for _ in ROW_COLUMNS)})")


def ts_text(ts: datetime) -> str:
    if ts.tzinfo is not None and ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(" ", "microseconds")


def to_row(s: ContextSample, ts: str | None = None) -> Row:
    """One contextualized sample as a row tuple; raises TypeError/ValueError if it cannot be.

    ``ts`` is the already formatted source time, when the caller has it (batch callers
    reuse the text for samples that share one timestamp object, as a poll block does).
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
    c = s.ctx
    if ts is None:
        ts = ts_text(s.source_ts)
    return (s.tag_id, ts, num, text, quality, reason, c.equipment_id, c.line_id, c.order_id,
            c.lot_id, c.recipe_id, c.batch_id, c.shift_id, c.operator_id)


def row_dict(row: Row) -> dict[str, Any]:
    return dict(zip(ROW_COLUMNS, row, strict=True))
