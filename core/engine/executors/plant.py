"""Plant-side commands (tell the line to hold a lot, that a work order is done).

The runtime wires ``PlantCommands`` to the drivers (the twin's command tags); every
call carries the idempotency key and must be harmless when repeated, because after a
crash the adapter re-sends the command for an effect already in the store.
``RecordingPlant`` is the in-process stand-in for tests and dry runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


class PlantCommands(Protocol):
    """Each method may return a value or an awaitable (a driver write); a refusal raises."""

    def hold_lot(self, lot_id: str, equipment_id: str | None, key: str) -> Any: ...

    def release_lot(self, lot_id: str, equipment_id: str | None, disposition: str,
                    key: str) -> Any: ...

    def complete_work_order(self, equipment_id: str, work_order_id: str, fault_mode: str,
                            key: str) -> Any: ...

    def replenish(self, line_id: str, material_id: str, batch_id: str | None,
                  key: str) -> Any: ...

    def send_command(self, equipment_id: str, command: str, args: dict[str, Any],
                     key: str) -> Any: ...


@dataclass
class RecordingPlant:
    """Records commands; identical (command, args, key) repeats are kept once, like a PLC."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    repeats: int = 0
    _seen: set[tuple[str, tuple[Any, ...]]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, name: str, *args: Any) -> None:
        with self._lock:
            if (name, args) in self._seen:
                self.repeats += 1
                return
            self._seen.add((name, args))
            self.calls.append((name, args))

    def hold_lot(self, lot_id: str, equipment_id: str | None, key: str) -> None:
        self._record("hold_lot", lot_id, equipment_id, key)

    def release_lot(self, lot_id: str, equipment_id: str | None, disposition: str,
                    key: str) -> None:
        self._record("release_lot", lot_id, equipment_id, disposition, key)

    def complete_work_order(self, equipment_id: str, work_order_id: str, fault_mode: str,
                            key: str) -> None:
        self._record("complete_work_order", equipment_id, work_order_id, fault_mode, key)

    def replenish(self, line_id: str, material_id: str, batch_id: str | None,
                  key: str) -> None:
        self._record("replenish", line_id, material_id, batch_id, key)

    def send_command(self, equipment_id: str, command: str, args: dict[str, Any],
                     key: str) -> None:
        self._record("send_command", equipment_id, command,
                     tuple(sorted((k, str(v)) for k, v in args.items())), key)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]
