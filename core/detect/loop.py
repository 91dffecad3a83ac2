"""The detection stage of the runtime: samples in; detections to the engine, alarms, events.

``DetectLoop`` owns the cadence: samples are routed as they arrive, timers run on
``tick``, ML scores are polled every ``score_every_s`` and material projected every
``material_every_s`` of plant time. Each detection goes to the event stream, to the
alarm manager and to the engine (``Engine.on_detection``); each alarm change to the
event stream. A failing consumer is logged and counted, never allowed to stop
detection: the next sample must still be looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.clock import Clock, ensure_utc
from core.detect.events import Detection
from core.detect.pipeline import DetectorSet
from core.samples import ContextSample

log = logging.getLogger(__name__)


@dataclass
class LoopStats:
    samples: int = 0
    detections: dict[str, int] = field(default_factory=dict)  # by kind, onsets only
    alarm_changes: int = 0
    consumer_errors: int = 0


class DetectLoop:
    def __init__(self, detectors: DetectorSet, clock: Clock, *, alarms: Any | None = None,
                 on_detection: Callable[[Detection], Any] | None = None,
                 publish: Callable[[Any], None] | None = None,
                 store: Any | None = None, lines: Iterable[str] = (),
                 rate_of: Callable[[str, str], float] | None = None,
                 score_every_s: float = 30.0, material_every_s: float = 300.0) -> None:
        """``alarms``: a ``core.alarms.AlarmManager``; ``publish``: the event bus's publish;
        ``store``/``lines``: where material projections look (none without a store)."""
        self.detectors = detectors
        self.clock = clock
        self.alarms = alarms
        self.on_detection = on_detection
        self.publish = publish
        self.store = store
        self.lines = list(lines)
        self.rate_of = rate_of
        self.score_every_s = score_every_s
        self.material_every_s = material_every_s
        self._next_score: datetime | None = None
        self._next_material: datetime | None = None
        self.stats = LoopStats()

    def on_samples(self, samples: Iterable[ContextSample]) -> list[Detection]:
        batch = samples if isinstance(samples, list) else list(samples)
        self.stats.samples += len(batch)
        dets = self.detectors.process_many(batch)
        self._dispatch(dets)
        return dets

    def tick(self, now: datetime | None = None) -> list[Detection]:
        """Timers, and the ML and material checks when their time has come."""
        at = ensure_utc(now or self.clock.now())
        dets = self.detectors.tick(at)
        if self.detectors.ml and (self._next_score is None or at >= self._next_score):
            dets += self.detectors.poll_scores(at)
            self._next_score = _after(at, self.score_every_s)
        if self.store is not None and self.detectors.material and self.lines and \
                (self._next_material is None or at >= self._next_material):
            dets += self.detectors.check_material(self.store, self.lines, self.rate_of, at)
            self._next_material = _after(at, self.material_every_s)
        self._dispatch(dets)
        if self.alarms is not None:
            self._emit(self.alarms.tick(at))
        return dets

    def dispatch(self, dets: list[Detection]) -> None:
        """Detections made outside the detectors (e.g. a refused part count): to the
        event stream, the alarm manager and the engine like any other."""
        self._dispatch(dets)

    def _dispatch(self, dets: list[Detection]) -> None:
        for d in dets:
            if not d.cleared:
                self.stats.detections[d.kind] = self.stats.detections.get(d.kind, 0) + 1
            if self.publish is not None:
                self._safe(lambda d=d: self.publish(d.as_event()), "event stream", d)  # type: ignore[misc]
            if self.alarms is not None:
                try:
                    self._emit(self.alarms.on_detection(d))
                except Exception:
                    self.stats.consumer_errors += 1
                    log.exception("alarm manager failed on %s", d.problem_key)
            if self.on_detection is not None:
                self._safe(lambda d=d: self.on_detection(d), "engine", d)  # type: ignore[misc]

    def _emit(self, changes: list[Any]) -> None:
        self.stats.alarm_changes += len(changes)
        if self.publish is None:
            return
        for ch in changes:
            try:
                self.publish(ch.as_event())
            except Exception:
                self.stats.consumer_errors += 1
                log.exception("publishing alarm change %s failed", ch.event)

    def _safe(self, fn: Callable[[], Any], who: str, d: Detection) -> None:
        try:
            fn()
        except Exception:
            self.stats.consumer_errors += 1
            log.exception("%s failed on detection %s", who, d.problem_key)


def _after(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)
