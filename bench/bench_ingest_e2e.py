"""Ingest end to end: twin process (2,000+ tags) -> drivers -> contextualized rows committed.

    python -m bench ingest_e2e [--scale 10] [--speed 600] [--seconds 60] [--warmup 10]
                               [--raw-seconds 12] [--sessions N] [--modbus-poll-ms MS] [--json]

Issue 4's headline figure, measured the way the product runs. The twin runs in its
own process (``python -m sim --scale K --speed X --write-config``: K copies of every
line; K = 10 serves 2,042 tags) on free 127.0.0.1 ports. Against that one twin, one
after another (2 shared cores: nothing else of ours runs beside a phase):

1. raw OPC UA: a plain asyncua client (no loopline code) subscribes to every OPC UA
   node of the written config with the driver's settings (publishing and sampling
   interval, queue size, 1000 items per subscription) and counts notifications. The
   twin writes a node only when its value changes and asyncua reports every write,
   so this is also *what the twin offers* over OPC UA. Run before and after the
   loopline phase (the twin's rate drifts with its plant); the mean is the baseline.
2. raw Modbus: a plain pymodbus client reads the config's registers in blocks of
   <= 125 back to back: registers/s the twin's Modbus server can deliver.
3. loopline: the real ``Runtime`` (spawn_twin=False, ml=False, approve=never) on the
   written config and a temp SQLite store, with the clock and I/O intervals set as
   the runtime sets them for a twin it spawns itself (``TwinClock``,
   ``scale_io_to_speed``). After ``--warmup`` s, a ``--seconds`` window: committed
   values/s = rows the store writer committed in the window / window; received/s
   from the drivers' sink. Then ``stop()`` drains the writer and loss is checked:
   received = stored + quarantined, writer drops, detection-queue drops, and the
   stored rows (recent, text and chunked samples) = stored. Peak RSS of this process
   during the phase.
4. raw sqlite3 executemany of the same row shape (``bench ingest_store``'s baseline,
   one tag per twin tag, batches of the writer's size, rows built before the clock).

Also per phase: CPU of this process and of the twin (% of one core) and the twin's
achieved speed (its Plant.Clock over the window): a twin near 100 % of a core and
behind its speed is the limit, not loopline. Target: >= 20,000 values/s, 0 lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_ingest_store import make_samples, make_tags, run_raw
from bench.twin_helpers import (
    Mark,
    read_twin_clock,
    rss_mb,
    start_bench_twin,
    twin_start_time,
)
from core.config import LoadedConfig, load_config

TARGET = 20_000
SETTLE_S = 5.0
_REGS = {"int16": 1, "uint16": 1, "bool": 1, "int32": 2, "uint32": 2, "float32": 2,
         "float64": 4}
_ADDR = re.compile(r"^(hr|ir):(\d+)(?:\.\d+)?$")


# ---------------------------------------------------------------- raw baselines


async def raw_opcua(loaded: LoadedConfig, warmup: float, seconds: float,
                    twin_pid: int) -> dict[str, Any]:
    """A plain asyncua subscription client on every OPC UA node; notifications/s
    (``values_per_s`` None with ``error`` when the overloaded twin drops the client)."""
    try:
        return await _raw_opcua(loaded, warmup, seconds, twin_pid)
    except (ConnectionError, TimeoutError, OSError) as e:
        return {"values_per_s": None, "error": f"{type(e).__name__}: {e}",
                "cpu_pct": None, "twin_cpu_pct": None, "twin_speed": None}


async def _raw_opcua(loaded: LoadedConfig, warmup: float, seconds: float,
                     twin_pid: int) -> dict[str, Any]:
    from asyncua import Client, ua

    cfg = loaded.config.drivers["opcua"]
    assert cfg.kind == "opcua"
    nodes = [t.spec.address for t in loaded.tags if t.driver_id == "opcua"]
    c = Client(cfg.endpoint, timeout=30)
    await c.connect()
    count = 0
    tasks = []

    async def consume(sub: Any) -> None:
        nonlocal count
        async for _ev in sub:
            count += 1

    try:
        for i in range(0, len(nodes), cfg.max_items_per_subscription):
            sub = await c.create_subscription(cfg.publishing_interval_ms, None,
                                              queue_maxsize=1_000_000)
            tasks.append(asyncio.create_task(consume(sub)))
            chunk = [c.get_node(ua.NodeId.from_string(a))
                     for a in nodes[i:i + cfg.max_items_per_subscription]]
            await sub.subscribe_data_change(chunk, queuesize=cfg.queue_size,
                                            sampling_interval=cfg.sampling_interval_ms)
        await asyncio.sleep(warmup)
        speed0 = await read_twin_clock(cfg.endpoint)
        a, c0 = Mark.now(twin_pid), count
        await asyncio.sleep(seconds)
        b, c1 = Mark.now(twin_pid), count
        speed1 = await read_twin_clock(cfg.endpoint)
        dead = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
        if dead:
            raise ConnectionError(f"subscription consumer failed: {dead[0].exception()!r}")
        if c1 == c0:
            raise ConnectionError(f"no notification in {seconds:g} s "
                                  f"({c0} during the warm-up)")
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.disconnect(), 5)
    cpu, twin_cpu = a.cpu_pct(b)
    return {"nodes": len(nodes), "values_per_s": (c1 - c0) / (b.wall - a.wall),
            "cpu_pct": cpu, "twin_cpu_pct": twin_cpu,
            "twin_speed": (speed1 - speed0).total_seconds() / (b.wall - a.wall)}


def modbus_blocks(loaded: LoadedConfig, max_block: int = 125,
                  max_gap: int = 0) -> list[tuple[str, int, int]]:
    """(table, first register, count) covering the config's Modbus registers; no gaps
    bridged by default (the twin, like many devices, refuses unmapped registers)."""
    regs: dict[str, set[int]] = {}
    for t in loaded.tags:
        m = _ADDR.match(t.spec.address) if t.driver_id == "modbus" else None
        if m:
            first = int(m.group(2))
            regs.setdefault(m.group(1), set()).update(
                range(first, first + _REGS.get(t.spec.data_type, 1)))
    out: list[tuple[str, int, int]] = []
    for table, rs in sorted(regs.items()):
        start = prev = -1
        for r in sorted(rs):
            if start < 0:
                start = prev = r
            elif r - prev - 1 > max_gap or r - start + 1 > max_block:
                out.append((table, start, prev - start + 1))
                start = prev = r
            else:
                prev = r
        if start >= 0:
            out.append((table, start, prev - start + 1))
    return out


async def raw_modbus(loaded: LoadedConfig, seconds: float, twin_pid: int) -> dict[str, Any]:
    """A plain pymodbus client reading every block back to back; registers/s."""
    from pymodbus.client import AsyncModbusTcpClient

    cfg = loaded.config.drivers["modbus"]
    assert cfg.kind == "modbus"
    blocks = modbus_blocks(loaded)
    c = AsyncModbusTcpClient(cfg.host, port=cfg.port, timeout=5, retries=0)
    await c.connect()
    regs = reads = 0
    try:
        a = Mark.now(twin_pid)
        while time.perf_counter() - a.wall < seconds:
            for table, addr, n in blocks:
                read = c.read_holding_registers if table == "hr" else c.read_input_registers
                rr = await read(addr, count=n, device_id=cfg.unit_id)
                if rr.isError():
                    raise RuntimeError(f"raw Modbus read {table}:{addr}+{n} failed: {rr}")
                regs += len(rr.registers)
                reads += 1
        b = Mark.now(twin_pid)
    finally:
        c.close()
    cpu, twin_cpu = a.cpu_pct(b)
    n_tags = sum(1 for t in loaded.tags if t.driver_id == "modbus")
    return {"tags": n_tags, "blocks": len(blocks), "registers": sum(b[2] for b in blocks),
            "registers_per_s": regs / (b.wall - a.wall), "reads_per_s": reads / (b.wall - a.wall),
            "cpu_pct": cpu, "twin_cpu_pct": twin_cpu}


def raw_sqlite(workdir: Path, n_tags: int, seconds: int, batch_rows: int) -> dict[str, Any]:
    """sqlite3 executemany of the store's sample rows: the ceiling for any writer."""
    tags = make_tags(n_tags)
    batches = make_samples(tags, seconds)
    rows = sum(len(b) for b in batches)
    s = run_raw(workdir / "raw-sqlite.db", tags, batches, batch_rows)
    return {"rows": rows, "rows_per_s": rows / s}


