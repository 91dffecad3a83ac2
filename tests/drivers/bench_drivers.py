"""Driver throughput beside raw library baselines, servers in their own process.

Not a test (pytest does not collect it). Run:

    .venv/bin/python tests/drivers/bench_drivers.py --tags 2000 --seconds 8

OPC UA: a server process changes every variable as fast as it can; the raw baseline
is a plain asyncua subscription (iterator API, no loopline code) counting
notifications, then the loopline driver with 1 and 2 sessions counting Samples.
Modbus: a server process with the registers; the raw baseline reads 125-register
blocks back to back, then the driver polls float32 tags (2 registers each).
Figures are medians of ``--repeat`` runs, printed with ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.config.loader import ResolvedTag
from core.config.schema import ModbusDriver as ModbusCfg
from core.config.schema import OpcUaDriver as OpcUaCfg
from core.config.schema import Tag
from drivers.modbus import ModbusDriver
from drivers.opcua import OpcUaDriver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- servers


def _opcua_server(port: int, n: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    from asyncua import Server, ua

    logging.getLogger("asyncua").setLevel(logging.ERROR)

    async def main() -> None:
        s = Server()
        await s.init()
        s.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
        idx = await s.register_namespace("urn:bench")
        obj = await s.nodes.objects.add_object(ua.NodeId("B", idx), "B")
        ids = []
        for i in range(n):
            node = await obj.add_variable(ua.NodeId(f"B.V{i}", idx), f"V{i}", 0.0)
            ids.append(node.nodeid)
        await s.start()
        ready.set()
        k = 0
        while True:
            k += 1
            for nid in ids:
                await s.write_attribute_value(
                    nid, ua.DataValue(ua.Variant(float(k), ua.VariantType.Double))
                )
            await asyncio.sleep(0.01)

    asyncio.run(main())


def _modbus_server(port: int, n: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.ERROR)

    async def main() -> None:
        dev = SimDevice(
            1, simdata=[SimData(0, count=n, values=0x4140, datatype=DataType.REGISTERS)]
        )
        srv = ModbusTcpServer(dev, address=("127.0.0.1", port))
        await srv.serve_forever(background=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def spawn(target, n: int) -> tuple[mp.Process, int]:  # type: ignore[no-untyped-def]
    port = free_port()
    ready = mp.get_context("spawn").Event()
    p = mp.get_context("spawn").Process(target=target, args=(port, n, ready), daemon=True)
    p.start()
    if not ready.wait(120):
        p.kill()
        raise RuntimeError("server did not start")
    return p, port


# ---------------------------------------------------------------- measurements


async def raw_opcua(port: int, n: int, seconds: float) -> float:
    from asyncua import Client, ua

    c = Client(f"opc.tcp://127.0.0.1:{port}/bench/")
    await c.connect()
    idx = await c.get_namespace_index("urn:bench")
    sub = await c.create_subscription(50, None, queue_maxsize=2_000_000)
    nodes = [c.get_node(ua.NodeId(f"B.V{i}", idx)) for i in range(n)]
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ev in sub:
            count += 1

    task = asyncio.create_task(consume())
    await sub.subscribe_data_change(nodes, queuesize=10, sampling_interval=20)
    await asyncio.sleep(1.0)
    c0, t0 = count, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (count - c0) / (time.perf_counter() - t0)
    task.cancel()
    await c.disconnect()
    return rate


def _tags(driver: str, addrs: list[str], dtype: str) -> list[ResolvedTag]:
    return [
        ResolvedTag(
            f"B.t{i}", f"t{i}", "B", "L", driver, Tag(name=f"t{i}", address=a, data_type=dtype)
        )  # type: ignore[arg-type]
        for i, a in enumerate(addrs)
    ]


async def driver_rate(drv, seconds: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    count = 0
    bad = 0

    def sink(batch: list) -> None:  # type: ignore[type-arg]
        nonlocal count, bad
        count += len(batch)
        bad += sum(1 for s in batch if s.quality != 0)

    await drv.connect()
    await drv.start(sink)
    await asyncio.sleep(1.0)
    c0, t0 = count, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (count - c0) / (time.perf_counter() - t0)
    await drv.stop()
    return rate, bad


async def loopline_opcua(port: int, n: int, seconds: float, sessions: int) -> float:
    from asyncua import Client

    c = Client(f"opc.tcp://127.0.0.1:{port}/bench/")
    await c.connect()
    idx = await c.get_namespace_index("urn:bench")
    await c.disconnect()
    cfg = OpcUaCfg(
        kind="opcua",
        endpoint=f"opc.tcp://127.0.0.1:{port}/bench/",
        publishing_interval_ms=50,
        sampling_interval_ms=20,
        queue_size=10,
        sessions=sessions,
    )
    drv = OpcUaDriver("b", cfg, _tags("b", [f"ns={idx};s=B.V{i}" for i in range(n)], "float64"))
    rate, bad = await driver_rate(drv, seconds)
    assert bad == 0, f"{bad} bad samples"
    return rate


async def raw_modbus(port: int, regs: int, seconds: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    c = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await c.connect()
    count = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in range(0, regs, 125):
            rr = await c.read_holding_registers(a, count=min(125, regs - a), device_id=1)
            count += len(rr.registers)
    rate = count / (time.perf_counter() - t0)
    c.close()
    return rate


async def loopline_modbus(port: int, regs: int, seconds: float) -> float:
    cfg = ModbusCfg(kind="modbus", host="127.0.0.1", port=port, poll_interval_ms=10)
    drv = ModbusDriver("m", cfg, _tags("m", [f"hr:{a}" for a in range(0, regs - 1, 2)], "float32"))
    rate, bad = await driver_rate(drv, seconds)
    assert bad == 0, f"{bad} bad samples"
    return rate * 2  # registers per second (each float32 value is two registers)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows: list[tuple[str, float, float]] = []

    proc, port = spawn(_opcua_server, a.tags)
    try:
        raw = statistics.median(
            asyncio.run(raw_opcua(port, a.tags, a.seconds)) for _ in range(a.repeat)
        )
        rows.append(("asyncua subscription, raw (values/s)", raw, raw))
        for sessions in (1, 2):
            got = statistics.median(
                asyncio.run(loopline_opcua(port, a.tags, a.seconds, sessions))
                for _ in range(a.repeat)
            )
            rows.append((f"loopline OPC UA driver, {sessions} session(s) (values/s)", got, raw))
    finally:
        proc.kill()
    proc, port = spawn(_modbus_server, a.tags)
    try:
        raw = statistics.median(
            asyncio.run(raw_modbus(port, a.tags, a.seconds)) for _ in range(a.repeat)
        )
        rows.append(("pymodbus block reads, raw (registers/s)", raw, raw))
        got = statistics.median(
            asyncio.run(loopline_modbus(port, a.tags, a.seconds)) for _ in range(a.repeat)
        )
        rows.append(("loopline Modbus driver (registers/s)", got, raw))
    finally:
        proc.kill()
    print(f"{a.tags} tags, {a.seconds:g}s per run, median of {a.repeat}")
    for name, v, base in rows:
        print(f"{name:<55} {v:>12,.0f}   x{v / base:.2f} of raw")


if __name__ == "__main__":
    main()
