"""An action approved right after a start waits for its driver's connection (real Modbus
server on loopback that comes up a second after the write was asked for)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drivers"))
from driver_helpers import free_port, write_config

from core.engine.executors.base import TransientError
from drivers.base import make_driver
from runtime.plant_io import DriverIO


def _driver(port: int) -> dict:
    return {"kind": "modbus", "host": "127.0.0.1", "port": port, "unit_id": 1,
            "poll_interval_ms": 50, "timeout_s": 0.4, "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.4}


async def test_a_write_waits_for_a_connecting_driver(tmp_path: Path) -> None:
    port = free_port()
    loaded = write_config(tmp_path, "plc", _driver(port),
                          [{"name": "sp", "address": "hr:5", "data_type": "uint16",
                            "writable": True}])
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    await drv.start(lambda batch: None)  # connecting: no server yet
    loop = asyncio.get_running_loop()
    io = DriverIO(loaded, {"plc": drv}, loop, connect_wait_s=20.0)
    quick = DriverIO(loaded, {"plc": drv}, loop, connect_wait_s=0.3)
    with pytest.raises(TransientError, match=r"waited 0\.3 s"):
        await asyncio.to_thread(quick.write_tag, "M1.sp", 7)
    write = asyncio.ensure_future(asyncio.to_thread(io.write_tag, "M1.sp", 42))
    await asyncio.sleep(1.0)
    assert not write.done()  # waiting, not failing
    server = ModbusTcpServer([SimDevice(1, simdata=[SimData(0, count=20, values=0,
                                                            datatype=DataType.REGISTERS)])],
                             address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        res = await asyncio.wait_for(write, 30)
        assert res.ok and res.read_back == 42
    finally:
        await drv.stop()
        await server.shutdown()
