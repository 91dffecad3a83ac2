"""What the engine needs from a detection, as a Protocol.

``core.detect.events.Detection`` is the producer; the engine reads only these
attributes, so any object with them (that class, a replayed record) drives the loop.
The production context comes from ``context`` (plain ids, as ``core.detect`` emits) or
a ``ctx`` (``core.samples.Context``); input quality from ``quality`` and the evidence.
``evidence`` conventions the engine understands (beyond what the detectors put there):

- ``signals``: ``[{"signal", "slope_per_h"?, "window_h"?, "value"?, "baseline"?, "unit"?}]``
- ``contributions``: top model contributions in ``ml.explain`` form (plain dicts)
- ``score`` / ``threshold`` / ``model``: for model-based detections
- ``quality``: ``"good" | "uncertain" | "bad"`` of the inputs (or ``inputs: [{quality}]``)
- ``predicted_failure_at`` (ISO), ``fault_mode``, ``expected_downtime_h``
- ``setpoint``: ``{"name", "target"? | "delta"?}`` for setpoint suggestions
- ``material_id``, ``shortage_qty``, ``short_at`` for material detections
- ``action``: a decision class forcing the rule (e.g. ``"lot_hold"``)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from core.samples import Context


class DetectionLike(Protocol):
    kind: str  # limit | spc | state | stale | bad_data | ml_score | material
    detector_id: str
    problem_key: str
    equipment_id: str | None
    line_id: str | None
    tag_id: str | None
    priority: str
    onset: datetime
    value: float | None
    summary: str
    evidence: dict[str, Any]
    cleared: bool


_CTX_FIELDS = ("equipment_id", "line_id", "order_id", "operation_id", "lot_id", "recipe_id",
               "batch_id", "shift_id", "operator_id", "step")


def context_of(det: DetectionLike) -> Context:
    """The detection's production context, whichever form it carries."""
    ctx = getattr(det, "ctx", None)
    if isinstance(ctx, Context):
        return ctx
    ids = getattr(det, "context", None) or {}
    return Context(**{k: ids.get(k) for k in _CTX_FIELDS if isinstance(ids, dict)})


def values_of(det: DetectionLike) -> dict[str, Any]:
    vals = getattr(det, "values", None)
    return dict(vals) if isinstance(vals, dict) else {}


def evidence_of(det: DetectionLike) -> dict[str, Any]:
    ev = getattr(det, "evidence", None)
    return dict(ev) if isinstance(ev, dict) else {}


def input_quality(det: DetectionLike) -> str:
    """The worst quality among the detection's inputs: good | uncertain | bad."""
    ev = evidence_of(det)
    q = getattr(det, "quality", None)
    seen = [str(ev.get("quality", "good")),
            str(int(q)) if isinstance(q, int) else str(q or "good")]
    for item in ev.get("inputs", []) or []:
        if isinstance(item, dict):
            seen.append(str(item.get("quality", "good")))
    for item in ev.get("signals", []) or []:
        if isinstance(item, dict) and "quality" in item:
            seen.append(str(item["quality"]))
    words = {_norm(q) for q in seen}
    return "bad" if "bad" in words else "uncertain" if "uncertain" in words else "good"


def _norm(q: str) -> str:
    q = q.lower()
    if q in ("2", "bad", "quality.bad"):
        return "bad"
    if q in ("1", "uncertain", "quality.uncertain"):
        return "uncertain"
    return "good"
