"""The console comes up on the store first and the plant runtime joins when it is ready.

Starting the twin and connecting the drivers takes seconds (≈5 s on a shared machine), so
``loopline tui`` draws the plant from the store at once and starts the runtime in a
worker. Until then the console's clock is the wall clock; ``FollowClock`` then follows
the runtime's (the twin's plant time), so every part of the console that holds the clock
sees the switch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.clock import Clock, WallClock


class FollowClock:
    """A clock that delegates to another, replaceable once (wall clock → plant clock)."""

    def __init__(self, start: Clock | None = None) -> None:
        self.target: Clock = start or WallClock()

    def follow(self, clock: Clock) -> None:
        self.target = clock

    @property
    def speed(self) -> float:  # type: ignore[override]
        return float(getattr(self.target, "speed", 1.0))

    def now(self) -> datetime:
        return self.target.now()


@dataclass
class RuntimeStarted:
    """What the console takes over from a started runtime."""

    clock: Clock
    alarms: Any  # core.alarms.AlarmManager
    notices: list[str] = field(default_factory=list)


RuntimeStarter = Callable[[], RuntimeStarted]  # blocks until the plant is connected; raises


class StoreClock:
    """A store-only console's clock (``--no-runtime``): the wall clock, or the store's
    newest sample when that is ahead — a second console beside a fast twin showed wall
    time, every alarm aged 0 s and no OEE for 'today'. ``refresh()`` re-reads it (off the
    event loop, with each snapshot)."""

    speed = 1.0

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._newest: datetime | None = None
        self.refresh()

    def refresh(self) -> None:
        from core.views import store_plant_now

        with contextlib.suppress(Exception):  # an unreadable store shows in the snapshot
            self._newest = store_plant_now(self.engine)

    def now(self) -> datetime:
        wall = WallClock().now()
        return max(wall, self._newest) if self._newest is not None else wall