# ---------------------------------------------------------------- loopline


def tune_like_spawned_twin(loaded: LoadedConfig, speed: float, sessions: int | None,
                           modbus_poll_ms: int | None) -> None:
    """The I/O intervals the runtime would use for a twin it spawned at this speed,
    plus the bench's explicit overrides."""
    from runtime.twin import scale_io_to_speed

    scale_io_to_speed(loaded, speed)
    for drv in loaded.config.drivers.values():
        if drv.kind == "opcua" and sessions:
            drv.sessions = sessions
        elif drv.kind == "modbus" and modbus_poll_ms:
            drv.poll_interval_ms = modbus_poll_ms
            for g in drv.poll_groups:
                g.interval_ms = modbus_poll_ms


async def run_loopline(cfg_path: Path, db: Path, twin: Any, speed: float, warmup: float,
                       seconds: float, sessions: int | None,
                       modbus_poll_ms: int | None) -> dict[str, Any]:
    from core.clock import TwinClock, WallClock
    from core.masterdata import ensure_master_data
    from core.store.db import open_store
    from runtime.host import Runtime, RuntimeOptions

    loaded = load_config(cfg_path, db=str(db))
    tune_like_spawned_twin(loaded, speed, sessions, modbus_poll_ms)
    store = open_store(loaded.db_url)
    ensure_master_data(store, loaded, WallClock())
    rt = Runtime(loaded, store, RuntimeOptions(spawn_twin=False, ml=False, approve="never",
                                               stats_every_s=3600.0))
    rt.clock = TwinClock(twin_start_time(twin), speed)  # what _start_twin would set
    endpoint = loaded.config.drivers["opcua"].endpoint  # type: ignore[union-attr]
    rss0 = rss_mb()
    peak = [rss0]
    sampling = threading.Event()

    def sample_rss() -> None:
        while not sampling.wait(0.25):
            peak[0] = max(peak[0], rss_mb())

    th = threading.Thread(target=sample_rss, name="bench-rss", daemon=True)
    th.start()
    try:
        try:
            await rt.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await rt.stop()  # a failed start: stop what started
            raise
        await asyncio.sleep(warmup)
        assert rt.pipe is not None
        t0 = await read_twin_clock(endpoint)
        a = Mark.now(twin.proc.pid)
        st_a, recv_a = rt.pipe.stats(), rt.counters.samples
        drv_a = {k: d.stats.values_received for k, d in rt.drivers.items()}
        await asyncio.sleep(seconds)
        st_b, recv_b = rt.pipe.stats(), rt.counters.samples
        drv_b = {k: d.stats.values_received for k, d in rt.drivers.items()}
        b = Mark.now(twin.proc.pid)
        t1 = await read_twin_clock(endpoint)
        backlog = st_b["received"] - st_b["stored"] - st_b["quarantined"] - st_b["dropped"]
        drivers = {k: {**d.state.as_dict(), **d.stats.as_dict()} for k, d in rt.drivers.items()}
        summary = await rt.stop()
    finally:
        sampling.set()
        th.join()
        store.close()
    peak[0] = max(peak[0], rss_mb())
    con = sqlite3.connect(str(db))
    try:
        rows = con.execute("SELECT (SELECT count(*) FROM sample) + (SELECT count(*) FROM "
                           "sample_text) + (SELECT coalesce(sum(n), 0) FROM sample_chunk)"
                           ).fetchone()[0]
    finally:
        con.close()
    ing = summary["ingest"]
    dt = b.wall - a.wall
    cpu, twin_cpu = a.cpu_pct(b)
    n_tags = len(loaded.tags)
    modbus_tags = sum(1 for t in loaded.tags if t.driver_id == "modbus")
    mb = loaded.config.drivers["modbus"]
    assert mb.kind == "modbus"
    return {
        "tags": n_tags, "modbus_tags": modbus_tags,
        "modbus_poll_ms": mb.poll_interval_ms,
        "opcua_publishing_ms": loaded.config.drivers["opcua"].publishing_interval_ms,  # type: ignore[union-attr]
        "committed_per_s": (st_b["stored"] - st_a["stored"]) / dt,
        "received_per_s": (recv_b - recv_a) / dt,
        "by_driver_per_s": {k: (drv_b[k] - drv_a[k]) / dt for k in drv_a},
        "drivers": drivers,
        "backlog_at_window_end": backlog,
        "received": ing["received"], "stored": ing["stored"],
        "quarantined": ing["quarantined"], "dropped": ing["dropped"],
        "spilled": ing.get("spilled_total", 0), "balanced": bool(ing["balanced"]),
        "sample_rows": rows, "lost": ing["received"] - ing["stored"] - ing["quarantined"],
        "detect_dropped": summary["detect_dropped"], "errors": summary.get("errors", []),
        "max_flush_ms": ing.get("max_flush_ms"),
        "cpu_pct": cpu, "twin_cpu_pct": twin_cpu,
        "twin_speed": (t1 - t0).total_seconds() / dt,
        "rss_before_mb": rss0, "rss_peak_mb": peak[0],
    }


