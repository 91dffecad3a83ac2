"""Shift calendar: which shift a plant instant falls in, from "HH:MM" in site time.

Shift times are local plant time (the site's timezone) and may cross midnight
("22:00"-"06:00"). Lookups cache the current window so the hot path is a comparison
and a tuple read; a new window is computed only when an instant leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import select

from core.store.db import Store
from core.store.models import Shift, Site


@dataclass(frozen=True, slots=True)
class ShiftDef:
    id: str
    start: time  # local
    end: time  # local; <= start means the shift ends the next day
    crew: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShiftWindow:
    shift_id: str
    start: datetime  # UTC
    end: datetime  # UTC
    crew: tuple[str, ...]


def parse_hhmm(text: str) -> time:
    h, m = text.strip().split(":")
    return time(int(h), int(m))


class ShiftCalendar:
    """Maps UTC instants to shift windows; instants outside every shift map to None."""

    def __init__(self, shifts: list[ShiftDef], timezone: str = "UTC") -> None:
        self.shifts = list(shifts)
        self.tz = ZoneInfo(timezone) if timezone and timezone != "UTC" else UTC
        self._cached: ShiftWindow | None = None

    def _windows_around(self, ts: datetime) -> list[ShiftWindow]:
        local_day = ts.astimezone(self.tz).date()
        out = []
        for day in (local_day - timedelta(days=1), local_day):
            for s in self.shifts:
                start = datetime.combine(day, s.start, self.tz)
                end_day = day if s.end > s.start else day + timedelta(days=1)
                end = datetime.combine(end_day, s.end, self.tz)
                out.append(ShiftWindow(s.id, start.astimezone(UTC), end.astimezone(UTC),
                                       s.crew))
        return out

    def window_at(self, ts: datetime) -> ShiftWindow | None:
        c = self._cached
        if c is not None and c.start <= ts < c.end:
            return c
        for w in self._windows_around(ts):
            if w.start <= ts < w.end:
                self._cached = w
                return w
        return None

    def windows(self, start: datetime, end: datetime) -> list[ShiftWindow]:
        """Every shift window overlapping [start, end), clipped to it, in time order."""
        out: list[ShiftWindow] = []
        day = start - timedelta(days=1)
        seen: set[tuple[str, datetime]] = set()
        while day < end + timedelta(days=1):
            for w in self._windows_around(day):
                key = (w.shift_id, w.start)
                if key in seen or w.end <= start or w.start >= end:
                    continue
                seen.add(key)
                out.append(ShiftWindow(w.shift_id, max(w.start, start), min(w.end, end),
                                       w.crew))
            day += timedelta(days=1)
        return sorted(out, key=lambda w: w.start)


def calendar_from_store(store: Store) -> ShiftCalendar:
    """The shift calendar from the Shift table and the site's timezone."""
    with store.session() as s:
        rows = s.exec(select(Shift)).all()
        site = s.exec(select(Site)).first()
    defs = [ShiftDef(r.id, parse_hhmm(r.start), parse_hhmm(r.end),
                     tuple(c for c in r.crew.split(",") if c)) for r in rows]
    return ShiftCalendar(defs, site.timezone if site else "UTC")
