"""ML scores (failure risk, predicted scrap, anomaly) crossing a threshold, with hysteresis.

The detector never imports ml/: it is fed by a callable returning the latest score
per equipment (and, optionally, the model's top contributions in plain words), so
core stays below ml in the layering and tests feed numbers directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from core.clock import ensure_utc
from core.detect.events import Detection, Priority, plain_contributions


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    ts: datetime | None = None
    line_id: str | None = None
    contributions: Mapping[str, float] = field(default_factory=dict)
    explanation: str = ""  # e.g. "bearing temperature rising 2.1 °C/h over 6 h"
    model_version: int | None = None
    # a lot-level score (predicted scrap) names its lot and where it is: lot_id,
    # equipment_id, line_id, order_id, batch_id, recipe_id — the detection's context
    context: Mapping[str, str] = field(default_factory=dict)


ScoreSource = Callable[[], Mapping[str, Score]]  # equipment id -> latest score


class MlScoreDetector:
    kind = "ml_score"

    def __init__(self, detector_id: str, model: str, threshold: float, priority: Priority =
                 "medium", *, hysteresis: float = 0.05, on_delay_s: float = 0.0,
                 source: ScoreSource | None = None,
                 line_of: Mapping[str, str] | None = None) -> None:
        self.detector_id = detector_id
        self.model = model
        self.threshold = threshold
        self.hysteresis = hysteresis
        self.on_delay_s = on_delay_s
        self.priority: Priority = priority
        self.source = source
        self.line_of = dict(line_of or {})
        self._active: dict[str, datetime] = {}
        self._pending: dict[str, datetime] = {}

    def feed_score(self, equipment_id: str, score: Score, now: datetime) -> list[Detection]:
        ts = ensure_utc(score.ts or now)
        v = score.value
        onset = self._active.get(equipment_id)
        if onset is not None:
            if v <= self.threshold - self.hysteresis:
                del self._active[equipment_id]
                return [self._det(equipment_id, score, ts, onset, cleared=True)]
            return []
        if v > self.threshold:
            since = self._pending.setdefault(equipment_id, ts)
            if (ts - since).total_seconds() >= self.on_delay_s:
                del self._pending[equipment_id]
                self._active[equipment_id] = since
                return [self._det(equipment_id, score, ts, since, cleared=False)]
        else:
            self._pending.pop(equipment_id, None)
        return []

    def poll(self, now: datetime) -> list[Detection]:
        """Ask the source for the latest scores (the scoring job's cadence, not per sample)."""
        if self.source is None:
            return []
        out: list[Detection] = []
        for eq, score in sorted(self.source().items()):
            out.extend(self.feed_score(eq, score, now))
        return out

    def _det(self, eq: str, s: Score, ts: datetime, onset: datetime, *, cleared: bool
             ) -> Detection:
        name = self.model.replace("_", " ")
        top = sorted(s.contributions.items(), key=lambda kv: -abs(kv[1]))[:5]
        why = s.explanation or plain_contributions(dict(s.contributions))
        if cleared:
            summary = f"{eq}: {name} down to {s.value:.2f} (threshold {self.threshold:.2f})"
        else:
            summary = f"{eq}: {name} {s.value:.2f} above {self.threshold:.2f}" + (
                f"; {why}" if why else "")
        ctx = dict(s.context)
        equipment = ctx.get("equipment_id") if ctx.get("lot_id") else eq
        if ctx.get("lot_id"):
            summary = f"lot {summary}" + (f" (on {equipment})" if equipment else "")
        return Detection(
            kind="ml_score", detector_id=self.detector_id,
            problem_key=f"ml_score:{eq}:{self.model}", priority=self.priority, onset=onset,
            ts=ts, summary=summary, equipment_id=equipment,
            line_id=s.line_id or ctx.get("line_id") or self.line_of.get(eq), value=s.value,
            limit=self.threshold,
            evidence={"model": self.model, "model_version": s.model_version,
                      "score": s.value, "threshold": self.threshold,
                      "hysteresis": self.hysteresis, "contributions": dict(top),
                      "explanation": s.explanation},
            context=ctx, cleared=cleared)