# ---------------------------------------------------------------- the run


def measure(scale: int, speed: float, seconds: float, warmup: float, raw_seconds: float,
            seed: int, sessions: int | None, modbus_poll_ms: int | None,
            sqlite_seconds: int, log: Any = None) -> dict[str, Any]:
    def say(msg: str) -> None:
        if log is not None:
            print(msg, file=log, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = Path(tmp)
        t_start = time.perf_counter()
        say(f"starting the twin: --scale {scale} --speed {speed:g} …")
        twin, cfg_path = start_bench_twin(work, scale=scale, speed=speed, seed=seed)
        try:
            say(f"twin pid {twin.proc.pid} up after {time.perf_counter() - t_start:.1f} s; "
                f"letting it settle {SETTLE_S:g} s")
            time.sleep(SETTLE_S)  # its first seconds are a catch-up burst
            loaded = load_config(cfg_path)
            tune_like_spawned_twin(loaded, speed, sessions, modbus_poll_ms)
            pid = twin.proc.pid
            say("raw asyncua subscription …")
            op1 = asyncio.run(raw_opcua(loaded, 3.0, raw_seconds, pid))
            if op1["values_per_s"] is None:  # once more: a busy machine can drop a session
                say(f"raw asyncua client failed ({op1['error']}); retrying once")
                op1 = asyncio.run(raw_opcua(loaded, 3.0, raw_seconds, pid))
            say("raw pymodbus block reads …")
            mb = asyncio.run(raw_modbus(loaded, raw_seconds / 2, pid))
            say(f"loopline runtime: {warmup:g} s warm-up + {seconds:g} s window …")
            lp = asyncio.run(run_loopline(cfg_path, work / "e2e.db", twin, speed, warmup,
                                          seconds, sessions, modbus_poll_ms))
            say("raw asyncua subscription again …")
            op2 = asyncio.run(raw_opcua(loaded, 3.0, raw_seconds, pid))
            say("raw sqlite3 executemany …")
            sq = raw_sqlite(work, len(loaded.tags), sqlite_seconds, 5000)
            twin_rss = rss_mb(pid)
            twin_alive = twin.running
        finally:
            twin.stop()
    got = [o["values_per_s"] for o in (op1, op2) if o["values_per_s"] is not None]
    opcua_raw = sum(got) / len(got) if got else 0.0
    modbus_demand = lp["modbus_tags"] * 1000 / lp["modbus_poll_ms"]
    # what the twin's Modbus server can deliver, in tag values (registers per tag as mapped)
    modbus_capacity = mb["registers_per_s"] * mb["tags"] / max(1, mb["registers"])
    modbus_offered = min(modbus_demand, modbus_capacity)
    offered = opcua_raw + modbus_offered
    by = lp["by_driver_per_s"]
    return {
        "scale": scale, "speed": speed, "seed": seed, "seconds": seconds, "warmup": warmup,
        "tags": lp["tags"], "target_values_per_s": TARGET,
        "raw_opcua": [op1, op2], "raw_opcua_mean_per_s": opcua_raw, "raw_modbus": mb,
        "raw_sqlite": sq, "loopline": lp,
        "offered_per_s": offered, "modbus_offered_per_s": modbus_offered,
        "modbus_demand_per_s": modbus_demand, "modbus_capacity_values_per_s": modbus_capacity,
        "twin_rss_mb": twin_rss, "twin_alive_at_end": twin_alive,
        "ratios": {
            "committed_vs_offered": lp["committed_per_s"] / offered if offered else None,
            "opcua_driver_vs_raw": by.get("opcua", 0.0) / opcua_raw if opcua_raw else None,
            "modbus_driver_vs_offered": (by.get("modbus", 0.0) / modbus_offered
                                         if modbus_offered else None),
            "committed_vs_sqlite": lp["committed_per_s"] / sq["rows_per_s"],
            "committed_vs_target": lp["committed_per_s"] / TARGET,
        },
        "wall_s": time.perf_counter() - t_start,
    }


def print_table(r: dict[str, Any]) -> None:
    lp, mb, sq = r["loopline"], r["raw_modbus"], r["raw_sqlite"]
    op1, op2 = r["raw_opcua"]
    print(f"ingest end to end: twin --scale {r['scale']} --speed {r['speed']:g} in its own "
          f"process, {r['tags']:,} tags ({r['tags'] - lp['modbus_tags']:,} OPC UA, "
          f"{lp['modbus_tags']} Modbus); loopline window {r['seconds']:g} s after "
          f"{r['warmup']:g} s warm-up; OPC UA publishing {lp['opcua_publishing_ms']} ms, "
          f"Modbus poll {lp['modbus_poll_ms']} ms")
    print(f"{'path':52} {'rate':>12} {'unit':14} {'cpu%':>5} {'twin cpu%':>9} "
          f"{'twin speed':>10}")

    def row(name: str, rate: float | None, unit: str, cpu: float | None = None,
            tcpu: float | None = None, tspeed: float | None = None) -> None:
        c = f"{cpu:5.0f}" if cpu is not None else f"{'':5}"
        tc = f"{tcpu:9.0f}" if tcpu is not None else f"{'':9}"
        ts = f"{tspeed:9.1f}x" if tspeed is not None else f"{'':10}"
        rt = f"{rate:>12,.0f}" if rate is not None else f"{'failed':>12}"
        print(f"{name:52} {rt} {unit:14} {c} {tc} {ts}")

    row("raw asyncua subscription, before (= twin offers)", op1["values_per_s"], "values/s",
        op1["cpu_pct"], op1["twin_cpu_pct"], op1["twin_speed"])
    row("raw asyncua subscription, after", op2["values_per_s"], "values/s",
        op2["cpu_pct"], op2["twin_cpu_pct"], op2["twin_speed"])
    row("raw pymodbus block reads, back to back", mb["registers_per_s"], "registers/s",
        mb["cpu_pct"], mb["twin_cpu_pct"])
    row("  as tag values (registers per tag as mapped)", r["modbus_capacity_values_per_s"],
        "values/s")
    row(f"Modbus demand ({lp['modbus_tags']} tags / {lp['modbus_poll_ms']} ms poll)",
        r["modbus_demand_per_s"], "values/s")
    row("Modbus offered = min(demand, server capacity)", r["modbus_offered_per_s"], "values/s")
    row("twin offers in all (OPC UA mean + Modbus offered)", r["offered_per_s"], "values/s")
    row("raw sqlite3 executemany, same row shape", sq["rows_per_s"], "rows/s")
    row("loopline: values received from the drivers", lp["received_per_s"], "values/s",
        lp["cpu_pct"], lp["twin_cpu_pct"], lp["twin_speed"])
    for k, v in sorted(lp["by_driver_per_s"].items()):
        row(f"  of which from the {k} driver", v, "values/s")
    row("loopline: contextualized rows committed", lp["committed_per_s"], "values/s")
    for o in (op1, op2):
        if o.get("error"):
            print(f"raw asyncua client failed: {o['error']} (the twin was too busy to serve it)")
    rt = r["ratios"]
    print(f"OPC UA driver / raw asyncua {rt['opcua_driver_vs_raw'] or 0:.2f}x   Modbus driver / "
          f"what the twin's Modbus server offers {rt['modbus_driver_vs_offered'] or 0:.2f}x")
    print(f"committed / twin offered {rt['committed_vs_offered'] or 0:.2f}x   committed / raw "
          f"sqlite {rt['committed_vs_sqlite']:.2f}x   committed / target {TARGET:,} "
          f"{rt['committed_vs_target']:.2f}x")
    print(f"loss after drain: received {lp['received']:,} = stored {lp['stored']:,} + "
          f"quarantined {lp['quarantined']} -> lost {lp['lost']}; writer dropped "
          f"{lp['dropped']}, spilled {lp['spilled']}, detection batches dropped "
          f"{lp['detect_dropped']}; sample rows in the DB {lp['sample_rows']:,}; backlog at "
          f"window end {lp['backlog_at_window_end']:,}; max flush "
          f"{lp['max_flush_ms'] or 0:.0f} ms")
    print(f"memory: loopline process RSS {lp['rss_before_mb']:.0f} MB before the runtime, "
          f"peak {lp['rss_peak_mb']:.0f} MB; twin RSS {r['twin_rss_mb']:.0f} MB at the end")
    verdict = []
    if lp["committed_per_s"] < TARGET:
        verdict.append(f"below the {TARGET:,}/s target")
        if (rt["committed_vs_offered"] or 0) > 0.95 and lp["twin_cpu_pct"] > 80:
            verdict.append("loopline committed what the twin offered; the twin (one Python "
                           f"process at {lp['twin_cpu_pct']:.0f} % of a core) is the limit")
    else:
        verdict.append(f"meets the {TARGET:,}/s target")
    if lp["lost"] or lp["dropped"] or lp["sample_rows"] != lp["stored"]:
        verdict.append("LOSS")
    else:
        verdict.append("0 lost")
    if lp["errors"]:
        verdict.append(f"runtime errors: {lp['errors'][:3]}")
    print("verdict: " + "; ".join(verdict))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench ingest_e2e",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=int, default=10, help="copies of every line (10: 2,042 tags)")
    ap.add_argument("--speed", type=float, default=600.0, help="twin speed (default 600)")
    ap.add_argument("--seconds", type=float, default=60.0, help="loopline window (wall s)")
    ap.add_argument("--warmup", type=float, default=10.0, help="loopline warm-up (wall s)")
    ap.add_argument("--raw-seconds", type=float, default=12.0,
                    help="window of each raw OPC UA run; raw Modbus gets half")
    ap.add_argument("--sqlite-seconds", type=int, default=30,
                    help="plant seconds of rows (one per tag) for the sqlite3 baseline")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=None,
                    help="OPC UA sessions of the loopline driver (default: config's)")
    ap.add_argument("--modbus-poll-ms", type=int, default=None,
                    help="Modbus poll interval for loopline (default: config's, speed-scaled)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if min(args.scale, args.seconds, args.raw_seconds, args.sqlite_seconds) <= 0 or \
            args.warmup < 0 or not 1 <= args.speed <= 3600:
        ap.error("--scale, --seconds, --raw-seconds, --sqlite-seconds must be positive, "
                 "--speed within 1..3600")
    for name in ("asyncua", "pymodbus"):  # timeouts are counted in the figures instead
        logging.getLogger(name).setLevel(logging.CRITICAL)
    r = measure(args.scale, args.speed, args.seconds, args.warmup, args.raw_seconds, args.seed,
                args.sessions, args.modbus_poll_ms, args.sqlite_seconds, log=sys.stderr)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        print_table(r)
    lp = r["loopline"]
    return 1 if (lp["lost"] or lp["dropped"] or lp["sample_rows"] != lp["stored"]) else 0


if __name__ == "__main__":
    sys.exit(main())
