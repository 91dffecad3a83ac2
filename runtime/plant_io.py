"""The engine's hands on the plant, over the drivers: commands and setpoint writes.

The outbox executor runs in its own thread; drivers live on the runtime's event loop.
These adapters are synchronous for the executor and hand each write to the loop with
``run_coroutine_threadsafe``, waiting for the driver's read-back. A device that refuses
(an exception code, BadOutOfRange) makes the action fail with the device's reason; a
driver that is not connected is a transient error the executor retries.

Commands follow the documented contract of the plant's command tags (``kind =
"command"`` in the config): a JSON string on OPC UA equipment, a numeric code on
Modbus equipment (sim/README.md lists both). Nothing here knows the twin.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from core.config import LoadedConfig, ResolvedTag
from core.engine.executors.base import ActionFailed, TransientError
from core.samples import Quality, Sample
from drivers.base import ConnState, Driver, WriteResult

# Modbus command codes (register "command", sim/README.md's map; the same on real PLCs
# that follow the plant's command convention).
MODBUS_WO_CODES = {"bearing": 1, "tool": 2, "heater": 3, "clog": 4}
MODBUS_HOLD, MODBUS_RELEASE = 10, 11


class DriverIO:
    """Writes to tags through whichever driver owns them, from any thread."""

    def __init__(self, loaded: LoadedConfig, drivers: Mapping[str, Driver],
                 loop: asyncio.AbstractEventLoop, timeout_s: float = 10.0,
                 connect_wait_s: float = 30.0) -> None:
        self.tags: dict[str, ResolvedTag] = {t.id: t for t in loaded.tags}
        self.drivers, self.loop, self.timeout_s = drivers, loop, timeout_s
        self.connect_wait_s = connect_wait_s
        self._last: dict[str, Any] = {}
        self._writable = {t.id for t in loaded.tags if t.spec.writable}
        self._lock = threading.Lock()

    def observe(self, samples: Iterable[Sample]) -> None:
        """The latest Good value of each writable tag, from the runtime's sink: what
        ``read`` answers before a write (only setpoints are ever read back)."""
        writable, last = self._writable, self._last
        for s in samples:
            if s.tag_id in writable and s.quality == Quality.GOOD:
                last[s.tag_id] = s.value

    def command_tag(self, equipment_id: str) -> ResolvedTag | None:
        for t in self.tags.values():
            if t.equipment_id == equipment_id and t.spec.kind == "command":
                return t
        return None

    def write_tag(self, tag_id: str, value: Any) -> WriteResult:
        tag = self.tags.get(tag_id)
        if tag is None:
            raise ActionFailed(f"no tag {tag_id!r} in the config; nothing written")
        drv = self.drivers.get(tag.driver_id)
        if drv is None:
            raise ActionFailed(f"{tag_id}: driver {tag.driver_id!r} is not running")
        self._wait_connected(drv, tag_id)
        fut = asyncio.run_coroutine_threadsafe(drv.write(tag_id, value), self.loop)
        try:
            res = fut.result(self.timeout_s)
        except TimeoutError as e:
            fut.cancel()
            raise TransientError(f"{tag_id}: no answer within {self.timeout_s:g} s") from e
        if not res.ok:
            if res.mismatch:
                raise ActionFailed(f"read-back mismatch on {tag_id}: wrote {value!r}, "
                                   f"device reports {res.read_back!r}")
            raise ActionFailed(f"{tag_id}: the device refused the write: {res.error}")
        with self._lock:
            self._last[tag_id] = res.read_back
        return res

    def _wait_connected(self, drv: Driver, tag_id: str) -> None:
        """An action approved right after a start (or during a reconnect) waits for its
        driver within ``connect_wait_s`` instead of spending its attempts in a second;
        a driver that is down (stopped, or a config problem) is not waited for."""
        deadline = time.monotonic() + self.connect_wait_s
        while (st := drv.state.state) != ConnState.CONNECTED:
            if st == ConnState.DOWN or time.monotonic() >= deadline:
                waited = "" if st == ConnState.DOWN else \
                    f" (waited {self.connect_wait_s:g} s for it)"
                raise TransientError(f"{tag_id}: driver {drv.id} is {st}{waited}")
            time.sleep(0.05)

    # DeviceWriter (setpoints) --------------------------------------------------------

    def write(self, tag_id: str, value: float) -> None:
        self.write_tag(tag_id, value)

    def read(self, tag_id: str) -> Any:
        with self._lock:
            return self._last.get(tag_id)


class DriverPlant:
    """``PlantCommands`` over the equipment's command tags."""

    def __init__(self, io: DriverIO, loaded: LoadedConfig) -> None:
        self.io = io
        self.first_of_line: dict[str, str] = {}  # where a line's replenish request goes
        for ln in loaded.config.lines:
            cands = [(eq.id, io.command_tag(eq.id)) for eq in ln.equipment]
            cands = [(e, t) for e, t in cands if t is not None]
            text = [e for e, t in cands if t.spec.data_type == "string"]  # type: ignore[union-attr]
            if text or cands:
                self.first_of_line[ln.id] = (text or [cands[0][0]])[0]

    def _send(self, equipment_id: str, payload: dict[str, Any], code: int | None) -> dict:
        tag = self.io.command_tag(equipment_id)
        if tag is None:
            raise ActionFailed(f"{equipment_id} has no command tag in the config; "
                               "the action must be carried out by hand")
        if tag.spec.data_type == "string":
            self.io.write_tag(tag.id, json.dumps(payload, sort_keys=True))
        else:
            if code is None:
                raise ActionFailed(f"{equipment_id} ({tag.driver_id}) has no command code for "
                                   f"{payload['cmd']}; carry it out by hand")
            self.io.write_tag(tag.id, code)
        return {"sent_to": tag.id, "command": payload}

    def hold_lot(self, lot_id: str, equipment_id: str | None, key: str) -> dict:
        if not equipment_id:
            return {"note": f"{lot_id} is on no machine; held in the store only"}
        return self._send(equipment_id, {"cmd": "hold_lot", "lot": lot_id, "id": key},
                          MODBUS_HOLD)

    def release_lot(self, lot_id: str, equipment_id: str | None, disposition: str,
                    key: str) -> dict:
        if not equipment_id:
            return {"note": f"{lot_id} is on no machine; released in the store only"}
        return self._send(equipment_id, {"cmd": "release_lot", "lot": lot_id, "id": key},
                          MODBUS_RELEASE)

    def complete_work_order(self, equipment_id: str, work_order_id: str, fault_mode: str,
                            key: str) -> dict:
        return self._send(equipment_id, {"cmd": "complete_wo", "fault": fault_mode,
                                         "wo": work_order_id},
                          MODBUS_WO_CODES.get(fault_mode))

    def send_command(self, equipment_id: str, command: str, args: dict[str, Any],
                     key: str) -> dict:
        """A requested machine command: JSON on a text command tag, a code on a numeric one
        (``--arg code=N`` or the convention's code for hold/release/complete_wo)."""
        payload: dict[str, Any] = {"cmd": command, **args, "id": key}
        code: int | None = None
        if "code" in args:
            try:
                code = int(args["code"])
            except (TypeError, ValueError):
                raise ActionFailed(f"command code {args['code']!r} is not a number") from None
            payload.pop("code")
        elif command == "hold_lot":
            code = MODBUS_HOLD
        elif command == "release_lot":
            code = MODBUS_RELEASE
        elif command == "complete_wo":
            code = MODBUS_WO_CODES.get(str(args.get("fault")))
        return self._send(equipment_id, payload, code)

    def replenish(self, line_id: str, material_id: str, batch_id: str | None,
                  key: str) -> dict:
        eq = self.first_of_line.get(line_id)
        if eq is None:
            raise ActionFailed(f"line {line_id} has no command tag; request the material "
                               "from the warehouse by hand")
        payload: dict[str, Any] = {"cmd": "replenish", "material": material_id, "id": key}
        if batch_id:
            payload["batch"] = batch_id
        return self._send(eq, payload, None)
