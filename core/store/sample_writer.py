"""Batch insert of contextualized samples in the caller's transaction (tests, benches, tools).

``write_samples(conn, rows)`` writes through ``core.store.narrow`` on the SQLAlchemy
connection's own driver connection, so its tables are exactly what the threaded store
writer produces: narrow ``sample`` rows, text values in ``sample_text``, context as
``context_interval`` changes. Rows are dicts in ``core.history``'s column names
(``tag_id``, ``ts``, ``value``, ``text_value``, ``quality``, ``reason`` and the context
ids; missing keys are None, quality 0), or ``ContextSample``/``Sample`` objects.
Numbers and booleans go to ``value``; strings to ``text_value``; Bad samples keep
their reason and no number; a non-finite number becomes Bad.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from core.samples import ContextSample, Quality, Sample
from core.store.chunks import to_us
from core.store.narrow import CTX_FIELDS, Row
from core.store.pg_copy import narrow_writer

COLUMNS: tuple[str, ...] = ("tag_id", "ts", "value", "text_value", "quality", "reason",
                            *CTX_FIELDS)


def to_row(s: ContextSample | Sample | Mapping[str, Any]) -> Row:
    """One sample as a narrow-writer row (see ``core.store.narrow``)."""
    if isinstance(s, Mapping):
        tag, ts, v = s.get("tag_id"), s.get("ts"), s.get("value")
        txt, quality, reason = s.get("text_value"), int(s.get("quality") or 0), s.get("reason")
        ctx: tuple[Any, ...] | None = tuple(s.get(f) for f in CTX_FIELDS)
        if txt is None and isinstance(v, str):
            v, txt = None, v
    else:
        tag, ts, v, quality, reason = s.tag_id, s.source_ts, s.value, int(s.quality), s.reason
        txt = None
        c = getattr(s, "ctx", None)
        ctx = tuple(getattr(c, f) for f in CTX_FIELDS) if c is not None else None
        if isinstance(v, str):
            v, txt = None, v
    num: float | None = None
    if v is not None:
        num = float(v)  # bool and int too
        if not math.isfinite(num):
            num, quality = None, int(Quality.BAD)
            reason = reason or f"non-finite value {v}"
    if quality == Quality.BAD:
        num = None
    if ctx is not None and not any(ctx):
        ctx = None
    us = to_us(ts) if isinstance(ts, datetime) else int(ts)  # type: ignore[arg-type]
    return (tag, us, num, txt, quality, reason, ctx)


def write_samples(conn: Connection,
                  rows: Iterable[Mapping[str, Any] | ContextSample | Sample]) -> int:
    """Insert all rows in the caller's transaction; returns the count."""
    batch = [to_row(r) for r in rows]
    if not batch:
        return 0
    dbapi = conn.connection.driver_connection
    narrow_writer(dbapi, conn.dialect.paramstyle).write(batch)  # COPY on PostgreSQL
    return len(batch)
