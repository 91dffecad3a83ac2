"""Modbus driver against a real pymodbus server on loopback, configured through config alone."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from driver_helpers import Collector, free_port, wait_until, write_config
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.config import load_config
from core.samples import Quality
from drivers.base import ConnState, DriverConfigError, make_driver
from drivers.modbus import ModbusDriver
from drivers.modbus_map import parse_address, plan_blocks

HR_FC = 16  # function code used to poke holding registers into the server's store


def layout(fmt: str, value: float | int, word_order: str, byte_order: str) -> list[int]:
    """Independent of drivers.codec: how a device lays out ``value`` in registers."""
    raw = struct.pack(">" + fmt, value)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if byte_order == "little":
        words = [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]
    if word_order == "little":
        words = words[::-1]
    return words


@dataclass
class Device:
    """A pymodbus server whose behaviour a test can change: slow or refusing ranges."""

    port: int
    server: ModbusTcpServer | None = None
    slow: set[int] = field(default_factory=set)  # start addresses that never answer in time
    clamp: dict[int, int] = field(default_factory=dict)  # address -> value the device keeps

    async def action(
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        regs: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if any(address <= a < address + count for a in self.slow):
            await asyncio.sleep(3.0)
        if set_values is not None:
            for i in range(len(set_values)):
                if address + i in self.clamp and fc in (6, 16):
                    set_values[i] = self.clamp[address + i]  # type: ignore[call-overload]
        return None

    async def start(self, extra_units: dict[int, int] | None = None) -> None:
        """``extra_units``: more device ids behind this server, hr 0..9 filled with a value."""
        hr = [
            SimData(0, count=100, values=0, datatype=DataType.REGISTERS),
            SimData(150, count=100, values=0, datatype=DataType.REGISTERS),
        ]
        ir = [SimData(0, count=20, values=0, datatype=DataType.REGISTERS)]
        co = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        di = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        devs = [SimDevice(1, simdata=(co, di, hr, ir), action=self.action)]
        for unit, value in (extra_units or {}).items():
            regs = [SimData(0, count=10, values=value, datatype=DataType.REGISTERS)]
            devs.append(SimDevice(unit, simdata=regs))
        self.server = ModbusTcpServer(devs, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def set_hr(self, address: int, regs: list[int]) -> None:
        assert self.server is not None
        await self.server.async_setValues(1, HR_FC, address, regs)

    async def set_ir(self, address: int, regs: list[int]) -> None:
        assert self.server is not None
        await self.server.async_setValues(1, 4, address, regs)

    async def get_hr(self, address: int, count: int) -> list[int]:
        assert self.server is not None
        return list(await self.server.async_getValues(1, 3, address, count))


@pytest.fixture
async def device() -> AsyncIterator[Device]:
    d = Device(free_port())
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def mb_driver(port: int, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "kind": "modbus",
        "host": "127.0.0.1",
        "port": port,
        "unit_id": 1,
        "poll_interval_ms": 50,
        "timeout_s": 0.4,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.4,
    }
    cfg.update(extra)
    return cfg


async def started(tmp_path: Path, port: int, tags: list[dict[str, Any]], **extra: Any):
    loaded = write_config(tmp_path, "plc", mb_driver(port, **extra), tags)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    assert isinstance(drv, ModbusDriver)
    sink = Collector()
    await drv.connect()
    await drv.start(sink)
    return drv, sink


# ---------------------------------------------------------------- decoding


async def test_every_type_and_order_decodes(tmp_path: Path, device: Device) -> None:
    tags: list[dict[str, Any]] = []
    expected: dict[str, Any] = {}
    addr = 0
    cases = [
        ("int16", "h", -1234),
        ("uint16", "H", 54321),
        ("int32", "i", -123456789),
        ("uint32", "I", 3_000_000_000),
        ("float32", "f", 123.456),
        ("float64", "d", -9876.54321),
    ]
    for dtype, fmt, value in cases:
        for wo in ("big", "little"):
            for bo in ("big", "little"):
                name = f"{dtype}_{wo}_{bo}"
                regs = layout(fmt, value, wo, bo)
                await device.set_hr(addr, regs)
                tags.append(
                    {
                        "name": name,
                        "address": f"hr:{addr}",
                        "data_type": dtype,
                        "word_order": wo,
                        "byte_order": bo,
                    }
                )
                expected[f"M1.{name}"] = struct.unpack(">" + fmt, struct.pack(">" + fmt, value))[0]
                addr += len(regs)
    # scaling, a status-word bit, input registers, a coil
    await device.set_hr(90, [123])
    await device.set_hr(91, [0b1010])
    await device.set_ir(3, [0x4049, 0x0FDB])  # float32 3.1415927
    tags += [
        {"name": "current", "address": "hr:90", "data_type": "int16", "scale": 0.1, "offset": 1.0},
        {"name": "bit1", "address": "hr:91.1", "data_type": "bool"},
        {"name": "bit2", "address": "hr:91.2", "data_type": "bool"},
        {"name": "pi", "address": "ir:3", "data_type": "float32"},
        {"name": "coil", "address": "co:2", "data_type": "bool", "writable": True},
    ]
    assert addr < 90
    drv, sink = await started(tmp_path, device.port, tags)
    try:
        ids = [f"M1.{t['name']}" for t in tags]
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        for tid, want in expected.items():
            got = sink.good(tid)[0].value
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-12), tid
            else:
                assert got == want and isinstance(got, int), tid
        assert sink.good("M1.current")[0].value == pytest.approx(13.3)
        assert sink.good("M1.bit1")[0].value is True
        assert sink.good("M1.bit2")[0].value is False
        assert sink.good("M1.pi")[0].value == pytest.approx(math.pi, rel=1e-6)
        assert sink.good("M1.coil")[0].value is False
        # 24 typed tags share one request; the far registers get their own
        (group,) = drv.groups
        got = [(b.table, b.address, b.count, len(b.items)) for b in group.blocks]
        assert got == [("hr", 0, 48, 24), ("hr", 90, 2, 3), ("ir", 3, 2, 1), ("co", 2, 1, 1)]
        assert drv.state.state is ConnState.CONNECTED
    finally:
        await drv.stop()
    assert drv.state.state is ConnState.DOWN


# ---------------------------------------------------------------- failures


async def test_exception_code_2_is_bad_and_other_groups_continue(
    tmp_path: Path, device: Device
) -> None:
    await device.set_hr(10, [42])
    tags = [
        {"name": "ok", "address": "hr:10", "data_type": "uint16", "poll_group": "fast"},
        # 120 lies in the server's unmapped gap 100..149
        {"name": "missing", "address": "hr:120", "data_type": "uint16", "poll_group": "slow"},
        # these merge into one block 94..155 that spans the gap; the driver splits it
        {"name": "edge_lo0", "address": "hr:94", "data_type": "uint16", "poll_group": "mixed"},
        {"name": "edge_lo", "address": "hr:95", "data_type": "uint16", "poll_group": "mixed"},
        {"name": "edge_hi", "address": "hr:155", "data_type": "uint16", "poll_group": "mixed"},
    ]
    groups = [
        {"name": "fast", "interval_ms": 30},
        {"name": "slow", "interval_ms": 60},
        {"name": "mixed", "interval_ms": 60},
    ]
    await device.set_hr(94, [6, 7])
    await device.set_hr(155, [8])
    extra = "".join(
        f'\n[[drivers.plc.poll_groups]]\nname = "{g["name"]}"\ninterval_ms = {g["interval_ms"]}\n'
        for g in groups
    )
    loaded = write_config(tmp_path, "plc", mb_driver(device.port, max_gap=100), tags, extra)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    assert isinstance(drv, ModbusDriver)
    assert {g.name: g.interval_s for g in drv.groups} == {"fast": 0.03, "slow": 0.06, "mixed": 0.06}
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: bool(sink.of("M1.missing")))
        bad = sink.of("M1.missing")[0]
        assert bad.quality is Quality.BAD and bad.value is None
        assert bad.reason == "exception code 2 (illegal data address)"
        n_ok = len(sink.good("M1.ok"))
        n_missing = len(sink.of("M1.missing"))
        # the fast group keeps delivering while the broken one keeps failing
        await sink.wait_for(
            lambda: (
                len(sink.good("M1.ok")) >= n_ok + 5 and len(sink.of("M1.missing")) >= n_missing + 2
            )
        )
        assert all(s.quality is Quality.BAD for s in sink.of("M1.missing"))
        assert drv.state.state is ConnState.CONNECTED  # a refused address is not a lost link
        await sink.wait_for(lambda: bool(sink.good("M1.edge_lo")) and bool(sink.good("M1.edge_hi")))
        assert sink.good("M1.edge_lo")[-1].value == 7 and sink.good("M1.edge_hi")[-1].value == 8
        assert sink.good("M1.edge_lo0")[-1].value == 6
        # the refused block is re-read as its gap-free runs: 94..95 together, 155 alone
        mixed = next(g for g in drv.groups if g.name == "mixed")
        assert [(b.address, b.count, b.split) for b in mixed.blocks] == [
            (94, 2, False), (155, 1, True)]
    finally:
        await drv.stop()


async def test_nan_and_infinity_become_bad_and_polling_goes_on(
    tmp_path: Path, device: Device
) -> None:
    tags = [
        {"name": "temp", "address": "hr:20", "data_type": "float32"},
        {"name": "wide", "address": "hr:22", "data_type": "float64", "word_order": "little"},
    ]
    await device.set_hr(20, layout("f", math.nan, "big", "big"))
    await device.set_hr(22, layout("d", -math.inf, "little", "big"))
    drv, sink = await started(tmp_path, device.port, tags)
    try:
        await sink.wait_for(lambda: bool(sink.of("M1.temp")) and bool(sink.of("M1.wide")))
        for tid in ("M1.temp", "M1.wide"):
            s = sink.of(tid)[0]
            assert s.quality is Quality.BAD and s.value is None
            assert "non-finite" in (s.reason or "")
        await device.set_hr(20, layout("f", math.inf, "big", "big"))
        await device.set_hr(22, layout("d", 21.5, "little", "big"))
        await sink.wait_for(lambda: bool(sink.good("M1.wide")))
        assert sink.good("M1.wide")[-1].value == 21.5
        await device.set_hr(20, layout("f", 20.25, "big", "big"))
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        assert sink.good("M1.temp")[-1].value == 20.25
        assert any("inf" in (s.reason or "") for s in sink.of("M1.temp"))
        assert drv.state.state is ConnState.CONNECTED
    finally:
        await drv.stop()


async def test_timeout_is_bad_then_reconnects_and_resumes(tmp_path: Path, device: Device) -> None:
    await device.set_hr(30, [5])
    await device.set_hr(40, [6])
    tags = [
        {"name": "a", "address": "hr:30", "data_type": "uint16", "poll_group": "ga"},
        {"name": "b", "address": "hr:40", "data_type": "uint16", "poll_group": "gb"},
    ]
    groups = [{"name": "ga", "interval_ms": 50}, {"name": "gb", "interval_ms": 50}]
    drv, sink = await started(tmp_path, device.port, tags, poll_groups=groups)
    states: list[ConnState] = []
    drv.on_state_change(lambda st: states.append(st.state))
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.a")) and bool(sink.good("M1.b")))
        device.slow.add(30)
        await sink.wait_for(lambda: any("timeout" in (s.reason or "") for s in sink.of("M1.a")))
        t = next(s for s in sink.of("M1.a") if "timeout" in (s.reason or ""))
        assert t.quality is Quality.BAD and t.value is None
        # the lost link leaves an explicit marker for every tag, not just the slow one
        await sink.wait_for(
            lambda: any((s.reason or "").startswith("connection lost") for s in sink.of("M1.b"))
        )
        assert ConnState.RECONNECTING in states
        device.slow.clear()
        await device.set_hr(30, [55])
        await sink.wait_for(lambda: any(s.value == 55 for s in sink.good("M1.a")))
        await wait_until(lambda: drv.state.state is ConnState.CONNECTED)
        assert drv.stats.reconnects >= 1
        # connected again: the state carries the current error (none); the stats keep
        # the count with the newest reason
        assert drv.state.last_error is None
        assert drv.stats.errors >= 1 and "timeout" in (drv.stats.last_failure or "")
    finally:
        await drv.stop()


async def test_device_restart_marks_gap_and_resumes(tmp_path: Path, device: Device) -> None:
    await device.set_hr(5, [1])
    tags = [
        {"name": "a", "address": "hr:5", "data_type": "uint16"},
        {"name": "b", "address": "hr:6", "data_type": "uint16"},
    ]
    drv, sink = await started(tmp_path, device.port, tags)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.a")) and bool(sink.good("M1.b")))
        await device.stop()
        await sink.wait_for(
            lambda: all(
                any((s.reason or "").startswith("connection lost") for s in sink.of(t))
                for t in ("M1.a", "M1.b")
            )
        )
        marker = next(s for s in sink.of("M1.a") if s.quality is Quality.BAD)
        assert marker.value is None
        await wait_until(lambda: drv.state.state is ConnState.RECONNECTING)
        await device.start()
        await device.set_hr(5, [2])
        await sink.wait_for(lambda: any(s.value == 2 for s in sink.good("M1.a")))
        await wait_until(lambda: drv.state.state is ConnState.CONNECTED)
        assert drv.stats.reconnects >= 1
        # per tag: good values, then the Bad marker(s), then good values again; no interpolation
        qs = [s.quality for s in sink.of("M1.a")]
        first_bad = qs.index(Quality.BAD)
        assert all(q is Quality.GOOD for q in qs[:first_bad]) and qs[-1] is Quality.GOOD
    finally:
        await drv.stop()


async def test_device_down_at_start_then_up(tmp_path: Path) -> None:
    port = free_port()
    loaded = write_config(
        tmp_path, "plc", mb_driver(port), [{"name": "a", "address": "hr:1", "data_type": "uint16"}]
    )
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    with pytest.raises(Exception, match=str(port)):
        await drv.connect()
    sink = Collector()
    await drv.start(sink)  # keeps trying in the background
    dev = Device(port)
    try:
        await wait_until(lambda: drv.stats.errors >= 2)
        assert drv.state.state is ConnState.CONNECTING and drv.state.last_error
        assert drv.stale_tags(0.0) == ["M1.a"]
        await dev.start()
        await dev.set_hr(1, [9])
        await sink.wait_for(lambda: bool(sink.good("M1.a")))
        assert drv.state.state is ConnState.CONNECTED
        assert drv.stale_tags(60.0) == []
        assert drv.last_update("M1.a") is not None
    finally:
        await drv.stop()
        await dev.stop()


async def test_slow_device_never_stalls_another_driver(tmp_path: Path) -> None:
    slow_dev, fast_dev = Device(free_port()), Device(free_port())
    await slow_dev.start()
    await fast_dev.start()
    slow_dev.slow.add(0)  # never answers in time
    await fast_dev.set_hr(0, [1])
    tag = [{"name": "v", "address": "hr:0", "data_type": "uint16"}]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    slow_cfg = write_config(tmp_path / "a", "slow", mb_driver(slow_dev.port, timeout_s=0.2), tag)
    fast_cfg = write_config(tmp_path / "b", "fast", mb_driver(fast_dev.port), tag)
    slow = make_driver("slow", slow_cfg.config.drivers["slow"], slow_cfg.tags)
    fast = make_driver("fast", fast_cfg.config.drivers["fast"], fast_cfg.tags)
    s_sink, f_sink = Collector(), Collector()
    await slow.start(s_sink)
    await fast.start(f_sink)
    try:
        timeouts = lambda: sum("timeout" in (s.reason or "") for s in s_sink.samples)  # noqa: E731
        await s_sink.wait_for(lambda: timeouts() >= 2)
        n = len(f_sink.good("M1.v"))
        await s_sink.wait_for(lambda: timeouts() >= 3)
        # while the slow device timed out again, the other driver kept polling
        assert len(f_sink.good("M1.v")) > n
        assert fast.state.state is ConnState.CONNECTED
        assert not any(s.quality is Quality.BAD for s in f_sink.samples)
    finally:
        await slow.stop()
        await fast.stop()
        await slow_dev.stop()
        await fast_dev.stop()


async def test_equipment_unit_id_selects_the_device_behind_a_gateway(tmp_path: Path) -> None:
    from drivers.base import make_drivers

    dev = Device(free_port())
    await dev.start(extra_units={3: 333})
    await dev.set_hr(0, [111])
    loaded = write_config(
        tmp_path,
        "gw",
        mb_driver(dev.port),
        [{"name": "v", "address": "hr:0", "data_type": "uint16"}],
        equipment_extra="unit_id = 3",
    )
    (drv,) = make_drivers(loaded).values()
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.v")))
        assert sink.good("M1.v")[0].value == 333
    finally:
        await drv.stop()
        await dev.stop()


# ---------------------------------------------------------------- writes


async def test_writes_encode_and_read_back(tmp_path: Path, device: Device) -> None:
    tags = [
        {
            "name": "sp",
            "address": "hr:50",
            "data_type": "float32",
            "word_order": "little",
            "writable": True,
        },
        {
            "name": "scaled",
            "address": "hr:52",
            "data_type": "int16",
            "scale": 0.1,
            "writable": True,
        },
        {"name": "big", "address": "hr:53", "data_type": "uint32", "writable": True},
        {"name": "flag", "address": "hr:55.3", "data_type": "bool", "writable": True},
        {"name": "coil", "address": "co:4", "data_type": "bool", "writable": True},
        {"name": "clamped", "address": "hr:56", "data_type": "uint16", "writable": True},
        {"name": "ro", "address": "hr:57", "data_type": "uint16"},
        # a writable input register is refused by the config (see tests/config); this
        # one is read-only in the config too
        {"name": "input", "address": "ir:1", "data_type": "uint16"},
    ]
    await device.set_hr(55, [0b1])
    device.clamp[56] = 100  # the device limits this setpoint to 100
    drv, sink = await started(tmp_path, device.port, tags)
    try:
        r = await drv.write("M1.sp", 65.5)
        assert r.ok and r.read_back == 65.5 and r.error is None
        assert await device.get_hr(50, 2) == layout("f", 65.5, "little", "big")
        r = await drv.write("M1.sp", 0.1)  # not exact in float32: compared at float32 precision
        assert r.ok and r.read_back == pytest.approx(0.1, rel=1e-7)
        r = await drv.write("M1.scaled", 12.3)
        assert r.ok and r.read_back == pytest.approx(12.3)
        assert await device.get_hr(52, 1) == [123]
        r = await drv.write("M1.big", 4_000_000_000)
        assert r.ok and r.read_back == 4_000_000_000
        r = await drv.write("M1.flag", True)
        assert r.ok and await device.get_hr(55, 1) == [0b1001]  # bit 0 untouched
        r = await drv.write("M1.flag", "false")  # text means what it says
        assert r.ok and r.read_back is False and await device.get_hr(55, 1) == [0b0001]
        r = await drv.write("M1.coil", True)
        assert r.ok and r.read_back is True
        r = await drv.write("M1.clamped", 250)
        assert not r.ok and r.mismatch and r.read_back == 100 and "differs" in (r.error or "")
        r = await drv.write("M1.ro", 1)
        assert not r.ok and "not writable" in (r.error or "")
        r = await drv.write("M1.input", 1)
        assert not r.ok and "not writable" in (r.error or "")
        r = await drv.write("M1.scaled", 99999.0)
        assert not r.ok and "outside" in (r.error or "")
        r = await drv.write("M1.nope", 1)
        assert not r.ok and "unknown tag" in (r.error or "")
        assert drv.stats.writes == 12 and drv.stats.write_failures == 5
        # the poll picks the written setpoint up too
        await sink.wait_for(lambda: any(s.value == 4_000_000_000 for s in sink.good("M1.big")))
    finally:
        await drv.stop()


# ---------------------------------------------------------------- config and planning


def test_addresses_and_blocks_from_the_default_config() -> None:
    loaded = load_config(Path(__file__).resolve().parents[2] / "config.toml")
    drv = make_driver("modbus", loaded.config.drivers["modbus"], loaded.tags)
    assert isinstance(drv, ModbusDriver)
    assert set(drv.tags) == {t.id for t in loaded.tags if t.driver_id == "modbus"}
    blocks = [b for g in drv.groups for b in g.blocks]
    assert all(b.count <= 125 for b in blocks)
    covered = {i.tag.id for b in blocks for i in b.items}
    assert covered == set(drv.tags)
    # far fewer requests than tags
    assert len(blocks) * 4 < len(drv.tags)
    it = drv.items["C-PRESS1.status_fault"]
    assert (it.table, it.address, it.bit) == ("hr", 306, 1)


def test_block_planning_limits() -> None:
    from core.config.loader import ResolvedTag
    from core.config.schema import Tag

    def rt(name: str, addr: str, dt: str = "uint16") -> ResolvedTag:
        return ResolvedTag(
            f"M.{name}", name, "M", "L", "d", Tag(name=name, address=addr, data_type=dt)
        )

    items = [parse_address(rt(f"t{i}", f"hr:{i * 2}", "float32")) for i in range(100)]
    blocks = plan_blocks(items, max_block=125, max_gap=8)
    assert [b.count for b in blocks] == [124, 76]  # 200 registers, no block over 125
    far = [
        parse_address(rt("a", "hr:0")),
        parse_address(rt("b", "hr:20")),
        parse_address(rt("c", "ir:0")),
        parse_address(rt("d", "hr:5")),
    ]
    got = [(b.table, b.address, b.count) for b in plan_blocks(far, max_gap=8)]
    assert got == [("hr", 0, 6), ("hr", 20, 1), ("ir", 0, 1)]
    for bad, msg in [
        ("hr:70000", "outside"),
        ("xx:1", "not one of"),
        ("co:1", "bools"),
        ("hr:1.16", "0..15"),
    ]:
        with pytest.raises(DriverConfigError, match=msg):
            parse_address(rt("z", bad, "int16" if bad != "hr:1.16" else "bool"))


async def test_a_failing_sink_does_not_stop_the_driver(tmp_path: Path, device: Device) -> None:
    await device.set_hr(3, [4])
    loaded = write_config(
        tmp_path,
        "plc",
        mb_driver(device.port),
        [{"name": "a", "address": "hr:3", "data_type": "uint16"}],
    )
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    got = Collector()
    calls = 0

    def flaky(batch: list) -> None:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("downstream hiccup")
        got(batch)

    await drv.start(flaky)
    try:
        await got.wait_for(lambda: len(got.good("M1.a")) >= 2)
        assert drv.stats.errors >= 2 and drv.state.state is ConnState.CONNECTED
    finally:
        await drv.stop()


async def test_modicon_addresses_and_layout_names(tmp_path: Path, device: Device) -> None:
    """40061 is hr:60 (1-based), 30003 is ir:2; CDAB/BADC/DCBA name the register layouts."""
    value = 1234.5
    await device.set_hr(60, layout("f", value, "big", "big"))
    await device.set_hr(62, layout("f", value, "little", "big"))
    await device.set_hr(64, layout("f", value, "big", "little"))
    await device.set_hr(66, layout("f", value, "little", "little"))
    await device.set_hr(68, [0b100])
    await device.set_ir(2, [77])
    tags = [
        {"name": "abcd", "address": "40061", "data_type": "float32", "word_order": "ABCD"},
        {"name": "cdab", "address": "40063", "data_type": "float32", "word_order": "CDAB"},
        {"name": "badc", "address": "400065", "data_type": "float32", "byte_order": "BADC"},
        {"name": "dcba", "address": "40067", "data_type": "float32", "word_order": "DCBA"},
        {"name": "bit2", "address": "40069.2", "data_type": "bool"},
        {"name": "ir", "address": "30003", "data_type": "uint16"},
    ]
    drv, sink = await started(tmp_path, device.port, tags)
    try:
        ids = [f"M1.{t['name']}" for t in tags]
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        assert [sink.good(f"M1.{n}")[-1].value for n in ("abcd", "cdab", "badc", "dcba")] == [
            value
        ] * 4
        assert sink.good("M1.bit2")[-1].value is True and sink.good("M1.ir")[-1].value == 77
        assert drv.items["M1.abcd"].address == 60 and drv.items["M1.ir"].table == "ir"
    finally:
        await drv.stop()


async def test_device_back_data_resumes_within_the_backoff_cap(tmp_path: Path) -> None:
    """Default backoff (0.1 s doubling to 1 s): data within about a second of the return."""
    port = free_port()
    dev = Device(port)
    await dev.start()
    cfg = {k: v for k, v in mb_driver(port).items() if not k.startswith("reconnect")}
    loaded = write_config(tmp_path, "plc", cfg, [
        {"name": "a", "address": "hr:5", "data_type": "uint16"}])
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    events: list[tuple[float, ConnState, str | None]] = []
    drv.on_state_change(lambda st: events.append((time.monotonic(), st.state, st.last_error)))
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.a")))
        await dev.stop()
        await wait_until(lambda: drv.state.state is ConnState.RECONNECTING)
        failed = drv.stats.errors
        await wait_until(lambda: drv.stats.errors >= failed + 6)  # backoff is at its cap
        await dev.start()
        back = time.monotonic()
        await dev.set_hr(5, [9])
        await sink.wait_for(lambda: any(s.value == 9 for s in sink.good("M1.a")))
        resumed = time.monotonic() - back
        print(f"\nModbus reconnect: first value {resumed:.2f} s after the device was back")
        assert resumed <= 2.0
        assert [e for _, st, e in events if st is ConnState.CONNECTED] == [None, None]
        assert drv.stats.last_failure and drv.state.last_error is None
    finally:
        await drv.stop()
        await dev.stop()
