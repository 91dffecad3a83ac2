"""ISA-18.2 alarm management over detections, persisted in the ``alarm`` table.

States are active/cleared × acknowledged/unacknowledged: a cleared alarm nobody has
acknowledged ("return to normal, unacked") stays visible until it is; an acked
alarm that clears returns to normal and leaves the open set. One alarm per problem
key (``Alarm.source`` holds the key, e.g. "limit:A-LATHE1.bearing_temp:hi"), so a
problem that comes back before it was acknowledged re-activates the same alarm.

- Shelving is done by a person with a reason and is audited: one-shot (until the
  alarm clears, capped at ``max_shelve_s``) or timed (until a time, expiring in
  ``tick``). A shelved alarm is recorded but not annunciated.
- Suppression by design: while equipment is down, consequential alarms (downstream
  starved, upstream blocked, its own low limits and micro-stops) are recorded as
  suppressed, and annunciated if still active when the equipment is back.
- Flood per operator position (a line by default): more than ``flood_count``
  annunciated alarms in ``flood_window_s`` starts a flood, fewer than
  ``flood_clear`` ends it; time in flood is accumulated for the rate benchmark.
- Stale and Bad tags of one machine share one alarm ("data_quality:<equipment>"),
  and SPC run rules other than ``spc_alarm_rules`` are not operator alarms (they
  reach the quality engineer through the recommender), both per ``AlarmPolicy``.
- Chattering: the same alarm raised ``chatter_count`` times within
  ``chatter_window_s`` is flagged, and optionally shelved for ``chatter_shelve_s``
  by the system, audited.

Every method returns ``AlarmChange`` events for the event stream
(``AlarmChange.as_event()`` gives the engine's ``AlarmEvent``).
"""

from __future__ import annotations

import functools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from core import audit
from core.clock import Clock, ensure_utc
from core.detect.events import PRIORITIES, Detection
from core.events import AlarmEvent
from core.store.models import Alarm, AuditEntry

_ALARM = Alarm.__table__  # type: ignore[attr-defined]
_AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
SYSTEM = "system"


class AlarmError(Exception):
    """An alarm operation that cannot be done; ``str()`` is the message for the user."""


@dataclass
class AlarmPolicy:
    flood_count: int = 10  # more than this many in the window starts a flood
    flood_window_s: float = 600.0
    flood_clear: int = 5  # fewer than this many in the window ends it
    chatter_count: int = 3
    chatter_window_s: float = 60.0
    auto_shelve_chattering: bool = False
    chatter_shelve_s: float = 900.0
    max_shelve_s: float = 8 * 3600.0  # a shelved alarm is never forgotten for longer
    # one alarm per equipment for its stale/Bad tags: a comms drop is one thing to do
    group_data_quality: bool = True
    # SPC run rules other than these go to the quality engineer as recommendations,
    # not to the operator's alarm list (rule 1, a point beyond 3σ, needs a look now)
    spc_alarm_rules: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class AlarmChange:
    """One alarm transition: raised, reraised, cleared, acked, normal, shelved, unshelved,
    suppressed, unsuppressed, chattering, flood_start, flood_end."""

    event: str
    ts: datetime
    alarm_id: int | None = None
    problem_key: str = ""
    position: str | None = None
    priority: str = "medium"
    state: str = ""  # active | cleared (the alarm's state after the change)
    acked: bool = False
    message: str = ""
    actor: str = ""
    equipment_id: str | None = None
    line_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_event(self) -> Any:
        """The engine's AlarmEvent, for the shared event bus."""
        return AlarmEvent(
            ts=self.ts, summary=self.message, equipment_id=self.equipment_id,
            line_id=self.line_id, alarm_id=self.alarm_id, state=self.event,
            priority=self.priority,
            detail={"problem_key": self.problem_key, "position": self.position,
                    "alarm_state": self.state, "acked": self.acked, "actor": self.actor,
                    **self.detail})


