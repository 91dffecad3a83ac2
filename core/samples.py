"""The unit of data flow: a sample, before and after contextualization.

Drivers produce ``Sample`` (tag, source time, value, quality); the contextualizer
returns ``ContextSample`` with the ids of the production context stamped on. Quality
follows OPC UA severities. Bad values are kept as Bad: never interpolated, never fed
to a model or a recommendation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class Quality(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @classmethod
    def from_status_code(cls, code: int) -> Quality:
        """OPC UA StatusCode: the top two bits are the severity (00 good, 01 uncertain, 1x bad)."""
        sev = (int(code) >> 30) & 0x3
        return cls.GOOD if sev == 0 else cls.UNCERTAIN if sev == 1 else cls.BAD


Value = float | int | str | bool | None


@dataclass(slots=True)
class Sample:
    tag_id: str
    source_ts: datetime
    value: Value
    quality: Quality = Quality.GOOD
    reason: str | None = None  # why a value is Bad/Uncertain ("exception code 2", "timeout")

    def checked(self) -> Sample:
        """NaN and infinity from a device are stored as Bad, never as numbers."""
        v = self.value
        if isinstance(v, float) and not math.isfinite(v):
            return Sample(self.tag_id, self.source_ts, None, Quality.BAD, f"non-finite value {v}")
        return self


@dataclass(slots=True)
class Context:
    """The production context of one piece of equipment at one moment."""

    equipment_id: str | None = None
    line_id: str | None = None
    order_id: str | None = None
    operation_id: str | None = None
    lot_id: str | None = None
    recipe_id: str | None = None
    batch_id: str | None = None
    shift_id: str | None = None
    operator_id: str | None = None
    step: str | None = None


@dataclass(slots=True)
class ContextSample:
    tag_id: str
    source_ts: datetime
    value: Value
    quality: Quality
    reason: str | None
    ctx: Context
