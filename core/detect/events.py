"""What every detector emits: one ``Detection`` per change of a problem's state.

A detector speaks only when a problem starts (``cleared=False``) or ends
(``cleared=True``), never once per sample, so the recommender and the alarm manager
see a handful of events instead of the raw stream. ``problem_key`` is stable for one
problem ("limit:A-LATHE1.bearing_temp:hi"), so new evidence merges into the open
recommendation and the matching alarm instead of opening a second one.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.clock import ensure_utc
from core.events import detection_event
from core.samples import Context, Quality

DetectionKind = Literal["limit", "spc", "state", "stale", "bad_data", "material", "ml_score",
                        "model_drift", "deviation"]
Priority = Literal["low", "medium", "high", "critical"]
PRIORITIES: tuple[Priority, ...] = ("low", "medium", "high", "critical")

_seq = itertools.count(1)
_RUN = uuid.uuid4().hex[:8]  # this process


def escalate(priority: str, steps: int = 1) -> Priority:
    """One priority higher (hihi over hi, say), capped at critical."""
    i = PRIORITIES.index(priority) if priority in PRIORITIES else 1  # type: ignore[arg-type]
    return PRIORITIES[max(0, min(len(PRIORITIES) - 1, i + steps))]


def context_ids(ctx: Context | None) -> dict[str, str | None]:
    """The production context as plain ids: what the analyzer joins on."""
    if ctx is None:
        return {}
    return {
        "equipment_id": ctx.equipment_id, "line_id": ctx.line_id, "order_id": ctx.order_id,
        "operation_id": ctx.operation_id, "lot_id": ctx.lot_id, "recipe_id": ctx.recipe_id,
        "batch_id": ctx.batch_id, "shift_id": ctx.shift_id, "operator_id": ctx.operator_id,
        "step": ctx.step,
    }


@dataclass(slots=True)
class Detection:
    """A problem starting (or, with ``cleared``, ending) at ``onset`` plant time."""

    kind: DetectionKind
    detector_id: str
    problem_key: str
    priority: Priority
    onset: datetime  # when the condition began (source time), not when it was noticed
    summary: str
    equipment_id: str | None = None
    line_id: str | None = None
    tag_id: str | None = None
    value: float | None = None
    limit: float | None = None  # the threshold crossed, where there is one
    values: dict[str, float] = field(default_factory=dict)  # other figures worth showing
    context: dict[str, str | None] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    cleared: bool = False
    quality: Quality = Quality.GOOD  # the worst quality among the inputs
    ts: datetime | None = None  # when it was emitted (detector time); defaults to onset
    id: str = ""

    def __post_init__(self) -> None:
        self.onset = ensure_utc(self.onset)
        self.ts = ensure_utc(self.ts) if self.ts is not None else self.onset
        if not self.id:  # unique across restarts: the engine keeps detections as evidence
            self.id = f"D{_RUN}{next(_seq):06d}"

    @property
    def source(self) -> str:
        """What an alarm is raised on: the tag, else the equipment, else the key."""
        return self.tag_id or self.equipment_id or self.problem_key

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: for the event stream and the recommendation's evidence."""
        return {
            "id": self.id, "kind": self.kind, "detector_id": self.detector_id,
            "problem_key": self.problem_key, "priority": self.priority,
            "onset": self.onset.isoformat(), "ts": self.ts.isoformat() if self.ts else None,
            "summary": self.summary, "equipment_id": self.equipment_id,
            "line_id": self.line_id, "tag_id": self.tag_id, "value": self.value,
            "limit": self.limit, "values": dict(self.values), "context": dict(self.context),
            "evidence": dict(self.evidence), "cleared": self.cleared,
            "quality": self.quality.name.lower(),
        }

    def as_event(self) -> Any:
        """The DetectionEvent for the shared event bus and the headless stream."""
        return detection_event(self)


def plain_contributions(contributions: dict[str, float], top: int = 3) -> str:
    """Model contributions in words: "bearing temp slope raises it most (+0.30), ..."."""
    items = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:top]
    words = [f"{name.replace('_', ' ')} {'raises' if c > 0 else 'lowers'} it ({c:+.2f})"
             for name, c in items if c]
    return "; ".join(words)
