"""Plant twin: simulated days per wall minute (core, core + servers) and tag updates/s served.

    python -m bench sim [--days 1] [--reps 3] [--scale 10] [--seconds 20] [--skip-served]
                        [--json]

Day figures are medians of ``--reps`` runs (core and baseline interleaved).

1. Core only: ``Plant.run(86400 × days)`` on the default plant, beside a raw baseline
   loop that draws the same number of Gaussian numbers per machine-second (the floor
   any noise-driven Python model pays).
2. Core + servers: the same day with both protocol servers built and published every
   180 twin seconds (the cadence of ``--speed 3600``: one publish per 50 ms wall).
3. Served updates at speed 1 with ``--scale`` copies (10 → 2,041 tags): the twin runs
   as a child process (``python -m sim``); a plain asyncua client subscribes to every
   OPC UA node and a plain pymodbus client reads every Modbus register once a second.
   Baseline: the value changes the twin produced in the same twin-time window (read
   from Plant.Clock at both ends, replayed in-process on an identical plant), so the
   ratio says how much of what the twin generates reaches a client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import load_config
from sim.master import load_master
from sim.plant import Plant
from sim.scale import scaled_config
from sim.truth import TruthLog

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
GAUSS_PER_MACHINE_SECOND = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def core_day(days: float, reps: int) -> dict[str, float]:
    """Core and raw loop interleaved, ``reps`` times each; medians."""
    cfg = load_config(ROOT / "config.toml")
    master = load_master(cfg.master_data_path)
    n = int(86400 * days)
    cores, raws = [], []
    machines = 0
    for _ in range(reps):
        p = Plant(cfg, master, seed=1, start=START, truth=TruthLog(None),
                  random_faults_per_day=2.0)
        t = time.perf_counter()
        p.run(n)
        cores.append(time.perf_counter() - t)
        machines = len(p.machines)
        rng = random.Random(1)
        gauss = rng.gauss
        t = time.perf_counter()
        for _ in range(n):
            for _m in range(machines):
                for _k in range(GAUSS_PER_MACHINE_SECOND):
                    gauss(0.0, 1.0)
        raws.append(time.perf_counter() - t)
    core_s, raw_s = statistics.median(cores), statistics.median(raws)
    return {"core_wall_s_per_day": core_s / days, "raw_wall_s_per_day": raw_s / days,
            "core_days_per_wall_min": 60.0 * days / core_s,
            "raw_days_per_wall_min": 60.0 * days / raw_s, "machines": machines}


async def _servers_day(days: float, reps: int) -> dict[str, float]:
    walls: list[float] = []
    res: dict[str, float] = {}
    for _ in range(reps):
        res = await _servers_day_once(days)
        walls.append(res["servers_wall_s_per_day"])
    wall = statistics.median(walls)
    res.update(servers_wall_s_per_day=wall, servers_days_per_wall_min=60.0 / wall)
    return res


async def _servers_day_once(days: float) -> dict[str, float]:
    from sim.modbus_server import ModbusTwinServer
    from sim.opcua_server import OpcUaTwinServer

    cfg = load_config(ROOT / "config.toml")
    master = load_master(cfg.master_data_path)
    p = Plant(cfg, master, seed=1, start=START, truth=TruthLog(None),
              random_faults_per_day=2.0)
    op = OpcUaTwinServer(p, "127.0.0.1", _free_port())
    mb = ModbusTwinServer(p, "127.0.0.1", _free_port())
    await op.start()
    await mb.start()
    try:
        n = int(86400 * days)
        t = time.perf_counter()
        while p.t < n:
            for _ in range(180):
                p.step()
            await op.publish()
            mb.publish()
        wall = time.perf_counter() - t
    finally:
        await op.stop()
        await mb.stop()
    return {"servers_wall_s_per_day": wall / days, "servers_days_per_wall_min": 60 * days / wall,
            "opcua_updates": op.updates, "modbus_register_updates": mb.updates}


def produced_per_s(scale: int, t_from: int, t_to: int) -> tuple[float, int, int]:
    """Value changes per twin second the plant generates in [t_from, t_to) twin seconds
    (the window the clients measured), on an identical in-process plant."""
    cfg = load_config(ROOT / "config.toml")
    master = load_master(cfg.master_data_path)
    p = Plant(cfg, master, seed=42, start=START, scale=scale, truth=TruthLog(None),
              random_faults_per_day=cfg.config.simulator.random_faults_per_day)
    tags = [(t, p.machines[t.equipment_id]) for t in p.loaded.tags
            if t.equipment_id and t.spec.kind != "command"]
    last: dict[str, Any] = {}
    changes = 0
    p.run(max(0, t_from - 1))
    while p.t < t_to:
        p.step()
        counting = p.t > t_from
        snaps = {m.id: m.snapshot() for m in p.machines.values()}
        for t, m in tags:
            v = snaps[m.id].get(t.name)
            if last.get(t.id) != v:
                changes += counting
                last[t.id] = v
    n_op = sum(1 for t in p.loaded.tags if t.driver_id == "opcua")
    return changes / max(1, t_to - t_from), n_op, len(p.loaded.tags) - n_op


async def _client_updates(scale: int, seconds: float) -> dict[str, float]:
    from asyncua import Client
    from pymodbus.client import AsyncModbusTcpClient

    cfg = scaled_config(load_config(ROOT / "config.toml"), scale)
    op, mp = _free_port(), _free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    ready = work / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "--config", str(ROOT / "config.toml"), "--scale",
         str(scale), "--speed", "1", "--opcua-port", str(op), "--modbus-port", str(mp),
         "--ready-file", str(ready), "--start", START.isoformat()],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        t0 = time.monotonic()
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError("twin did not start")
            await asyncio.sleep(0.1)
        ua_tags = [t for t in cfg.tags if t.driver_id == "opcua"]
        mb_tags = [t for t in cfg.tags if t.driver_id == "modbus"]
        counts = {"opcua": 0, "modbus": 0}

        class Handler:
            def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
                counts["opcua"] += 1

        client = Client(f"opc.tcp://127.0.0.1:{op}/loopline/", timeout=30)
        await client.connect()
        sub = await client.create_subscription(250, Handler())
        nodes = [client.get_node(t.spec.address) for t in ua_tags]
        for i in range(0, len(nodes), 500):
            await sub.subscribe_data_change(nodes[i:i + 500], queuesize=10)
        regs: list[tuple[int, int]] = []
        for t in mb_tags:
            addr = t.spec.address.split(":")[1].split(".")[0]
            width = 2 if t.spec.data_type in ("float32", "uint32", "int32") else 1
            regs.append((int(addr), width))
        spans = sorted({a for a, w in regs for a in range(a, a + w)})
        blocks: list[tuple[int, int]] = []
        for a in spans:
            if blocks and a == blocks[-1][0] + blocks[-1][1] and blocks[-1][1] < 100:
                blocks[-1] = (blocks[-1][0], blocks[-1][1] + 1)
            else:
                blocks.append((a, 1))
        mbc = AsyncModbusTcpClient("127.0.0.1", port=mp, timeout=5)
        await mbc.connect()
        await asyncio.sleep(2.0)  # initial notifications flushed
        counts["opcua"] = 0
        last: dict[int, int] = {}
        clock = client.get_node("ns=2;s=Plant.Clock")
        twin_from = await clock.read_value()
        t0 = time.monotonic()
        polls = 0
        while time.monotonic() - t0 < seconds:
            tick = time.monotonic()
            image: dict[int, int] = {}
            for start, count in blocks:
                rr = await mbc.read_holding_registers(start, count=count, device_id=1)
                if not rr.isError():
                    for i, v in enumerate(rr.registers):
                        image[start + i] = v
            for a, w in regs:
                key = tuple(image.get(a + i) for i in range(w))
                h = hash(key)
                if polls and last.get(a) != h:
                    counts["modbus"] += 1
                last[a] = h
            polls += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        wall = time.monotonic() - t0
        twin_to = await clock.read_value()
        mbc.close()
        await client.disconnect()
        span = [int((datetime.fromisoformat(x.replace("Z", "+00:00")) - START).total_seconds())
                for x in (twin_from, twin_to)]
        return {"twin_from_s": span[0], "twin_to_s": span[1],
                "opcua_updates_per_s": counts["opcua"] / wall,
                "modbus_updates_per_s": counts["modbus"] / wall,
                "client_updates_per_s": (counts["opcua"] + counts["modbus"]) / wall,
                "tags": len(cfg.tags), "wall_s": wall}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench sim", description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the day runs (medians)")
    ap.add_argument("--skip-served", action="store_true", help="only the simulated-day figures")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    out: dict[str, Any] = {}
    out.update(core_day(a.days, a.reps))
    print(f"core only      : {out['core_days_per_wall_min']:.2f} simulated days / wall min "
          f"({out['core_wall_s_per_day']:.1f} s per day, {out['machines']} machines); "
          f"raw gauss loop {out['raw_days_per_wall_min']:.2f} days/min; ratio core/raw "
          f"{out['core_days_per_wall_min'] / out['raw_days_per_wall_min']:.2f}", flush=True)
    out.update(asyncio.run(_servers_day(a.days, a.reps)))
    print(f"core + servers : {out['servers_days_per_wall_min']:.2f} simulated days / wall min "
          f"({out['servers_wall_s_per_day']:.1f} s per day; publish every 180 twin s); "
          f"ratio to core only "
          f"{out['servers_days_per_wall_min'] / out['core_days_per_wall_min']:.2f}",
          flush=True)
    if not a.skip_served:
        out.update(asyncio.run(_client_updates(a.scale, a.seconds)))
        base, n_op, n_mb = produced_per_s(a.scale, out["twin_from_s"], out["twin_to_s"])
        out["produced_updates_per_s"] = base
        print(f"served at 1×   : {out['client_updates_per_s']:.0f} tag updates/s seen by plain "
              f"clients ({out['opcua_updates_per_s']:.0f} OPC UA subscription on {n_op} tags, "
              f"{out['modbus_updates_per_s']:.0f} Modbus 1 s polls on {n_mb} tags; "
              f"{out['tags']} tags); twin produced {base:.0f} changes/s; ratio "
              f"{out['client_updates_per_s'] / base:.2f}", flush=True)
    if a.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
