"""Shared helpers for the detection tests: samples at plant time offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.samples import Context, ContextSample, Quality, Value

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)  # PLANT_START of tests/conftest.py


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(tag_id: str, seconds: float, value: Value, quality: Quality = Quality.GOOD,
           reason: str | None = None) -> ContextSample:
    eq = tag_id.split(".")[0]
    ctx = Context(equipment_id=eq, line_id=eq[0], order_id="PO-0001", lot_id="L-00101",
                  recipe_id="R-SH20", batch_id="B-0001", shift_id="early", operator_id="olga")
    return ContextSample(tag_id, at(seconds), value, quality, reason, ctx)
