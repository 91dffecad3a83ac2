"""Equipment state changes: unplanned down, micro-stops, starved and blocked.

State codes follow the plant convention (config.toml ``state`` tag): 0 idle,
1 running, 2 setup, 3 down planned, 4 down unplanned, 5 starved, 6 blocked.

- Unplanned down (4) is reported after ``on_delay_s`` (default at once) and cleared
  when the machine leaves state 4, with the downtime in the evidence.
- A micro-stop is a stop (states in ``micro_stop_states``) that returns to running
  within ``micro_stop_max_s``; too many in the last hour (``micro_stops_per_h``) is a
  problem in its own right, cleared when the hourly count falls below half of it.
- Starved and blocked are the line's flow, not this machine's fault: they are
  reported only after ``starved_blocked_after_s`` at low priority.

State tags publish on change only, so timers run in ``tick(now)`` too.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from core.detect.events import Detection, Priority, context_ids
from core.samples import Context, ContextSample, Quality

IDLE, RUNNING, SETUP, DOWN_PLANNED, DOWN_UNPLANNED, STARVED, BLOCKED = range(7)
STATE_NAMES = {0: "idle", 1: "running", 2: "setup", 3: "down_planned", 4: "down_unplanned",
               5: "starved", 6: "blocked"}
_HOUR = 3600.0


class _Eq:
    __slots__ = ("active", "ctx", "equipment_id", "line_id", "micro_active", "pending",
                 "since", "state", "stop_from_running", "stops", "tag_id")

    def __init__(self, equipment_id: str, line_id: str | None, tag_id: str) -> None:
        self.equipment_id, self.line_id, self.tag_id = equipment_id, line_id, tag_id
        self.state: int | None = None
        self.since: datetime | None = None
        self.stop_from_running = False
        self.stops: deque[datetime] = deque()
        self.micro_active = False
        self.active: dict[str, datetime] = {}  # problem -> onset
        self.pending: dict[str, datetime] = {}  # problem -> since (on-delay running)
        self.ctx: Context | None = None


class StateDetector:
    kind = "state"

    def __init__(self, detector_id: str, priority: Priority = "high", *,
                 on_delay_s: float = 0.0, micro_stop_max_s: float = 120.0,
                 micro_stops_per_h: int = 6, micro_stop_states: tuple[int, ...] = (0, 4),
                 starved_blocked_after_s: float = 900.0) -> None:
        self.detector_id = detector_id
        self.priority: Priority = priority
        self.on_delay_s = on_delay_s
        self.micro_stop_max_s = micro_stop_max_s
        self.micro_stops_per_h = micro_stops_per_h
        self.micro_stop_states = frozenset(micro_stop_states)
        self.starved_blocked_after_s = starved_blocked_after_s
        self._by_tag: dict[str, _Eq] = {}
        self._timed: set[str] = set()  # tags with a pending on-delay or micro-stop window

    def add_tag(self, tag_id: str, equipment_id: str | None, line_id: str | None) -> bool:
        if equipment_id is None:
            return False
        self._by_tag[tag_id] = _Eq(equipment_id, line_id, tag_id)
        return True

    def delay_for(self, problem: str) -> float:
        return self.on_delay_s if problem == "down_unplanned" else self.starved_blocked_after_s

    def feed(self, cs: ContextSample) -> list[Detection] | None:
        eq = self._by_tag.get(cs.tag_id)
        if eq is None or cs.quality is not Quality.GOOD:
            return None
        v = cs.value
        if type(v) is bool or not isinstance(v, int | float):
            return None
        code = int(v)
        eq.ctx = cs.ctx
        if code == eq.state:
            return self._timers(eq, cs.source_ts) or None
        return self._change(eq, code, cs.source_ts) or None

    def _change(self, eq: _Eq, code: int, ts: datetime) -> list[Detection]:
        out: list[Detection] = []
        old, since = eq.state, eq.since
        eq.state, eq.since = code, ts
        for problem in list(eq.pending):
            if problem != STATE_NAMES.get(code):
                del eq.pending[problem]
        for problem in list(eq.active):
            if problem in ("down_unplanned", "starved", "blocked") and \
                    problem != STATE_NAMES.get(code):
                onset = eq.active.pop(problem)
                out.append(self._det(eq, problem, ts, cleared=True, onset=onset, extra={
                    "duration_s": (ts - onset).total_seconds(), "now": STATE_NAMES.get(code)}))
        if code == RUNNING and old in self.micro_stop_states and eq.stop_from_running \
                and since is not None and (ts - since).total_seconds() <= self.micro_stop_max_s:
            eq.stops.append(ts)
        eq.stop_from_running = old == RUNNING and code in self.micro_stop_states
        if code in (DOWN_UNPLANNED, STARVED, BLOCKED):
            eq.pending[STATE_NAMES[code]] = ts
        out.extend(self._timers(eq, ts))
        return out

    def _timers(self, eq: _Eq, now: datetime) -> list[Detection]:
        out: list[Detection] = []
        for problem, since in list(eq.pending.items()):
            if (now - since).total_seconds() >= self.delay_for(problem):
                del eq.pending[problem]
                eq.active[problem] = since
                out.append(self._det(eq, problem, now, cleared=False, onset=since))
        stops = eq.stops
        while stops and (now - stops[0]).total_seconds() > _HOUR:
            stops.popleft()
        n = len(stops)
        if not eq.micro_active and n >= self.micro_stops_per_h:
            eq.micro_active = True
            eq.active["micro_stops"] = stops[0]
            out.append(self._det(eq, "micro_stops", now, cleared=False, onset=stops[0],
                                 extra={"count_last_hour": n}))
        elif eq.micro_active and n < max(1, self.micro_stops_per_h // 2):
            eq.micro_active = False
            onset = eq.active.pop("micro_stops", now)
            out.append(self._det(eq, "micro_stops", now, cleared=True, onset=onset,
                                 extra={"count_last_hour": n}))
        if eq.pending or stops:
            self._timed.add(eq.tag_id)
        else:
            self._timed.discard(eq.tag_id)
        return out

    def tick(self, now: datetime) -> list[Detection]:
        out: list[Detection] = []
        for tag_id in list(self._timed):
            out.extend(self._timers(self._by_tag[tag_id], now))
        return out

    def micro_stops_last_hour(self, equipment_id: str) -> int:
        for eq in self._by_tag.values():
            if eq.equipment_id == equipment_id:
                return len(eq.stops)
        return 0

    def _det(self, eq: _Eq, problem: str, ts: datetime, *, cleared: bool, onset: datetime,
             extra: dict[str, object] | None = None) -> Detection:
        extra = extra or {}
        if problem == "micro_stops":
            prio: Priority = "medium"
            n = extra.get("count_last_hour")
            summary = (f"{eq.equipment_id}: micro-stops back to {n} in the last hour" if cleared
                       else f"{eq.equipment_id}: {n} micro-stops (under "
                            f"{self.micro_stop_max_s:.0f} s each) in the last hour")
        else:
            prio = self.priority if problem == "down_unplanned" else "low"
            words = problem.replace("_", " ")
            if cleared:
                summary = (f"{eq.equipment_id} no longer {words} after "
                           f"{float(extra.get('duration_s', 0)) / 60:.0f} min")  # type: ignore[arg-type]
            else:
                held = (ts - onset).total_seconds()
                summary = f"{eq.equipment_id} {words}" + (f" for {held / 60:.0f} min"
                                                          if held >= 60 else "")
        return Detection(
            kind="state", detector_id=self.detector_id,
            problem_key=f"state:{eq.equipment_id}:{problem}", priority=prio, onset=onset,
            ts=ts, summary=summary, equipment_id=eq.equipment_id, line_id=eq.line_id,
            tag_id=eq.tag_id, value=float(eq.state) if eq.state is not None else None,
            context=context_ids(eq.ctx),
            evidence={"problem": problem, "state": STATE_NAMES.get(eq.state or 0), **extra},
            cleared=cleared,
        )