@dataclass
class AlarmRecord:
    id: int
    problem_key: str
    detector_id: str
    position: str
    priority: str
    message: str
    raised_at: datetime
    equipment_id: str | None = None
    line_id: str | None = None
    state: str = "active"
    acked: bool = False
    acked_by: str | None = None
    acked_at: datetime | None = None
    cleared_at: datetime | None = None
    value: float | None = None
    shelved_until: datetime | None = None
    shelve_mode: str | None = None  # one_shot | timed
    shelved_by: str | None = None
    suppressed: str | None = None  # why, while suppressed by design
    chattering: bool = False
    raise_count: int = 1
    detection: Detection | None = None

    @property
    def shelved(self) -> bool:
        return self.shelve_mode is not None

    @property
    def annunciated(self) -> bool:
        return not self.shelved and not self.suppressed

    @property
    def status(self) -> str:
        if self.state == "active":
            return "active, acknowledged" if self.acked else "active, unacknowledged"
        return "cleared, acknowledged" if self.acked else "returned to normal, unacknowledged"


def _locked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The console acknowledges on its thread while the engine raises on another."""
    @functools.wraps(fn)
    def wrapper(self: AlarmManager, *a: Any, **kw: Any) -> Any:
        with self._lock:
            return fn(self, *a, **kw)
    return wrapper


def _prio_rank(p: str) -> int:
    return PRIORITIES.index(p) if p in PRIORITIES else 1  # type: ignore[arg-type]


SuppressRule = Callable[[Detection, "AlarmManager"], "str | None"]


class AlarmManager:
    def __init__(self, store: Any, clock: Clock, *, line_of: Mapping[str, str] | None = None,
                 flow: Mapping[str, list[str]] | None = None,
                 positions: Mapping[str, str] | None = None,
                 policy: AlarmPolicy | None = None, users: Iterable[str] | None = None,
                 suppress_rules: Iterable[SuppressRule] | None = None) -> None:
        """``line_of``: equipment -> line; ``flow``: line -> equipment in flow order;
        ``positions``: line -> operator position (default: the line itself)."""
        self.store = store
        self.clock = clock
        self.policy = policy or AlarmPolicy()
        self.line_of = dict(line_of or {})
        self.flow = {k: list(v) for k, v in (flow or {}).items()}
        self.positions = dict(positions or {})
        self.users = set(users) if users is not None else None
        self.suppress_rules: list[SuppressRule] = list(suppress_rules or [default_suppression])
        self.down: dict[str, str] = {}  # equipment -> why it is down
        self._open: dict[str, AlarmRecord] = {}  # problem key -> open alarm
        self._by_id: dict[int, AlarmRecord] = {}
        self._raises: dict[str, deque[datetime]] = {}  # problem key -> recent raise times
        self._pos_raises: dict[str, deque[datetime]] = {}
        self._flood_since: dict[str, datetime] = {}
        self.flood_seconds: dict[str, float] = {}
        self.floods: dict[str, int] = {}
        self.annunciated_count: dict[str, int] = {}
        self._groups: dict[str, set[str]] = {}  # group key -> member problem keys
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, store: Any, cfg: Any, clock: Clock, **kw: Any) -> AlarmManager:
        """Positions are the config's lines; flow order is the equipment order in a line."""
        config = cfg.config
        line_of = {eq.id: ln.id for ln in config.lines for eq in ln.equipment}
        flow = {ln.id: [eq.id for eq in ln.equipment] for ln in config.lines}
        users = [u.id for u in config.users]
        return cls(store, clock, line_of=line_of, flow=flow, users=users, **kw)

    # ---------------------------------------------------------------- queries

    def position_of(self, line_id: str | None, equipment_id: str | None = None) -> str:
        line = line_id or (self.line_of.get(equipment_id) if equipment_id else None)
        if line is None:
            return "plant"
        return self.positions.get(line, line)

    def get(self, alarm_id: int) -> AlarmRecord | None:
        return self._by_id.get(alarm_id)

    def by_key(self, problem_key: str) -> AlarmRecord | None:
        return self._open.get(problem_key)

    @_locked
    def open_alarms(self, position: str | None = None, *, include_hidden: bool = False
                    ) -> list[AlarmRecord]:
        """What an operator's alarm list shows: active or unacked, highest priority first."""
        out = [r for r in self._open.values()
               if (include_hidden or r.annunciated)
               and (position is None or r.position == position)]
        return sorted(out, key=lambda r: (-_prio_rank(r.priority), r.raised_at))

    def in_flood(self, position: str) -> bool:
        return position in self._flood_since

    def flood_time(self, position: str, now: datetime | None = None) -> float:
        """Seconds this position has spent in flood, including a flood still running."""
        total = self.flood_seconds.get(position, 0.0)
        since = self._flood_since.get(position)
        if since is not None:
            total += ((now or self.clock.now()) - since).total_seconds()
        return total

    # ---------------------------------------------------------------- detections

    @_locked
    def on_detection(self, d: Detection) -> list[AlarmChange]:
        """Raise, re-raise or clear the alarm of a detection's problem."""
        if d.kind == "spc" and d.evidence.get("rule") is not None \
                and d.evidence["rule"] not in self.policy.spc_alarm_rules:
            return []
        if self.policy.group_data_quality and d.kind in ("stale", "bad_data") \
                and d.equipment_id:
            grouped = self._group(d)
            if grouped is None:
                return []
            d = grouped
        ts = ensure_utc(d.ts or self.clock.now())
        out: list[AlarmChange] = []
        down_changed = self._track_down(d)
        if d.cleared:
            rec = self._open.get(d.problem_key)
            if rec is not None and rec.state == "active":
                out.extend(self._clear(rec, d, ts))
        else:
            out.extend(self._raise(d, ts))
        if down_changed:
            out.extend(self._reevaluate_suppression(ts))
        return out

    @_locked
    def on_detections(self, ds: Iterable[Detection]) -> list[AlarmChange]:
        out: list[AlarmChange] = []
        for d in ds:
            out.extend(self.on_detection(d))
        return out

    def _group(self, d: Detection) -> Detection | None:
        """The equipment's data-quality alarm: raised by the first tag, cleared by the last."""
        key = f"data_quality:{d.equipment_id}"
        members = self._groups.setdefault(key, set())
        was = bool(members)
        if d.cleared:
            members.discard(d.problem_key)
            if not was or members:
                return None
            summary = f"{d.equipment_id}: all tags Good and updating again"
        else:
            members.add(d.problem_key)
            if was:
                return None
            summary = f"{d.equipment_id}: data quality: {d.summary}"
        return Detection(kind=d.kind, detector_id=d.detector_id, problem_key=key,
                         priority=d.priority, onset=d.onset, ts=d.ts, summary=summary,
                         equipment_id=d.equipment_id, line_id=d.line_id,
                         context=d.context, evidence={"first": d.problem_key},
                         cleared=d.cleared, quality=d.quality)

    def _track_down(self, d: Detection) -> bool:
        if d.kind != "state" or not d.problem_key.endswith(":down_unplanned") \
                or not d.equipment_id:
            return False
        if d.cleared:
            return self.down.pop(d.equipment_id, None) is not None
        self.down[d.equipment_id] = "down unplanned"
        return True

    @_locked
    def set_equipment_down(self, equipment_id: str, down: bool, why: str = "down planned"
                           ) -> list[AlarmChange]:
        """Planned downtime (or any outside knowledge) drives suppression too."""
        if down:
            self.down[equipment_id] = why
        else:
            self.down.pop(equipment_id, None)
        return self._reevaluate_suppression(self.clock.now())

    def _suppression(self, d: Detection) -> str | None:
        for rule in self.suppress_rules:
            why = rule(d, self)
            if why:
                return why
        return None

    def _raise(self, d: Detection, ts: datetime) -> list[AlarmChange]:
        out: list[AlarmChange] = []
        rec = self._open.get(d.problem_key)
        pos = self.position_of(d.line_id, d.equipment_id)
        if rec is not None and rec.state == "active":
            if _prio_rank(d.priority) > _prio_rank(rec.priority):  # escalation
                rec.priority = d.priority
                rec.message, rec.value, rec.detection = d.summary, d.value, d
                self._persist(rec)
                out.append(self._change("raised", rec, ts, detail={"escalated": True}))
            return out
        why = self._suppression(d)
        if rec is None:
            rec = AlarmRecord(0, d.problem_key, d.detector_id, pos, d.priority, d.summary, ts,
                              d.equipment_id, d.line_id, value=d.value, detection=d,
                              suppressed=why)
            with self.store.begin() as c:
                res = c.execute(insert(_ALARM).values(
                    source=d.problem_key, detector_id=d.detector_id, priority=d.priority,
                    message=d.summary, state="active", acked=False, suppressed=bool(why),
                    value=d.value, raised_at=ts))
                rec.id = int(res.inserted_primary_key[0])
            self._open[d.problem_key] = rec
            self._by_id[rec.id] = rec
            event = "raised"
        else:  # returned to normal unacked, and active again: the same alarm re-activates
            rec.state, rec.cleared_at, rec.raise_count = "active", None, rec.raise_count + 1
            rec.priority = max(rec.priority, d.priority, key=_prio_rank)
            rec.message, rec.value, rec.detection, rec.suppressed = d.summary, d.value, d, why
            self._persist(rec)
            event = "reraised"
        out.append(self._change(event, rec, ts, detail={"detection_id": d.id}))
        if why:
            out.append(self._change("suppressed", rec, ts, detail={"why": why}))
        out.extend(self._chatter(rec, ts))
        if rec.annunciated:
            out.extend(self._count_for_flood(rec.position, ts))
        return out

    def _clear(self, rec: AlarmRecord, d: Detection, ts: datetime) -> list[AlarmChange]:
        rec.state, rec.cleared_at = "cleared", ts
        rec.value = d.value if d.value is not None else rec.value
        out = [self._change("cleared", rec, ts, detail={"detection_id": d.id,
                                                        "summary": d.summary})]
        if rec.shelve_mode == "one_shot":
            # one-shot shelving lasts until the alarm clears; the person who shelved it
            # has dealt with it, so it returns to normal without another acknowledgement
            with self.store.begin() as c:
                self._audit(c, SYSTEM, "alarm.unshelve", rec, ts,
                            {"reason": "alarm cleared (one-shot shelve)"})
                rec.acked, rec.acked_by, rec.acked_at = True, f"{SYSTEM}:one-shot", ts
                self._unshelve_fields(rec)
                self._persist(rec, c)
            out.append(self._change("unshelved", rec, ts, actor=SYSTEM,
                                    detail={"reason": "alarm cleared (one-shot shelve)"}))
        elif rec.suppressed and not rec.acked:
            # never annunciated, so nobody is asked to acknowledge it
            rec.acked, rec.acked_by, rec.acked_at = True, f"{SYSTEM}:suppressed", ts
            self._persist(rec)
        else:
            self._persist(rec)
        if rec.acked:
            out.extend(self._normal(rec, ts))
        return out

    def _normal(self, rec: AlarmRecord, ts: datetime) -> list[AlarmChange]:
        self._open.pop(rec.problem_key, None)
        self._by_id.pop(rec.id, None)
        return [self._change("normal", rec, ts)]

    # ---------------------------------------------------------------- operator actions

    def _require(self, alarm_id: int) -> AlarmRecord:
        rec = self._by_id.get(alarm_id)
        if rec is not None:
            return rec
        with self.store.begin() as c:
            row = c.execute(select(_ALARM.c.id, _ALARM.c.state, _ALARM.c.acked)
                            .where(_ALARM.c.id == alarm_id)).first()
        if row is None:
            raise AlarmError(f"no alarm {alarm_id}")
        raise AlarmError(f"alarm {alarm_id} has already returned to normal "
                         f"(cleared and acknowledged)")

    def _user(self, user: str) -> str:
        user = (user or "").strip()
        if not user:
            raise AlarmError("a user id is required")
        if self.users is not None and user not in self.users:
            raise AlarmError(f"unknown user {user!r}")
        return user

    @_locked
    def ack(self, alarm_id: int, user: str, comment: str = "") -> list[AlarmChange]:
        user = self._user(user)
        rec = self._require(alarm_id)
        if rec.acked:
            raise AlarmError(f"alarm {alarm_id} was already acknowledged by {rec.acked_by} "
                             f"at {rec.acked_at:%Y-%m-%d %H:%M:%S} UTC")
        now = self.clock.now()
        rec.acked, rec.acked_by, rec.acked_at = True, user, now
        with self.store.begin() as c:
            self._audit(c, user, "alarm.ack", rec, now, {"comment": comment,
                                                         "state": rec.state})
            self._persist(rec, c)
        out = [self._change("acked", rec, now, actor=user)]
        if rec.state == "cleared":
            out.extend(self._normal(rec, now))
        return out

    @_locked
    def ack_position(self, position: str, user: str) -> list[AlarmChange]:
        """Acknowledge every visible unacked alarm of one position (the "ack page" key)."""
        out: list[AlarmChange] = []
        for rec in self.open_alarms(position):
            if not rec.acked:
                out.extend(self.ack(rec.id, user))
        return out

    @_locked
    def shelve(self, alarm_id: int, user: str, reason: str, *, until: datetime | None = None,
               duration_s: float | None = None) -> list[AlarmChange]:
        """One-shot without ``until``/``duration_s``, else timed; both audited with the reason."""
        user = self._user(user)
        return self._shelve(self._require(alarm_id), user, reason, until, duration_s)

    def _shelve(self, rec: AlarmRecord, user: str, reason: str, until: datetime | None,
                duration_s: float | None) -> list[AlarmChange]:
        reason = (reason or "").strip()
        if not reason:
            raise AlarmError("shelving needs a reason")
        if rec.shelved:
            raise AlarmError(f"alarm {rec.id} is already shelved until "
                             f"{rec.shelved_until:%Y-%m-%d %H:%M:%S} UTC; unshelve it first")
        now = self.clock.now()
        cap = now + timedelta(seconds=self.policy.max_shelve_s)
        if until is None and duration_s is None:
            mode, end = "one_shot", cap
        else:
            mode = "timed"
            if duration_s is not None:
                if duration_s <= 0:
                    raise AlarmError("the shelving duration must be positive")
                end = now + timedelta(seconds=duration_s)
            else:
                end = ensure_utc(until)  # type: ignore[arg-type]
            if end <= now:
                raise AlarmError("the shelving time must be in the future")
            if end > cap:
                raise AlarmError(f"alarms may be shelved for at most "
                                 f"{self.policy.max_shelve_s / 3600:g} h")
        rec.shelve_mode, rec.shelved_until, rec.shelved_by = mode, end, user
        detail = {"mode": mode, "until": end.isoformat(), "reason": reason}
        with self.store.begin() as c:
            self._audit(c, user, "alarm.shelve", rec, now, detail)
            self._persist(rec, c)
        return [self._change("shelved", rec, now, actor=user, detail=detail)]

    @_locked
    def unshelve(self, alarm_id: int, user: str, reason: str = "") -> list[AlarmChange]:
        user = self._user(user)
        rec = self._require(alarm_id)
        if not rec.shelved:
            raise AlarmError(f"alarm {alarm_id} is not shelved")
        return self._unshelve(rec, user, reason or "unshelved by hand", self.clock.now())

    def _unshelve(self, rec: AlarmRecord, actor: str, reason: str, now: datetime
                  ) -> list[AlarmChange]:
        with self.store.begin() as c:
            self._audit(c, actor, "alarm.unshelve", rec, now,
                        {"reason": reason, "mode": rec.shelve_mode})
            self._unshelve_fields(rec)
            self._persist(rec, c)
        return [self._change("unshelved", rec, now, actor=actor, detail={"reason": reason})]

    @staticmethod
    def _unshelve_fields(rec: AlarmRecord) -> None:
        rec.shelve_mode, rec.shelved_until, rec.shelved_by = None, None, None

    # ---------------------------------------------------------------- timers

    @_locked
    def tick(self, now: datetime | None = None) -> list[AlarmChange]:
        """Expire timed shelving and end floods whose window has emptied."""
        now = ensure_utc(now or self.clock.now())
        out: list[AlarmChange] = []
        for rec in list(self._open.values()):
            if rec.shelved and rec.shelved_until is not None and rec.shelved_until <= now:
                why = ("shelving time expired" if rec.shelve_mode == "timed"
                       else "one-shot shelving reached its time limit")
                out.extend(self._unshelve(rec, SYSTEM, why, now))
        for pos in list(self._flood_since):
            out.extend(self._flood_check(pos, now))
        return out

    def _count_for_flood(self, pos: str, ts: datetime) -> list[AlarmChange]:
        self.annunciated_count[pos] = self.annunciated_count.get(pos, 0) + 1
        self._pos_raises.setdefault(pos, deque()).append(ts)
        return self._flood_check(pos, ts)

    def _flood_check(self, pos: str, now: datetime) -> list[AlarmChange]:
        q = self._pos_raises.get(pos)
        if q is None:
            return []
        horizon = now - timedelta(seconds=self.policy.flood_window_s)
        while q and q[0] <= horizon:
            q.popleft()
        n = len(q)
        if pos not in self._flood_since and n > self.policy.flood_count:
            self._flood_since[pos] = now
            self.floods[pos] = self.floods.get(pos, 0) + 1
            return [AlarmChange("flood_start", now, position=pos, priority="high",
                                message=f"alarm flood at position {pos}: {n} alarms in "
                                        f"{self.policy.flood_window_s / 60:g} min",
                                detail={"count": n})]
        if pos in self._flood_since and n < self.policy.flood_clear:
            since = self._flood_since.pop(pos)
            dur = (now - since).total_seconds()
            self.flood_seconds[pos] = self.flood_seconds.get(pos, 0.0) + dur
            return [AlarmChange("flood_end", now, position=pos,
                                message=f"alarm flood at position {pos} over after "
                                        f"{dur / 60:.0f} min", detail={"count": n,
                                                                        "duration_s": dur})]
        return []

    def _chatter(self, rec: AlarmRecord, ts: datetime) -> list[AlarmChange]:
        q = self._raises.setdefault(rec.problem_key, deque())
        q.append(ts)
        horizon = ts - timedelta(seconds=self.policy.chatter_window_s)
        while q and q[0] < horizon:
            q.popleft()
        if len(q) < self.policy.chatter_count or rec.chattering:
            return []
        rec.chattering = True
        out = [self._change("chattering", rec, ts, detail={
            "raises": len(q), "window_s": self.policy.chatter_window_s})]
        if self.policy.auto_shelve_chattering and not rec.shelved:
            out.extend(self._shelve(
                rec, SYSTEM, f"chattering: raised {len(q)} times in "
                             f"{self.policy.chatter_window_s:g} s", None,
                self.policy.chatter_shelve_s))
        return out

    def _reevaluate_suppression(self, ts: datetime) -> list[AlarmChange]:
        out: list[AlarmChange] = []
        for rec in list(self._open.values()):
            if rec.detection is None:
                continue
            why = self._suppression(rec.detection)
            if bool(why) == bool(rec.suppressed):
                rec.suppressed = why  # the reason may have changed (another machine down)
                continue
            rec.suppressed = why
            self._persist(rec)
            if why:
                out.append(self._change("suppressed", rec, ts, detail={"why": why}))
            else:
                out.append(self._change("unsuppressed", rec, ts))
        return out

    # ---------------------------------------------------------------- persistence

    def _persist(self, rec: AlarmRecord, conn: Connection | None = None) -> None:
        values = dict(priority=rec.priority, message=rec.message, state=rec.state,
                      acked=rec.acked, acked_by=rec.acked_by, acked_at=rec.acked_at,
                      shelved_until=rec.shelved_until, suppressed=bool(rec.suppressed),
                      value=rec.value, cleared_at=rec.cleared_at)
        stmt = update(_ALARM).where(_ALARM.c.id == rec.id).values(**values)
        if conn is not None:
            conn.execute(stmt)
            return
        with self.store.begin() as c:
            c.execute(stmt)

    @staticmethod
    def _audit(conn: Connection, actor: str, action: str, rec: AlarmRecord, ts: datetime,
               detail: dict[str, Any]) -> None:
        audit.append(conn, actor, action, "alarm", str(rec.id),
                     {"problem_key": rec.problem_key, "priority": rec.priority, **detail}, ts)

    @_locked
    def load(self) -> int:
        """Rebuild the open set after a restart: active or unacked rows of the table.

        The shelving mode comes back from the audit chain (the last shelve entry).
        """
        n = 0
        with self.store.begin() as c:
            rows = c.execute(select(_ALARM).where(
                (_ALARM.c.state == "active") | (_ALARM.c.acked.is_(False)))
                .order_by(_ALARM.c.id)).all()
            for r in rows:
                key = r.source
                eq, line = self._where(key)
                rec = AlarmRecord(
                    r.id, key, r.detector_id, self.position_of(line, eq), r.priority,
                    r.message, ensure_utc(r.raised_at), eq, line, state=r.state,
                    acked=bool(r.acked), acked_by=r.acked_by,
                    acked_at=ensure_utc(r.acked_at) if r.acked_at else None,
                    cleared_at=ensure_utc(r.cleared_at) if r.cleared_at else None,
                    value=r.value, suppressed="suppressed before restart" if r.suppressed
                    else None)
                if r.shelved_until is not None:
                    rec.shelved_until = ensure_utc(r.shelved_until)
                    rec.shelve_mode, rec.shelved_by = self._shelve_mode(c, r.id)
                self._open[key] = rec
                self._by_id[rec.id] = rec
                n += 1
        return n

    @staticmethod
    def _shelve_mode(c: Connection, alarm_id: int) -> tuple[str, str | None]:
        row = c.execute(select(_AUDIT.c.actor, _AUDIT.c.detail)
                        .where(_AUDIT.c.entity == "alarm", _AUDIT.c.entity_id == str(alarm_id),
                               _AUDIT.c.action == "alarm.shelve")
                        .order_by(_AUDIT.c.seq.desc()).limit(1)).first()
        if row is None:
            return "timed", None
        return str(json.loads(row.detail or "{}").get("mode", "timed")), row.actor

    def _where(self, key: str) -> tuple[str | None, str | None]:
        """Equipment and line from a problem key ("limit:A-LATHE1.bearing_temp:hi")."""
        parts = key.split(":")
        subject = parts[1] if len(parts) > 1 else key
        if subject in self.flow:  # a line (material keys)
            return None, subject
        for cand in (subject.split(".")[0], *parts[2:3]):
            if cand in self.line_of:
                return cand, self.line_of[cand]
        return None, None

    def _change(self, event: str, rec: AlarmRecord, ts: datetime, *, actor: str = "",
                detail: dict[str, Any] | None = None) -> AlarmChange:
        return AlarmChange(event, ts, rec.id, rec.problem_key, rec.position, rec.priority,
                           rec.state, rec.acked, rec.message, actor, rec.equipment_id,
                           rec.line_id, detail or {})


def _level(d: Detection) -> str:
    return str(d.evidence.get("level", "")) if d.evidence else ""


def default_suppression(d: Detection, m: AlarmManager) -> str | None:
    """Consequential alarms while equipment is down are suppressed by design.

    Downstream machines starve and upstream ones block when a machine is down; the
    down machine itself reads low pressures and flows and stops in short bursts.
    Those alarms say nothing the down alarm does not already say.
    """
    eq = d.equipment_id
    if not eq or not m.down:
        return None
    problem = d.problem_key.rsplit(":", 1)[-1]
    if eq in m.down and (problem in ("micro_stops", "starved", "blocked")
                         or (d.kind == "limit" and _level(d) in ("lo", "lolo"))):
        return f"{eq} is {m.down[eq]}"
    line = m.line_of.get(eq)
    order = m.flow.get(line or "", [])
    if eq not in order:
        return None
    i = order.index(eq)
    if problem in ("starved", "micro_stops"):
        for up in order[:i]:
            if up in m.down:
                return f"upstream {up} is {m.down[up]}"
    if problem == "blocked":
        for down in order[i + 1:]:
            if down in m.down:
                return f"downstream {down} is {m.down[down]}"
    return None
