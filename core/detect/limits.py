"""Limit checks (lolo/lo/hi/hihi) with on-delay and hysteresis, streaming per tag.

Each level is its own alarm in ISA-18.2 terms, so HI and HIHI have their own
problem keys and clear independently. A level fires only after its condition has
held for ``on_delay_s`` of source time (a spike is not a problem) and clears only
once the value is back past the limit by ``hysteresis`` (noise around a limit does
not chatter). Bad and Uncertain samples never fire or clear a limit and restart a
pending on-delay: an unknown value cannot prove the condition held.

The hot path is one dict lookup and two comparisons for a value inside its band.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from core.config.schema import Limits
from core.detect.events import Detection, Priority, context_ids, escalate
from core.detect.tags import TagInfo, fmt
from core.samples import ContextSample, Quality

Level = Literal["hihi", "hi", "lo", "lolo"]
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class LimitSpec:
    level: Level
    value: float
    high: bool


def limit_specs(limits: Limits | None, threshold: float | None = None) -> tuple[LimitSpec, ...]:
    """A detector threshold is a single HI limit and wins over the tag's own limits."""
    if threshold is not None:
        return (LimitSpec("hi", float(threshold), True),)
    if limits is None:
        return ()
    out: list[LimitSpec] = []
    for level, high in (("hihi", True), ("hi", True), ("lo", False), ("lolo", False)):
        v = getattr(limits, level)
        if v is not None:
            out.append(LimitSpec(level, float(v), high))  # type: ignore[arg-type]
    return tuple(out)


class _LevelState:
    __slots__ = ("active", "last_ctx", "last_value", "onset", "peak", "pending_since", "spec")

    def __init__(self, spec: LimitSpec) -> None:
        self.spec = spec
        self.pending_since: datetime | None = None
        self.active = False
        self.onset: datetime | None = None
        self.peak = 0.0
        self.last_value = 0.0
        self.last_ctx: ContextSample | None = None


TREND_STEP = timedelta(minutes=10)  # one trend anchor per step, up to TREND_ANCHORS kept
TREND_ANCHORS = 7  # so the trend in a summary spans up to the last hour


class _TagState:
    __slots__ = ("anchors", "busy", "hi_min", "info", "levels", "lo_max", "next_anchor")

    def __init__(self, info: TagInfo, specs: tuple[LimitSpec, ...]) -> None:
        self.info = info
        self.anchors: deque[tuple[datetime, float]] = deque(maxlen=TREND_ANCHORS)
        self.next_anchor: datetime | None = None
        self.levels = [_LevelState(s) for s in specs]
        self.hi_min = min((s.value for s in specs if s.high), default=_INF)
        self.lo_max = max((s.value for s in specs if not s.high), default=-_INF)
        self.busy = False  # some level pending or active: the slow path must run


