"""Runs the core at ``speed`` × wall clock and lets the protocol servers publish it.

The core advances in whole twin seconds; the scheduler only decides how many steps
are due. A run with a duration stops after exactly ``duration × speed`` twin seconds,
so the same seed and speed give the same ground truth however busy the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import LoadedConfig
from sim.master import Master
from sim.modbus_server import ModbusTwinServer
from sim.opcua_server import OpcUaTwinServer, Security
from sim.parent_watch import ENV, parent_gone
from sim.plant import Plant
from sim.reliability import Reliability
from sim.truth import TruthLog

if TYPE_CHECKING:
    from sim.sparkplug_twin import SparkplugLine

_log = logging.getLogger("sim")


@dataclass
class TwinOptions:
    seed: int = 42
    speed: float = 60.0
    duration_s: float | None = None  # wall seconds; None: until stopped
    truth: Path | None = None
    host: str = "127.0.0.1"
    opcua_port: int = 4840
    modbus_port: int = 5020
    modbus_unit_id: int = 1
    # kind, equipment, twin s[, share of a wear fault's course already run]
    injections: list[tuple[str, str, int] | tuple[str, str, int, float]] = field(
        default_factory=list)
    scale: int = 1
    start: datetime | None = None
    random_faults_per_day: float = 0.0
    reliability: Reliability | None = None
    security: Security | None = None
    ready_file: Path | None = None  # written (JSON) once both endpoints listen
    opcua: bool = True
    modbus: bool = True
    exit_with_parent: bool = False  # the launcher's child must not outlive the console
    sparkplug: tuple[str, int] | None = None  # MQTT broker for one line over Sparkplug B
    sparkplug_line: str | None = None


def default_start() -> datetime:
    """The current UTC hour: two runs started within the same hour are identical."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def default_sparkplug_line(cfg: LoadedConfig) -> str:
    """The first line on a Modbus driver (the default plant's line C), else the first."""
    drivers = cfg.config.drivers
    lines = cfg.config.lines
    return next((ln.id for ln in lines if drivers[ln.driver].kind == "modbus"), lines[0].id)


def build_plant(cfg: LoadedConfig, master: Master, opts: TwinOptions,
                truth: TruthLog) -> Plant:
    plant = Plant(cfg, master, seed=opts.seed, start=opts.start or default_start(),
                  scale=opts.scale, random_faults_per_day=opts.random_faults_per_day,
                  truth=truth, speed=opts.speed, reliability=opts.reliability)
    for kind, eq, at, *done in opts.injections:
        plant.inject(kind, eq, at, float(done[0]) if done else 0.0)
    return plant


class Twin:
    """Plant plus servers plus scheduler; ``run()`` until the duration or ``stop()``."""

    def __init__(self, cfg: LoadedConfig, master: Master, opts: TwinOptions) -> None:
        self.opts = opts
        self.truth = TruthLog(opts.truth)
        self.plant = build_plant(cfg, master, opts, self.truth)
        self.opcua = OpcUaTwinServer(self.plant, opts.host, opts.opcua_port, opts.security) \
            if opts.opcua else None
        self.modbus = ModbusTwinServer(self.plant, opts.host, opts.modbus_port,
                                       opts.modbus_unit_id) if opts.modbus else None
        self.sparkplug: SparkplugLine | None = None
        if opts.sparkplug is not None:
            from sim.sparkplug_twin import SparkplugLine

            self.sparkplug = SparkplugLine(self.plant, *opts.sparkplug,
                                           opts.sparkplug_line or default_sparkplug_line(cfg))
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.lag_s = 0.0  # how far the twin fell behind its schedule (twin seconds)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        opts = self.opts
        try:
            if self.opcua:
                await self.opcua.start()
            if self.modbus:
                await self.modbus.start()
            if self.sparkplug:
                await self.sparkplug.start()
            if opts.ready_file:
                tmp = opts.ready_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({
                    "pid": os.getpid(),
                    "opcua_endpoint": self.opcua.endpoint if self.opcua else None,
                    "modbus_port": opts.modbus_port if self.modbus else None,
                    "start": self.plant.iso(0),
                }))
                tmp.replace(opts.ready_file)
            self.ready.set()
            await self._schedule()
        finally:
            if self.opcua:
                await self.opcua.stop()
            if self.modbus:
                await self.modbus.stop()
            if self.sparkplug:
                await asyncio.to_thread(self.sparkplug.stop)
            self.plant.truth_event("stop", twin_seconds=self.plant.t)
            self.truth.close()

    async def _schedule(self) -> None:
        opts, plant = self.opts, self.plant
        base = plant.t  # a plant run forward before the servers start goes on from there
        limit = base + int(opts.duration_s * opts.speed) if opts.duration_s is not None \
            else None
        tick = max(0.05, min(1.0, 1.0 / opts.speed))
        t0 = time.monotonic()
        parent = int(os.environ.get(ENV, "0") or 0) or os.getppid()
        while not self._stop.is_set():
            if opts.exit_with_parent and parent_gone(parent):
                _log.warning("parent process gone; stopping the twin")
                return
            due = base + int((time.monotonic() - t0) * opts.speed)
            if limit is not None:
                due = min(due, limit)
            n = 0
            while plant.t < due:
                plant.step()
                n += 1
                if n % 2000 == 0:
                    await asyncio.sleep(0)  # keep the servers answering during catch-up
            self.lag_s = max(0.0, (time.monotonic() - t0) * opts.speed - (plant.t - base))
            if self.opcua:
                await self.opcua.publish()
            if self.modbus:
                self.modbus.publish()
            if self.sparkplug:
                self.sparkplug.publish()
            self.truth.flush()
            if limit is not None and plant.t >= limit:
                return
            next_at = t0 + (plant.t - base + 1) / opts.speed
            wait = max(0.0, min(tick, next_at - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(wait, 0.005))


async def run_twin(cfg: LoadedConfig, master: Master, opts: TwinOptions) -> int:
    """Run until the duration ends or SIGINT/SIGTERM; 0 on a clean stop."""
    twin = Twin(cfg, master, opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, twin.stop)
    await twin.run()
    return 0
