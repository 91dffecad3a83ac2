"""Shared by the benchmarks that run against the plant twin in its own process.

Not a benchmark itself (no ``bench_`` prefix): starting the twin on free loopback
ports with its scaled tag map written out, reading its clock over plain OPC UA, and
per-process CPU and memory from /proc, so each bench reports who was busy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.clock import parse_utc
from core.config import load_config
from runtime.twin import TwinProcess, free_port, start_twin

ROOT = Path(__file__).resolve().parents[1]
CLOCK_NODE = "ns=2;s=Plant.Clock"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    with open(f"/proc/{pid or 'self'}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int | None = None, key: str = "VmRSS") -> float:
    """Resident memory (VmRSS) or its high-water mark (VmHWM) in MB, from /proc."""
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Mark:
    """Wall time and CPU of this process and the twin at one instant."""

    wall: float
    cpu: float
    twin_cpu: float

    @classmethod
    def now(cls, twin_pid: int) -> Mark:
        return cls(time.perf_counter(), cpu_s(), cpu_s(twin_pid))

    def cpu_pct(self, later: Mark) -> tuple[float, float]:
        """(this process, twin) CPU in % of one core between two marks."""
        dt = max(1e-9, later.wall - self.wall)
        return 100 * (later.cpu - self.cpu) / dt, 100 * (later.twin_cpu - self.twin_cpu) / dt


def start_bench_twin(workdir: Path, *, scale: int, speed: float, seed: int,
                     extra: list[str] | None = None,
                     timeout_s: float = 180.0) -> tuple[TwinProcess, Path]:
    """`python -m sim --scale K --speed X --write-config PATH` on free 127.0.0.1 ports;
    returns the process handle and the config file that matches what it serves."""
    base = load_config(ROOT / "config.toml")
    cfg_path = workdir / "twin-scaled.toml"
    args = ["--scale", str(scale), "--speed", f"{speed:g}", "--seed", str(seed),
            "--host", "127.0.0.1", "--write-config", str(cfg_path), *(extra or [])]
    base.config.simulator.host = "127.0.0.1"
    twin = start_twin(base, opcua_port=free_port(), modbus_port=free_port(), extra_args=args,
                      timeout_s=timeout_s)
    return twin, cfg_path


def twin_start_time(twin: TwinProcess) -> datetime:
    """The twin's plant time at its t = 0 (from its ready file)."""
    return parse_utc(str(twin.info["start"]))


async def read_twin_clock(endpoint: str) -> datetime:
    """The twin's plant time, read over a plain asyncua session (no loopline code)."""
    from asyncua import Client, ua

    c = Client(endpoint, timeout=10)
    await c.connect()
    try:
        v: Any = await c.get_node(ua.NodeId.from_string(CLOCK_NODE)).read_value()
    finally:
        await c.disconnect()
    return parse_utc(str(v))
