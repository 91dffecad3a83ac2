"""Stale tags (silent for ``stale_after_s`` of plant time) and runs of Bad data.

Most drivers report by exception (OPC UA subscriptions send changes only; the
driver's keep-alives cover the rest), so silence alone proves nothing: a bearing
temperature rounded to 0.001 °C may hold still for a minute. A tag is therefore
checked only when silence is news:

- it has been heard from, and its usual interval between updates (an EWMA learnt
  while its machine runs) is at most a tenth of its limit, so a whole silent window
  is an unlikely accident (a stuck sensor, a dead channel); and
- its machine is running (when the machine's state tag is known), counting from
  the later of the last update and the start of running.

A tag never heard from since ``expect(..., since)`` is stale after its limit. Checks
run in ``tick(now)``: a silent tag by definition sends nothing. A Bad or Uncertain
run is a problem once it has lasted ``bad_after_s`` (a single timeout is not), and
ends with the next Good sample. Limits never see those samples, so this is where an
unknown value becomes visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from core.detect.events import Detection, Priority, context_ids
from core.detect.tags import TagInfo
from core.samples import Context, ContextSample, Quality

_INF = float("inf")


MIN_UPDATES = 20  # updates seen before a tag's usual interval is trusted
SILENCE_FACTOR = 10.0  # a limit must span this many usual intervals to be checked
RUNNING = 1


class _Tag:
    __slots__ = ("bad_active", "bad_quality", "bad_since", "ctx", "heard", "info", "interval",
                 "is_state", "last", "limit", "reason", "stale", "updates")

    def __init__(self, info: TagInfo, limit: float, since: datetime | None) -> None:
        self.info = info
        self.limit = limit
        self.last = since
        self.stale = False
        self.heard = False  # any sample at all
        self.updates = 0  # samples while its machine ran (the interval is learnt from these)
        self.interval = 0.0  # EWMA of seconds between updates while running
        self.is_state = info.kind == "state" and info.name == "state"
        self.bad_since: datetime | None = None
        self.bad_active = False
        self.bad_quality = Quality.BAD
        self.reason: str | None = None
        self.ctx: Context | None = None


class StaleDetector:
    kind = "stale"

    def __init__(self, detector_id: str, priority: Priority = "low", *,
                 stale_after_s: float = 30.0, bad_after_s: float | None = None,
                 check_stale: bool = True) -> None:
        self.detector_id = detector_id
        self.priority: Priority = priority
        self.stale_after_s = float(stale_after_s)
        self.bad_after_s = float(stale_after_s if bad_after_s is None else bad_after_s)
        self.check_stale = check_stale
        self._tags: dict[str, _Tag] = {}
        self._bad: set[str] = set()  # tags inside a Bad run not yet reported
        self._running_since: dict[str, datetime | None] = {}  # equipment -> None: stopped

    def add_tag(self, info: TagInfo, stale_after_s: float | None = None, *,
                check_stale: bool = True) -> bool:
        """Watch a tag for Bad runs, and for silence unless ``check_stale`` is off.

        Tags that publish only on change (context, state, setpoints) are silent
        when nothing happens, so only noisy analog signals are checked for staleness.
        """
        limit = (stale_after_s or self.stale_after_s) if check_stale else _INF
        self._tags[info.tag_id] = _Tag(info, limit, None)
        return True

    def expect(self, tag_ids: Iterable[str], since: datetime) -> None:
        """Start the stale clock for tags that have not reported yet."""
        for t in tag_ids:
            st = self._tags.get(t)
            if st is not None and st.last is None:
                st.last = since

    def feed(self, cs: ContextSample) -> list[Detection] | None:
        st = self._tags.get(cs.tag_id)
        if st is None:
            return None
        ts = cs.source_ts
        prev = st.last
        st.last = ts
        st.heard = True
        if st.is_state:
            self._note_state(st.info.equipment_id, cs.value, ts)
        elif prev is not None and st.limit != _INF:
            eq = st.info.equipment_id
            if eq is None or self._running_since.get(eq, ts) is not None:
                dt = min((ts - prev).total_seconds(), st.limit)
                st.interval = dt if st.updates == 0 else 0.9 * st.interval + 0.1 * dt
                st.updates += 1
        out: list[Detection] | None = None
        if st.stale:
            st.stale = False
            out = [self._det(st, "stale", ts, cleared=True)]
        if cs.quality is Quality.GOOD:
            if st.bad_since is not None:
                if st.bad_active:
                    (out := out or []).append(self._det(st, "bad_data", ts, cleared=True))
                st.bad_since, st.bad_active = None, False
                self._bad.discard(cs.tag_id)
            return out
        st.ctx, st.reason = cs.ctx, cs.reason
        if st.bad_since is None:
            st.bad_since, st.bad_quality = ts, cs.quality
            self._bad.add(cs.tag_id)
        elif cs.quality > st.bad_quality:
            st.bad_quality = cs.quality
        if not st.bad_active and (ts - st.bad_since).total_seconds() >= self.bad_after_s:
            st.bad_active = True
            self._bad.discard(cs.tag_id)
            (out := out or []).append(self._det(st, "bad_data", ts, cleared=False))
        return out

    def _note_state(self, equipment_id: str | None, value: object, ts: datetime) -> None:
        if equipment_id is None or type(value) is not int:
            return
        running = value == RUNNING
        was = self._running_since.get(equipment_id)
        if running and was is None:
            self._running_since[equipment_id] = ts
        elif not running:
            self._running_since[equipment_id] = None

    def watched(self, tag_id: str) -> bool:
        """Whether silence of this tag would be reported now (its interval is known)."""
        st = self._tags.get(tag_id)
        return st is not None and st.limit != _INF and (
            st.updates >= MIN_UPDATES and st.interval * SILENCE_FACTOR <= st.limit)

    def tick(self, now: datetime) -> list[Detection]:
        out: list[Detection] = []
        if self.check_stale:
            running = self._running_since
            for st in self._tags.values():
                if st.stale or st.last is None or st.limit == _INF or st.bad_since is not None:
                    continue  # a Bad run is reported as such, not twice as silence too
                since = st.last
                if st.heard:  # only a tag that usually moves, and only while running
                    if st.updates < MIN_UPDATES or st.interval * SILENCE_FACTOR > st.limit:
                        continue
                    eq = st.info.equipment_id
                    if eq is not None and eq in running:
                        start = running[eq]
                        if start is None:
                            continue
                        since = max(since, start)
                if (now - since).total_seconds() > st.limit:
                    st.stale = True
                    out.append(self._det(st, "stale", now, cleared=False))
        for tag_id in list(self._bad):
            st = self._tags[tag_id]
            if st.bad_since is not None and not st.bad_active and \
                    (now - st.bad_since).total_seconds() >= self.bad_after_s:
                st.bad_active = True
                self._bad.discard(tag_id)
                out.append(self._det(st, "bad_data", now, cleared=False))
        return out

    def _det(self, st: _Tag, what: str, ts: datetime, *, cleared: bool) -> Detection:
        info = st.info
        if what == "stale":
            onset = st.last or ts
            summary = (f"{info.label} updating again" if cleared else
                       f"{info.label} stale: no update for {(ts - onset).total_seconds():.0f} s "
                       f"(limit {st.limit:.0f} s)")
            quality = Quality.UNCERTAIN
            evidence: dict[str, object] = {"stale_after_s": st.limit, "quality": "uncertain",
                                           "last_update": onset.isoformat()}
            if not cleared:
                onset = ts  # the problem began when the limit ran out
        else:
            onset = st.bad_since or ts
            q = st.bad_quality.name.capitalize()
            summary = (f"{info.label} Good again after {(ts - onset).total_seconds():.0f} s "
                       f"of {q} data" if cleared else
                       f"{info.label} {q} for {(ts - onset).total_seconds():.0f} s"
                       + (f" ({st.reason})" if st.reason else ""))
            quality = st.bad_quality
            evidence = {"bad_after_s": self.bad_after_s, "reason": st.reason,
                        "quality": st.bad_quality.name.lower()}
        return Detection(
            kind="stale" if what == "stale" else "bad_data", detector_id=self.detector_id,
            problem_key=f"{what}:{info.tag_id}", priority=self.priority, onset=onset, ts=ts,
            summary=summary, equipment_id=info.equipment_id, line_id=info.line_id,
            tag_id=info.tag_id, context=context_ids(st.ctx), evidence=evidence,
            cleared=cleared, quality=quality,
        )
