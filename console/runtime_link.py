"""The console comes up on the store first and the plant runtime joins when it is ready.

Starting the twin and connecting the drivers takes seconds (≈5 s on a shared machine), so
``loopline tui`` draws the plant from the store at once and starts the runtime in a
worker. Until then the console's clock is the wall clock; ``FollowClock`` then follows
the runtime's (the twin's plant time), so every part of the console that holds the clock
sees the switch.
"""

from __future__ import annotations

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
