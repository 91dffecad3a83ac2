"""Loop events: one small dataclass per step of the loop, and a synchronous bus.

Below both core.detect and core.engine (and core.alarms), so each can publish without
importing the other.

The headless event stream (JSON lines) and the console both subscribe to the same bus,
so what a person sees and what a script reads cannot drift apart. Publishing is sync
and cheap: a subscriber that raises is logged and dropped from that delivery, never
allowed to break the step that published.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from core.clock import ensure_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineEvent:
    """Common fields: what happened, when (UTC), and the ids a reader filters on."""

    kind: ClassVar[str] = "event"
    ts: datetime
    summary: str = ""
    equipment_id: str | None = None
    line_id: str | None = None
    lot_id: str | None = None
    order_id: str | None = None
    recommendation_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = ensure_utc(self.ts).isoformat()
        return {"kind": self.kind, **d}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, default=str, ensure_ascii=False)


@dataclass(frozen=True)
class DetectionEvent(EngineEvent):
    kind: ClassVar[str] = "detection"
    problem_key: str = ""
    detector_id: str = ""
    priority: str = "medium"


def detection_event(det: Any, ts: datetime | None = None) -> DetectionEvent:
    """The one builder of a detection's event: ``det`` is a ``core.detect.Detection``
    or anything with its attributes (a replayed record); the detail is its JSON form."""
    ctx = getattr(det, "context", None) or {}
    as_dict = getattr(det, "as_dict", None)
    if callable(as_dict):
        detail = as_dict()
    else:
        onset = getattr(det, "onset", None)
        detail = {"kind": getattr(det, "kind", ""), "detector_id": det.detector_id,
                  "problem_key": det.problem_key, "priority": det.priority,
                  "onset": ensure_utc(onset).isoformat() if onset else None,
                  "summary": det.summary, "equipment_id": det.equipment_id,
                  "line_id": det.line_id, "tag_id": getattr(det, "tag_id", None),
                  "value": getattr(det, "value", None), "context": dict(ctx),
                  "evidence": dict(getattr(det, "evidence", None) or {}),
                  "cleared": bool(getattr(det, "cleared", False))}
    when = ts or getattr(det, "ts", None) or det.onset
    obj = getattr(det, "ctx", None)  # a core.samples.Context, where the record has one
    ids = ctx if isinstance(ctx, dict) else {}
    return DetectionEvent(
        ts=when, summary=det.summary, equipment_id=det.equipment_id, line_id=det.line_id,
        lot_id=ids.get("lot_id") or getattr(obj, "lot_id", None),
        order_id=ids.get("order_id") or getattr(obj, "order_id", None),
        detail=detail, problem_key=det.problem_key, detector_id=det.detector_id,
        priority=det.priority)


@dataclass(frozen=True)
class RecommendationEvent(EngineEvent):
    kind: ClassVar[str] = "recommendation"
    status: str = ""  # proposed | merged | withheld | superseded | expired | ...
    decision_class: str = ""


@dataclass(frozen=True)
class DecisionEvent(EngineEvent):
    kind: ClassVar[str] = "decision"
    verdict: str = ""  # approved | rejected | refused | first_signature | promoted
    user_id: str = ""


@dataclass(frozen=True)
class ExecutionEvent(EngineEvent):
    kind: ClassVar[str] = "execution"
    action_id: int | None = None
    action: str = ""
    status: str = ""  # running | done | failed | resumed


@dataclass(frozen=True)
class OutcomeEvent(EngineEvent):
    kind: ClassVar[str] = "outcome"
    action_id: int | None = None
    label: str = ""


@dataclass(frozen=True)
class AlarmEvent(EngineEvent):
    kind: ClassVar[str] = "alarm"
    alarm_id: int | None = None
    state: str = ""
    priority: str = "medium"


@dataclass(frozen=True)
class ModelEvent(EngineEvent):
    kind: ClassVar[str] = "model"
    model: str = ""
    version: int | None = None
    status: str = ""


@dataclass(frozen=True)
class ConnectionEvent(EngineEvent):
    """A driver's connection changed (connected, reconnecting, down since...)."""

    kind: ClassVar[str] = "connection"
    driver_id: str = ""
    state: str = ""
    since: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class StatsEvent(EngineEvent):
    """The runtime's counters every few seconds (ingest, detection, outbox, drivers)."""

    kind: ClassVar[str] = "stats"


@dataclass(frozen=True)
class RuntimeEvent(EngineEvent):
    """Runtime life: started, stopping, summary, error (``level`` says how bad)."""

    kind: ClassVar[str] = "runtime"
    event: str = ""
    level: str = "info"


@dataclass(frozen=True)
class CounterResetEvent(EngineEvent):
    """A device's part counter restarted (counted from 0 again); ``detail`` has the figures."""

    kind: ClassVar[str] = "counter_reset"
    tag_id: str = ""
    booked: int = 0


@dataclass(frozen=True)
class CounterEvent(EngineEvent):
    """A part counter rolled over, or a reading was refused as implausible, or is
    plausible again (``event``: counter_wrap | counter_implausible | counter_ok)."""

    kind: ClassVar[str] = "counter"
    event: str = ""
    tag_id: str = ""
    booked: int = 0


Subscriber = Callable[[EngineEvent], None]


class EventBus:
    """Fan-out to subscribers in publish order; thread-safe subscribe/unsubscribe."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        with self._lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subs:
                    self._subs.remove(callback)

        return unsubscribe

    def publish(self, event: EngineEvent) -> None:
        with self._lock:
            subs = list(self._subs)
        for cb in subs:
            try:
                cb(event)
            except Exception:  # a broken viewer must not stop the loop
                log.exception("event subscriber failed on %s", event.kind)


class EventLog:
    """A subscriber that keeps what it saw (tests, the headless stream's backlog)."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self.events: list[EngineEvent] = []
        if bus is not None:
            bus.subscribe(self)

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[EngineEvent]:
        return [e for e in self.events if e.kind == kind]
