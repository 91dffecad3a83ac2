"""The twin clock follows a plant clock it is told about, and learns its speed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import core.clock as clock_mod
from core.clock import TwinClock

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def test_twin_clock_learns_the_speed_of_a_clock_it_follows(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    wall = [100.0]
    monkeypatch.setattr(clock_mod.time, "monotonic", lambda: wall[0])
    c = TwinClock(T0, 1.0)
    c.sync(T0, learn_speed=True)
    wall[0] += 2.0  # two wall seconds, the plant moved two minutes: speed 60
    c.sync(T0 + timedelta(minutes=2), learn_speed=True)
    assert c.speed == pytest.approx(60.0)
    wall[0] += 1.0
    assert c.now() == T0 + timedelta(minutes=3)
    # a fixed-speed clock (the twin we started) keeps its speed
    f = TwinClock(T0, 600.0)
    f.sync(T0 + timedelta(hours=1))
    assert f.speed == 600.0
