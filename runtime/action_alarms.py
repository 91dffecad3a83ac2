"""An alarm when the same action keeps failing (an auto-approved replenishment that the
plant refuses every time was only visible one toast at a time).

A bus subscriber: it counts failed executions per (action, target) over a plant-time
window; at ``threshold`` failures it raises one alarm through the alarm manager (so it is
acknowledged and shelved like any other), and a later success of the same action on the
same target clears it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from core.detect.events import Detection
from core.events import EngineEvent, ExecutionEvent

FAILURES_TO_ALARM = 3
WINDOW = timedelta(hours=1)


class FailedActionWatch:
    def __init__(self, alarms: Any, publish: Callable[[EngineEvent], None], *,
                 threshold: int = FAILURES_TO_ALARM, window: timedelta = WINDOW) -> None:
        self.alarms, self.publish = alarms, publish
        self.threshold, self.window = threshold, window
        self._failures: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._raised: set[tuple[str, str]] = set()

    @staticmethod
    def key_of(ev: ExecutionEvent) -> tuple[str, str]:
        return ev.action, ev.equipment_id or ev.line_id or str(ev.detail.get("target", ""))

    def __call__(self, ev: EngineEvent) -> None:
        if not isinstance(ev, ExecutionEvent) or ev.status not in ("failed", "done"):
            return
        key = self.key_of(ev)
        if ev.status == "done":
            self._failures.pop(key, None)
            if key in self._raised:
                self._raised.discard(key)
                self._emit(self._detection(ev, key, 0, cleared=True))
            return
        times = self._failures[key]
        times.append(ev.ts)
        while times and ev.ts - times[0] > self.window:
            times.popleft()
        if len(times) >= self.threshold and key not in self._raised:
            self._raised.add(key)
            self._emit(self._detection(ev, key, len(times)))

    def _detection(self, ev: ExecutionEvent, key: tuple[str, str], n: int, *,
                   cleared: bool = False) -> Detection:
        action, target = key
        reason = str(ev.detail.get("error") or ev.summary or "").splitlines()[0][:120] \
            if not cleared else ""
        what = action.replace("_", " ")
        hours = self.window.total_seconds() / 3600
        summary = (f"{what} on {target} succeeded again" if cleared else
                   f"{what} on {target} failed {n} times in {hours:g} h: {reason}")
        return Detection(kind="state", detector_id="executor",
                         problem_key=f"action_failing:{action}:{target}", priority="high",
                         onset=ev.ts, summary=summary, equipment_id=ev.equipment_id,
                         line_id=ev.line_id, cleared=cleared,
                         evidence={"failures": n, "action": action, "target": target})

    def _emit(self, det: Detection) -> None:
        for ch in self.alarms.on_detection(det):
            self.publish(ch.as_event())
