"""One line of the twin published over Sparkplug B (``python -m sim --sparkplug HOST:PORT``).

The line's machines become devices of one edge node ``twin-<line>`` in group
``loopline``; their metrics are the line's config tags by name, typed from the tags'
data types, stamped with twin time. Each scheduler tick publishes a DDATA per
machine with the values that changed (Sparkplug reports by exception). A machine
whose comms are dropped by a fault gets a DDEATH and a DBIRTH when they return.
DCMD writes go to the plant as setpoint writes or commands, on the twin's loop;
the plant's answer shows in the next DDATA (refused: the value simply stays).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

from sim.plant import Plant
from sim.sparkplug import EdgeNode
from sim.vision import as_json
from sparkplug_b import DataType

_log = logging.getLogger("sim.sparkplug")
GROUP = "loopline"
_TYPES = {"bool": DataType.Boolean, "int16": DataType.Int16, "uint16": DataType.UInt16,
          "int32": DataType.Int32, "uint32": DataType.UInt32, "int64": DataType.Int64,
          "float32": DataType.Float, "float64": DataType.Double, "string": DataType.String}
_ID_NUM = re.compile(r"(\d+)$")


def _typed(data_type: str, v: Any) -> Any:
    """A snapshot value as its tag's type (ids like "L-00501" as their number)."""
    if data_type == "string":  # a vision station's record as its JSON text
        return "" if v is None else as_json(v) if isinstance(v, dict) else str(v)
    if data_type == "bool":
        return bool(v)
    if isinstance(v, str):
        m = _ID_NUM.search(v)
        v = int(m.group(1)) if m else 0
    if data_type in ("float32", "float64"):
        f = float(v or 0.0)
        return f if math.isfinite(f) else 0.0
    return round(float(v or 0))


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--sparkplug {text!r}: use HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


class SparkplugLine:
    """The edge node for one line; ``publish()`` after each twin step."""

    def __init__(self, plant: Plant, host: str, port: int, line_id: str) -> None:
        self.plant = plant
        self.line_id = line_id
        loaded = plant.loaded
        if line_id not in {ln.id for ln in loaded.config.lines}:
            known = ", ".join(ln.id for ln in loaded.config.lines)
            raise ValueError(f"--sparkplug-line {line_id!r}: no such line (lines: {known})")
        self.types: dict[str, dict[str, str]] = {}
        for t in loaded.tags:
            if t.line_id == line_id and t.equipment_id in plant.machines:
                self.types.setdefault(t.equipment_id, {})[t.name] = t.spec.data_type
        self.kinds = {(t.equipment_id, t.name): t.spec.kind for t in loaded.tags
                      if t.line_id == line_id}
        devices = {eq: {n: (_TYPES[dt], _typed(dt, snap.get(n)))
                        for n, dt in names.items()}
                   for eq, names in self.types.items()
                   for snap in [plant.machines[eq].snapshot()]}
        self.last = {eq: {n: v for n, (_, v) in ms.items()} for eq, ms in devices.items()}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.node = EdgeNode(host, port, GROUP, f"twin-{line_id}", devices,
                             on_command=self._on_command, clock_ms=self._ms)
        self.messages = 0

    def _ms(self) -> int:
        return int(self.plant.now().timestamp() * 1000)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.node.connect)
        except (OSError, TimeoutError) as e:
            raise ValueError(f"--sparkplug {self.node.host}:{self.node.port}: {e}") from None

    def stop(self) -> None:
        try:
            self.node.disconnect()
        except Exception as e:  # the broker may be gone already
            _log.info("sparkplug: disconnect: %s", e)

    def publish(self) -> int:
        """DDATA of what changed since the last tick; deaths and births for comms."""
        t, n = self.plant.t, 0
        for eq, names in self.types.items():
            m = self.plant.machines[eq]
            dead = eq in self.node.dead_devices
            if not m.comms_ok(t):
                if not dead:
                    self.node.device_death(eq)
                    n += 1
                continue
            snap = m.snapshot()
            cur = {k: _typed(dt, snap.get(k)) for k, dt in names.items()}
            if dead:
                for k, v in cur.items():
                    self.node.devices[eq][k].value = v
                self.node.device_birth(eq)
                self.last[eq] = cur
                n += 1
                continue
            prev = self.last[eq]
            changed = {k: v for k, v in cur.items() if prev.get(k) != v}
            if changed:
                self.node.publish(eq, changed)
                prev.update(changed)
                n += 1
        self.messages += n
        return n

    def _on_command(self, device: str, name: str, value: Any) -> bool:
        """From paho's thread: apply on the twin's loop; the next DDATA is the answer."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._apply, device, name, value)
        return False

    def _apply(self, device: str, name: str, value: Any) -> None:
        kind = self.kinds.get((device, name))
        if kind == "setpoint":
            err = self.plant.write_setpoint(device, name, float(value))
        elif kind == "command":
            err = self.plant.command(device, int(value))
        else:
            err = "not writable"
        if err is not None:
            _log.info("sparkplug: refused DCMD %s.%s=%s: %s", device, name, value, err)
