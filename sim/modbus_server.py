"""Line C on Modbus TCP: holding registers laid out exactly as the config declares.

Built on pymodbus' current server API (``SimDevice``/``SimData`` with an async
``action`` hook, not the deprecated datastore contexts). Only declared registers
exist; any other address answers ILLEGAL_ADDRESS. 32-bit values span two registers
in the tag's word order (big = high word first), scaled integers are
``raw = round((value - offset) / scale)``. Writes: setpoints (float32, both registers
in one write, function 16) outside the recipe limits and unknown command codes get
ILLEGAL_VALUE; while an equipment's comms are dropped its registers answer
GATEWAY_NO_RESPONSE (0x0B).
"""

from __future__ import annotations

import logging
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

from sim.plant import Machine, Plant
from sim.vision import as_registers

_log = logging.getLogger("sim.modbus")
WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4,
         "float32": 2, "float64": 4, "string": 0}
_ADDR = re.compile(r"^hr:(\d+)(?:\.(\d+))?$")
_ID_NUM = re.compile(r"(\d+)$")


@dataclass
class Reg:
    machine: Machine
    name: str
    address: int
    bit: int | None
    data_type: str
    scale: float
    offset: float
    word_order: str
    kind: str
    writable: bool
    classes: tuple[str, ...] = ()  # a vision tag's defect classes (bit i, register 3 + i)

    @property
    def width(self) -> int:
        if self.kind == "vision":
            return 3 + len(self.classes)
        return 1 if self.bit is not None else WIDTH[self.data_type]


def encode(reg: Reg, value: Any) -> list[int]:
    """Engineering value -> registers."""
    dt = reg.data_type
    if dt in ("float32", "float64"):
        raw = struct.pack(">f" if dt == "float32" else ">d", float(value))
    else:
        if isinstance(value, str):
            m = _ID_NUM.search(value)
            value = int(m.group(1)) if m else 0
        n = round((float(value) - reg.offset) / reg.scale) if reg.scale else int(value)
        fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
               "bool": ">H"}[dt]
        lo, hi = {"int16": (-32768, 32767), "uint16": (0, 65535), "bool": (0, 1),
                  "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
                  "int64": (-(2**63), 2**63 - 1)}[dt]
        raw = struct.pack(fmt, min(hi, max(lo, int(n))))
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return words if reg.word_order == "big" else words[::-1]


def decode(reg: Reg, words: list[int]) -> float:
    """Registers -> engineering value (for writes)."""
    w = words if reg.word_order == "big" else words[::-1]
    raw = b"".join(x.to_bytes(2, "big") for x in w)
    dt = reg.data_type
    if dt in ("float32", "float64"):
        return struct.unpack(">f" if dt == "float32" else ">d", raw)[0]
    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
           "bool": ">H"}[dt]
    return struct.unpack(fmt, raw)[0] * reg.scale + reg.offset


class ModbusTwinServer:
    def __init__(self, plant: Plant, host: str, port: int, unit_id: int = 1) -> None:
        self.plant = plant
        self.host, self.port, self.unit_id = host, port, unit_id
        self.regs: list[Reg] = []
        self.image: dict[int, int] = {}
        self.owner: dict[int, Reg] = {}  # address -> register (bits: the word's first bit tag)
        self.server: ModbusTcpServer | None = None
        self.updates = 0
        self._build()

    def _build(self) -> None:
        cfg = self.plant.loaded
        drivers = cfg.config.drivers
        for t in cfg.tags:
            if drivers[t.driver_id].kind != "modbus" or t.equipment_id is None:
                continue
            m = self.plant.machines.get(t.equipment_id)
            if m is None:
                continue
            mm = _ADDR.match(t.spec.address)
            if mm is None:
                raise ValueError(f"{t.id}: twin serves holding registers only ({t.spec.address})")
            bit = int(mm.group(2)) if mm.group(2) is not None else None
            vm = t.spec.vision
            r = Reg(m, t.name, int(mm.group(1)), bit, t.spec.data_type, t.spec.scale,
                    t.spec.offset, t.spec.word_order, t.spec.kind, t.spec.writable,
                    tuple(vm.classes) if vm is not None else ())
            self.regs.append(r)
            for a in range(r.address, r.address + r.width):
                prev = self.owner.get(a)
                if prev is not None and not (prev.bit is not None and r.bit is not None):
                    raise ValueError(f"register {a} declared twice ({prev.name}, {t.id})")
                self.owner.setdefault(a, r)
                self.image[a] = 0
        self.publish()

    def device(self) -> SimDevice:
        blocks = []
        for a in sorted(self.image):
            r = self.owner[a]
            blocks.append(SimData(a, values=0, datatype=DataType.REGISTERS,
                                  readonly=not r.writable))
        return SimDevice(id=0, simdata=blocks, action=self._action)

    async def start(self) -> None:
        self.server = ModbusTcpServer(self.device(), address=(self.host, self.port))
        await self.server.serve_forever(background=True)

    def publish(self) -> int:
        """Refresh the register image from the plant; returns how many registers changed."""
        snaps: dict[str, dict[str, Any]] = {}
        bits: dict[int, int] = {}
        n = 0
        for r in self.regs:
            m = r.machine
            snap = snaps.get(m.id)
            if snap is None:
                snap = snaps[m.id] = m.snapshot()
            if r.kind == "command":
                v: Any = 0
            else:
                v = snap.get(r.name, 0)
            if r.bit is not None:
                bits[r.address] = bits.get(r.address, 0) | ((1 << r.bit) if v else 0)
                continue
            if isinstance(v, float) and not math.isfinite(v):
                v = 0.0
            words = as_registers(v if isinstance(v, dict) else None, r.classes) \
                if r.kind == "vision" else encode(r, v)
            for i, w in enumerate(words):
                if self.image[r.address + i] != w:
                    self.image[r.address + i] = w
                    n += 1
        for a, w in bits.items():
            if self.image[a] != w:
                self.image[a] = w
                n += 1
        self.updates += n
        return n

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      current: list[int], set_values: Any) -> ExcCodes | None:
        t = self.plant.t
        for a in range(address, address + count):
            r = self.owner.get(a)
            if r is not None and not r.machine.comms_ok(t):
                return ExcCodes.GATEWAY_NO_RESPONSE
        if set_values:
            return self._write(address, [int(v) for v in set_values])
        off = address - start_address
        for i in range(count):
            current[off + i] = self.image.get(address + i, 0)
        return None

    def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        i = 0
        while i < len(values):
            r = self.owner.get(address + i)
            if r is None or not r.writable or r.address != address + i \
                    or i + r.width > len(values):
                return ExcCodes.ILLEGAL_ADDRESS if r is None or not r.writable \
                    else ExcCodes.ILLEGAL_VALUE
            words = values[i:i + r.width]
            value = decode(r, words)
            if r.kind == "setpoint":
                err = self.plant.write_setpoint(r.machine.id, r.name, value)
            elif r.kind == "command":
                err = self.plant.command(r.machine.id, int(value))
            else:
                err = "not writable"
            if err is not None:
                _log.info("refused write %s.%s=%s: %s", r.machine.id, r.name, value, err)
                return ExcCodes.ILLEGAL_VALUE
            for j, w in enumerate(words):
                self.image[r.address + j] = w
            i += r.width
        return None

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
