"""Sample builders and small store readers shared by the ingest tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.samples import Context, ContextSample, Quality, Sample
from core.store.raw import connect_raw

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)
CTX = Context(equipment_id="A-LATHE1", line_id="A", order_id="PO-0001", lot_id="L-00101",
              recipe_id="R-SH20", shift_id="early", operator_id="olga")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seq(n: int, start: int = 0, tag: str = "A-LATHE1.vibration_rms",
        ctx: Context = CTX) -> list[ContextSample]:
    """n samples whose value is their sequence number (to check order and loss)."""
    return [ContextSample(tag, at(i / 10), float(i), Quality.GOOD, None, ctx)
            for i in range(start, start + n)]


def sample(tag: str, t: float, value: Any, quality: Quality = Quality.GOOD) -> Sample:
    return Sample(tag, at(t), value, quality)


def rows(db: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``?``-placeholder SQL from a SQLite file or a store URL (``Store.target``)."""
    con = connect_raw(db)
    try:
        return [tuple(r) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()