class LimitDetector:
    """One [[detectors]] entry of kind "limit" over the tags it matched."""

    kind = "limit"

    def __init__(self, detector_id: str, priority: Priority = "medium", *,
                 hysteresis: float = 0.0, on_delay_s: float = 0.0,
                 threshold: float | None = None) -> None:
        self.detector_id = detector_id
        self.priority: Priority = priority
        self.hysteresis = float(hysteresis)
        self.on_delay_s = float(on_delay_s)
        self.threshold = threshold
        self._tags: dict[str, _TagState] = {}
        self._pending: set[str] = set()

    def add_tag(self, info: TagInfo, specs: tuple[LimitSpec, ...] | None = None) -> bool:
        """Watch a tag; False when it has no limit to check."""
        specs = limit_specs(info.limits, self.threshold) if specs is None else specs
        if not specs:
            return False
        self._tags[info.tag_id] = _TagState(info, specs)
        return True

    @property
    def tag_ids(self) -> list[str]:
        return list(self._tags)

    def feed(self, cs: ContextSample) -> list[Detection] | None:
        st = self._tags.get(cs.tag_id)
        if st is None:
            return None
        if cs.quality is not Quality.GOOD:
            if st.busy:
                self._unknown(st)
            return None
        v = cs.value
        tv = type(v)
        if tv is not float and tv is not int:
            return None
        if st.next_anchor is None or cs.source_ts >= st.next_anchor:
            st.anchors.append((cs.source_ts, float(v)))  # type: ignore[arg-type]
            st.next_anchor = cs.source_ts + TREND_STEP
        if not st.busy and st.lo_max <= v <= st.hi_min:  # type: ignore[operator]
            return None
        return self._evaluate(st, float(v), cs)  # type: ignore[arg-type]

    def _unknown(self, st: _TagState) -> None:
        for lv in st.levels:
            lv.pending_since = None
        st.busy = any(lv.active for lv in st.levels)
        self._pending.discard(st.info.tag_id)

    def _evaluate(self, st: _TagState, v: float, cs: ContextSample) -> list[Detection] | None:
        out: list[Detection] | None = None
        ts = cs.source_ts
        h = self.hysteresis
        for lv in st.levels:
            spec = lv.spec
            lv.last_value, lv.last_ctx = v, cs
            if lv.active:
                if (v <= spec.value - h) if spec.high else (v >= spec.value + h):
                    lv.active = False
                    (out := out or []).append(self._detection(st, lv, v, ts, cleared=True))
                elif (v > lv.peak) if spec.high else (v < lv.peak):
                    lv.peak = v
            elif (v > spec.value) if spec.high else (v < spec.value):
                if lv.pending_since is None:
                    lv.pending_since = ts
                if (ts - lv.pending_since).total_seconds() >= self.on_delay_s:
                    self._fire(lv, v)
                    (out := out or []).append(self._detection(st, lv, v, ts, cleared=False))
            else:
                lv.pending_since = None
        self._settle(st)
        return out

    def _fire(self, lv: _LevelState, v: float) -> None:
        lv.active = True
        lv.onset = lv.pending_since
        lv.pending_since = None
        lv.peak = v

    def _settle(self, st: _TagState) -> None:
        pending = any(lv.pending_since is not None for lv in st.levels)
        st.busy = pending or any(lv.active for lv in st.levels)
        if pending:
            self._pending.add(st.info.tag_id)
        else:
            self._pending.discard(st.info.tag_id)

    def tick(self, now: datetime) -> list[Detection]:
        """Fire on-delays that ran out with no new sample (subscriptions report changes only)."""
        out: list[Detection] = []
        for tag_id in list(self._pending):
            st = self._tags[tag_id]
            for lv in st.levels:
                if lv.pending_since is not None and \
                        (now - lv.pending_since).total_seconds() >= self.on_delay_s:
                    self._fire(lv, lv.last_value)
                    out.append(self._detection(st, lv, lv.last_value, now, cleared=False))
            self._settle(st)
        return out

    def _detection(self, st: _TagState, lv: _LevelState, v: float, ts: datetime, *,
                   cleared: bool) -> Detection:
        info, spec = st.info, lv.spec
        onset = lv.onset or ts
        word = "above" if spec.high else "below"
        if cleared:
            summary = (f"{info.label} back to {fmt(v, info.unit)}, inside its "
                       f"{spec.level.upper()} limit {fmt(spec.value, info.unit)} "
                       f"(worst {fmt(lv.peak, info.unit)})")
        else:
            held = (ts - onset).total_seconds()
            summary = (f"{info.label} {fmt(v, info.unit)} {word} {spec.level.upper()} limit "
                       f"{fmt(spec.value, info.unit)}" + (f" for {held:.0f} s" if held else ""))
        trend = _trend(st, ts, v)
        if trend is not None and not cleared:
            per_h, span_min = trend
            if abs(per_h) > 1e-9:
                summary += (f"; {'rising' if per_h > 0 else 'falling'} "
                            f"{fmt(abs(per_h), info.unit)}/h over {span_min:.0f} min")
        prio = escalate(self.priority) if spec.level in ("hihi", "lolo") else self.priority
        cs = lv.last_ctx
        return Detection(
            kind="limit", detector_id=self.detector_id,
            problem_key=f"limit:{info.tag_id}:{spec.level}", priority=prio, onset=onset,
            ts=ts, summary=summary, equipment_id=info.equipment_id, line_id=info.line_id,
            tag_id=info.tag_id, value=v, limit=spec.value,
            values={"peak": lv.peak},
            context=context_ids(cs.ctx) if cs is not None else {},
            evidence={"level": spec.level, "limit": spec.value, "unit": info.unit,
                      "hysteresis": self.hysteresis, "on_delay_s": self.on_delay_s,
                      "duration_s": (ts - onset).total_seconds(),
                      "trend_per_h": trend[0] if trend else None,
                      "trend_span_min": trend[1] if trend else None,
                      # the engine's analyzer reads signals in this shape
                      "signals": [{"signal": info.name, "value": v, "unit": info.unit,
                                   "slope_per_h": trend[0] if trend else None,
                                   "window_h": trend[1] / 60 if trend else None,
                                   "quality": "good"}]},
            cleared=cleared,
        )


def _trend(st: _TagState, ts: datetime, v: float) -> tuple[float, float] | None:
    """Rate per hour from the oldest anchor (up to an hour back) to now, and its span."""
    if not st.anchors:
        return None
    t0, v0 = st.anchors[0]
    span = (ts - t0).total_seconds()
    if span < 300:  # under five minutes says nothing about a trend
        return None
    return (v - v0) / span * 3600, span / 60
