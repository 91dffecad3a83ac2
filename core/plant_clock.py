"""Plant time for processes beside the runtime (the CLI, a second console).

The runtime may run the twin at 60× or follow a plant's clock, so a command in another
shell stamping its acts (a dispatch start, a request) with the wall clock would put them
hours away from the samples they belong to. The runtime publishes its clock in the
store's meta on every upkeep (plant time, wall time, speed); ``plant_clock`` turns a
fresh reading into a clock that runs on from there, else the wall clock (no runtime).
"""

from __future__ import annotations

import json
from datetime import timedelta

from core.clock import Clock, TwinClock, WallClock, ensure_utc, parse_utc, utcnow
from core.store.db import Store

PLANT_CLOCK_KEY = "runtime.plant_clock"


def publish_plant_clock(store: Store, clock: Clock) -> None:
    """Write the runtime's plant time beside the wall time (one meta row)."""
    speed = float(getattr(clock, "speed", 1.0))
    store.set_meta(PLANT_CLOCK_KEY, json.dumps({
        "plant": ensure_utc(clock.now()).isoformat(), "wall": utcnow().isoformat(),
        "speed": speed}))


def plant_clock(store: Store, max_age_s: float = 120.0) -> Clock:
    """The runtime's plant time running on, if it published one lately; else wall time."""
    raw = store.get_meta(PLANT_CLOCK_KEY)
    if not raw:
        return WallClock()
    try:
        d = json.loads(raw)
        plant, wall, speed = parse_utc(d["plant"]), parse_utc(d["wall"]), float(d["speed"])
    except (ValueError, KeyError, TypeError):
        return WallClock()
    age = (utcnow() - wall).total_seconds()
    if age < 0 or age > max_age_s or speed <= 0:
        return WallClock()
    return TwinClock(plant + timedelta(seconds=age * speed), speed)
