"""Each driver's connection state as the runtime reports it, mapped onto equipment.

The runtime publishes a ``ConnectionEvent`` when a driver's state changes and its
counters (``StatsEvent.detail["drivers"]``) every few seconds; the console may have
joined after the first change, so both feed the same table. Drivers stamp ``since``
with the wall clock while the console shows plant time; the outage start is turned
into plant time as ``event.ts - speed × (wall at publish - since)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import parse_utc
from core.config import LoadedConfig
from core.events import ConnectionEvent, EngineEvent, StatsEvent

LOST = frozenset({"down", "reconnecting"})  # no data can arrive: the Data column says so
_RANK = {"down": 3, "reconnecting": 2, "connecting": 1, "connected": 0}


@dataclass(frozen=True)
class DriverState:
    driver_id: str
    state: str  # connecting | connected | reconnecting | down
    since: datetime  # plant time
    error: str | None = None

    @property
    def lost(self) -> bool:
        return self.state in LOST


def equipment_drivers(loaded: LoadedConfig) -> dict[str, tuple[str, ...]]:
    """Equipment id -> the drivers its tags are read through (from the resolved tags)."""
    out: dict[str, set[str]] = {}
    for t in loaded.tags:
        if t.equipment_id:
            out.setdefault(t.equipment_id, set()).add(t.driver_id)
    return {eq: tuple(sorted(ds)) for eq, ds in out.items()}


class DriverStates:
    """What the console knows of each driver; updated on the UI thread only."""

    def __init__(self, by_equipment: Mapping[str, tuple[str, ...]], speed: float = 1.0) -> None:
        self.by_equipment = dict(by_equipment)
        self.speed = speed
        self.states: dict[str, DriverState] = {}

    def update(self, event: EngineEvent, wall: datetime | None) -> bool:
        """Take a connection or stats event (``wall``: when it was published); True if
        anything shown changed."""
        if isinstance(event, ConnectionEvent):
            return self._set(event.driver_id, event.state, event.since, event.error,
                             event.ts, wall)
        if isinstance(event, StatsEvent):
            drivers = event.detail.get("drivers")
            changed = False
            if isinstance(drivers, Mapping):
                for did, d in drivers.items():
                    if isinstance(d, Mapping) and d.get("state"):
                        changed |= self._set(str(did), str(d["state"]), d.get("since"),
                                             d.get("last_error"), event.ts, wall)
            return changed
        return False

    def _set(self, driver_id: str, state: str, since: object, error: object,
             ts: datetime, wall: datetime | None) -> bool:
        old = self.states.get(driver_id)
        err = str(error) if error else None
        if old is not None and old.state == state:
            if old.error == err:
                return False
            self.states[driver_id] = DriverState(driver_id, state, old.since, err)
            return True
        start = ts
        if isinstance(since, str) and wall is not None:
            try:
                lag = (wall - parse_utc(since)).total_seconds()
                start = ts - timedelta(seconds=max(0.0, lag) * self.speed)
            except ValueError:
                pass
        self.states[driver_id] = DriverState(driver_id, state, start, err)
        return True

    def for_equipment(self, equipment_id: str) -> DriverState | None:
        """The worst known state among the equipment's drivers (None: nothing known)."""
        known = [self.states[d] for d in self.by_equipment.get(equipment_id, ())
                 if d in self.states]
        if not known:
            return None
        return max(known, key=lambda s: (_RANK.get(s.state, 1), -s.since.timestamp()))

    def all(self) -> Iterable[DriverState]:
        return (self.states[k] for k in sorted(self.states))
