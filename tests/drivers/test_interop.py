"""The drivers against stacks not built on asyncua or pymodbus: node-opcua and libmodbus.

The servers are installed by `make interop` (part of `make test`) and started here as
child processes on free loopback ports; loopline talks to them through config alone.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from driver_helpers import Collector, free_port, wait_until, write_config
from interop_servers import ServerProcess, libmodbus, node_opcua

from core.samples import Quality
from drivers.base import ConnState, make_driver
from drivers.discover import (
    ScanRange,
    browse_opcua,
    opcua_template,
    open_opcua_client,
    scan_modbus,
)

NS = "urn:loopline:interop:node-opcua"


async def _started(srv: ServerProcess) -> ServerProcess:
    await asyncio.to_thread(srv.start)
    return srv


@pytest.fixture
async def node_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    srv = await _started(node_opcua(free_port(), tmp_path / "pki"))
    try:
        yield srv
    finally:
        await asyncio.to_thread(srv.stop)


@pytest.fixture
async def mb_server() -> AsyncIterator[ServerProcess]:
    srv = await _started(libmodbus(free_port()))
    try:
        yield srv
    finally:
        await asyncio.to_thread(srv.stop)


def _endpoint(srv: ServerProcess) -> str:
    return f"opc.tcp://127.0.0.1:{srv.port}/interop"


def _ua(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "opcua", "endpoint": endpoint, "publishing_interval_ms": 100,
            "sampling_interval_ms": 50, "timeout_s": 4.0, **extra}


# ---------------------------------------------------------------- node-opcua


async def test_node_opcua_discover_ingest_and_write(tmp_path: Path, node_server: ServerProcess
                                                    ) -> None:
    from core.config.schema import OpcUaDriver as OpcUaDriverCfg

    endpoint = _endpoint(node_server)
    client = await open_opcua_client(OpcUaDriverCfg.model_validate(_ua(endpoint)), tmp_path)
    try:
        found = await browse_opcua(client)
    finally:
        await client.disconnect()
    by_name = {v.path[-1]: v for v in found}
    assert by_name["Temp"].data_type == "float64" and by_name["Temp"].unit == "°C"
    assert by_name["SpeedSP"].writable and not by_name["Temp"].writable
    assert by_name["History"].array
    template = opcua_template(found, endpoint)
    assert f'address = "nsu={NS};s=M1.Temp"' in template and "skipped" in template
    # the template, pasted into a config, ingests every tag node-opcua serves
    import tomllib

    tags = tomllib.loads(template)["templates"]["M1"]["tags"]
    loaded = write_config(tmp_path, "plc", _ua(endpoint), tags)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    sink = Collector()
    await drv.start(sink)
    try:
        ids = [t.id for t in loaded.tags]
        assert len(ids) == 7
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        first = {i: sink.good(i)[0].value for i in ids}
        assert first["M1.temp"] == 20.5 and first["M1.good"] == 7 and first["M1.lot"] == "L-00001"
        assert first["M1.enabled"] is False and first["M1.state"] == 1
        assert node_server.send("Temp 42.25") == "set Temp"
        await sink.wait_for(lambda: any(s.value == 42.25 for s in sink.good("M1.temp")))
        for tag, value in (("M1.speed_sp", 3.25), ("M1.state", -7), ("M1.mode", 65535),
                           ("M1.enabled", True), ("M1.lot", "L-00042")):
            r = await drv.write(tag, value)
            assert r.ok and r.read_back == value, (tag, r)
        r = await drv.write("M1.temp", 1.0)
        assert not r.ok and "not writable" in (r.error or "")
    finally:
        await drv.stop()
    # a tag the config marks writable but the server does not: node-opcua's refusal
    loaded = write_config(tmp_path, "plc", _ua(endpoint), [
        {"name": "temp", "address": f"nsu={NS};s=M1.Temp", "data_type": "float64",
         "writable": True}])
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        r = await drv.write("M1.temp", 5.0)
        assert not r.ok and "BadNotWritable" in (r.error or ""), r
    finally:
        await drv.stop()


async def test_node_opcua_restart_with_moved_namespace(tmp_path: Path) -> None:
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    port = free_port()
    srv = await _started(node_opcua(port, tmp_path / "pki"))
    tags = [{"name": "temp", "address": f"nsu={NS};s=M1.Temp", "data_type": "float64"}]
    loaded = write_config(tmp_path, "plc", _ua(_endpoint(srv)), tags)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        await asyncio.to_thread(srv.stop)
        await wait_until(lambda: drv.state.state is ConnState.RECONNECTING)
        failed = drv.stats.errors
        await wait_until(lambda: drv.stats.errors >= failed + 5)  # backoff at its cap
        # back with two namespaces in front of ours: the nsu= id follows to the new index
        srv = node_opcua(port, tmp_path / "pki", extra_namespaces=2)
        await _started(srv)
        back = time.monotonic()
        assert srv.send("Temp 77.5") == "set Temp"
        await sink.wait_for(lambda: any(s.value == 77.5 for s in sink.good("M1.temp")))
        print(f"\nnode-opcua reconnect: first value {time.monotonic() - back:.2f} s "
              "after the server was back")
        assert drv.state.state is ConnState.CONNECTED and drv.state.last_error is None
    finally:
        await drv.stop()
        await asyncio.to_thread(srv.stop)


# ---------------------------------------------------------------- libmodbus


def _regs(fmt: str, value: float | int, layout: str) -> list[int]:
    """Independent of drivers.codec: a value laid out as a device manual names it."""
    raw = struct.pack(">" + fmt, value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if layout in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    if layout in ("CDAB", "DCBA"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


async def test_libmodbus_types_layouts_and_writes(tmp_path: Path, mb_server: ServerProcess
                                                  ) -> None:
    v = 1234.5
    for addr, layout in ((10, "ABCD"), (12, "CDAB"), (14, "BADC"), (16, "DCBA")):
        regs = " ".join(str(r) for r in _regs("f", v, layout))
        assert mb_server.send(f"hr {addr} {regs}") == "ok 2"
    assert mb_server.send("hr 20 " + " ".join(str(r) for r in _regs("i", -123456, "CDAB"))) \
        == "ok 2"
    assert mb_server.send("hr 22 5") == "ok 1"  # status word: bits 0 and 2
    assert mb_server.send("ir 3 4242") == "ok 1"
    assert mb_server.send("di 1 1") == "ok 1"
    tags = [
        {"name": "abcd", "address": "40011", "data_type": "float32", "word_order": "ABCD"},
        {"name": "cdab", "address": "hr:12", "data_type": "float32", "word_order": "CDAB"},
        {"name": "badc", "address": "40015", "data_type": "float32", "word_order": "BADC"},
        {"name": "dcba", "address": "hr:16", "data_type": "float32", "word_order": "DCBA"},
        {"name": "count", "address": "40021", "data_type": "int32", "word_order": "CDAB"},
        {"name": "bit2", "address": "hr:22.2", "data_type": "bool"},
        {"name": "input", "address": "30004", "data_type": "uint16", "scale": 0.1},
        {"name": "di", "address": "10002", "data_type": "bool"},
        {"name": "sp", "address": "hr:30", "data_type": "float32", "word_order": "CDAB",
         "writable": True},
        {"name": "coil", "address": "00005", "data_type": "bool", "writable": True},
        {"name": "beyond", "address": "hr:250", "data_type": "uint16"},  # not in the map
    ]
    drv_cfg = {"kind": "modbus", "host": "127.0.0.1", "port": mb_server.port,
               "poll_interval_ms": 50, "timeout_s": 1.0}
    loaded = write_config(tmp_path, "plc", drv_cfg, tags)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    sink = Collector()
    await drv.start(sink)
    try:
        good = [f"M1.{t['name']}" for t in tags if t["name"] != "beyond"]
        await sink.wait_for(lambda: all(sink.good(i) for i in good)
                            and sink.last("M1.beyond") is not None)
        vals = {i: sink.good(i)[-1].value for i in good}
        assert [vals[f"M1.{n}"] for n in ("abcd", "cdab", "badc", "dcba")] == [v] * 4
        assert vals["M1.count"] == -123456 and vals["M1.bit2"] is True
        assert vals["M1.input"] == pytest.approx(424.2) and vals["M1.di"] is True
        beyond = sink.last("M1.beyond")
        assert beyond is not None and beyond.quality is Quality.BAD
        assert "illegal data address" in (beyond.reason or "")
        r = await drv.write("M1.sp", 65.5)
        assert r.ok and r.read_back == 65.5
        # what libmodbus holds, read by the server itself: word-swapped float32
        hi, lo = _regs("f", 65.5, "CDAB")
        assert mb_server.send("get 30") == f"value {hi}" and mb_server.send("get 31") == \
            f"value {lo}"
        r = await drv.write("M1.coil", True)
        assert r.ok and r.read_back is True
    finally:
        await drv.stop()


async def test_libmodbus_restart_and_scan(tmp_path: Path) -> None:
    port = free_port()
    srv = await _started(libmodbus(port))
    assert srv.send("hr 5 11") == "ok 1"
    drv_cfg = {"kind": "modbus", "host": "127.0.0.1", "port": port, "poll_interval_ms": 50,
               "timeout_s": 1.0}
    loaded = write_config(tmp_path, "plc", drv_cfg,
                          [{"name": "a", "address": "hr:5", "data_type": "uint16"}])
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: any(s.value == 11 for s in sink.good("M1.a")))
        await asyncio.to_thread(srv.stop)
        await sink.wait_for(lambda: any((s.reason or "").startswith("connection lost")
                                        for s in sink.of("M1.a")))
        failed = drv.stats.errors
        await wait_until(lambda: drv.stats.errors >= failed + 5)
        srv = libmodbus(port)
        await _started(srv)
        back = time.monotonic()
        assert srv.send("hr 5 12") == "ok 1"
        await sink.wait_for(lambda: any(s.value == 12 for s in sink.good("M1.a")))
        print(f"\nlibmodbus reconnect: first value {time.monotonic() - back:.2f} s "
              "after the device was back")
        # discover: which addresses answer, around the end of the map
        res = await scan_modbus("127.0.0.1", port, 1, [ScanRange.parse("hr:190-209")], 125)
        assert set(res[0].values) == set(range(190, 200))
        assert set(res[0].refused) == set(range(200, 210))
    finally:
        await drv.stop()
        await asyncio.to_thread(srv.stop)
