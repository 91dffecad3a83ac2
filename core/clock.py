"""One clock for the whole runtime: the wall clock, or the twin's clock at a speed factor.

All stored times are UTC. A ``TwinClock`` runs ``speed`` times faster than the wall
clock from ``start``; it can be re-anchored from the twin's published clock tag so
loopline and the twin agree on plant time. ``FrozenClock`` serves tests and snapshots.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC (SQLite gives them back naive)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """ISO-8601 text (``Z`` allowed) to an aware UTC datetime."""
    return ensure_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


class Clock(Protocol):
    speed: float

    def now(self) -> datetime: ...

    def wall_seconds(self, plant_seconds: float) -> float:
        """How long plant_seconds of plant time take on the wall clock."""
        ...


class WallClock:
    speed = 1.0

    def now(self) -> datetime:
        return utcnow()

    def wall_seconds(self, plant_seconds: float) -> float:
        return plant_seconds


class TwinClock:
    """Plant time = start + speed × wall time elapsed since the anchor."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._anchor_plant = ensure_utc(start)
        self._anchor_mono = time.monotonic()
        self._last_sync: tuple[datetime, float] | None = None

    def now(self) -> datetime:
        with self._lock:
            elapsed = time.monotonic() - self._anchor_mono
            return self._anchor_plant + timedelta(seconds=elapsed * self.speed)

    def sync(self, plant_now: datetime, *, learn_speed: bool = False) -> None:
        """Re-anchor on a clock reading from the twin. ``learn_speed``: the speed is not
        known (a twin someone else started): take it from successive readings."""
        with self._lock:
            now_mono = time.monotonic()
            plant_now = ensure_utc(plant_now)
            if learn_speed and self._last_sync is not None:
                d_wall = now_mono - self._last_sync[1]
                d_plant = (plant_now - self._last_sync[0]).total_seconds()
                if d_wall >= 0.5 and d_plant > 0:
                    self.speed = min(max(d_plant / d_wall, 0.1), 10_000.0)
                    self._last_sync = (plant_now, now_mono)
            elif learn_speed:
                self._last_sync = (plant_now, now_mono)
            self._anchor_plant = plant_now
            self._anchor_mono = now_mono

    def wall_seconds(self, plant_seconds: float) -> float:
        return plant_seconds / self.speed


class FrozenClock:
    """A clock that moves only when told to: tests and snapshots."""

    speed = 1.0

    def __init__(self, at: datetime) -> None:
        self._now = ensure_utc(at)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, at: datetime) -> None:
        self._now = ensure_utc(at)

    def wall_seconds(self, plant_seconds: float) -> float:
        return plant_seconds
