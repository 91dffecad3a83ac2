"""Device-write adapter: interlock against recipe limits, write, read back.

The interlock reads the limits from the store at execution time (not from the
recommendation's parameters), so a stale or tampered action cannot push a value out of
the recipe's range. Before writing, the current value is read: after a crash between
write and 'done', the device is already at the value and nothing is written twice.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Protocol

from core.engine.executors.base import ActionFailed, ActionView, TransientError, resolve
from core.store.db import Store, guard
from core.store.models import RecipeSetpoint


class DeviceWriter(Protocol):
    """Sync or async: ``write``/``read`` may return values or awaitables."""

    def write(self, tag_id: str, value: float) -> Any: ...

    def read(self, tag_id: str) -> Any: ...


def same(a: Any, b: float, rel: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_tol)
    except (TypeError, ValueError):
        return False


class DeviceAdapter:
    kinds = ("write_setpoint",)

    def __init__(self, store: Store, writer: DeviceWriter,
                 loop: asyncio.AbstractEventLoop | None = None, tolerance: float = 1e-6) -> None:
        self.store, self.writer, self.loop, self.tol = store, writer, loop, tolerance

    def limits(self, p: dict[str, Any]) -> RecipeSetpoint:
        sp_id = f"{p.get('recipe_id')}.{p.get('equipment_type')}.{p.get('name')}"
        with guard(self.store), self.store.session() as s:
            row = s.get(RecipeSetpoint, sp_id)
        if row is None:
            raise ActionFailed(f"interlock: no recipe limits for {sp_id}; not written")
        return row

    def execute(self, a: ActionView) -> dict[str, Any]:
        p = a.params
        tag = str(p.get("tag_id") or "")
        try:
            value = float(p["value"])
        except (KeyError, TypeError, ValueError):
            raise ActionFailed("no numeric value to write") from None
        lim = self.limits(p)
        if not math.isfinite(value) or not (lim.lo <= value <= lim.hi):
            raise ActionFailed(f"interlock: {tag} = {value:g} is outside the recipe limits "
                               f"{lim.lo:g}..{lim.hi:g} {lim.unit}; not written")
        try:
            before = resolve(self.writer.read(tag), self.loop)
            if same(before, value, abs_tol=self.tol):
                return {"tag_id": tag, "value": value, "written": False, "read_back": before,
                        "note": "device already at the value (earlier attempt wrote it)"}
            resolve(self.writer.write(tag, value), self.loop)
            back = resolve(self.writer.read(tag), self.loop)
        except (ActionFailed, TransientError):
            raise
        except (OSError, TimeoutError, ConnectionError) as e:
            raise TransientError(f"{tag}: {e}") from e
        if not same(back, value, abs_tol=self.tol):
            raise ActionFailed(f"read-back mismatch on {tag}: wrote {value:g}, device reports "
                               f"{back}")
        return {"tag_id": tag, "value": value, "written": True, "previous": before,
                "read_back": back}


class MemoryDevice:
    """An in-process device: a dict of values and a log of writes (tests, dry runs)."""

    def __init__(self, values: dict[str, float] | None = None,
                 stuck: dict[str, float] | None = None) -> None:
        self.values = dict(values or {})
        self.stuck = dict(stuck or {})  # tags whose read-back ignores writes
        self.writes: list[tuple[str, float]] = []

    def write(self, tag_id: str, value: float) -> None:
        self.writes.append((tag_id, value))
        self.values[tag_id] = value

    def read(self, tag_id: str) -> float | None:
        if tag_id in self.stuck:
            return self.stuck[tag_id]
        return self.values.get(tag_id)
