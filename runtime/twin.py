"""Starts the plant twin as a child process when ``[simulator] enabled = true``.

The console and the runtime then talk to it like to any plant: over OPC UA and
Modbus TCP. ``start_twin`` returns once both endpoints answer (or raises with the
child's last output), and the twin is stopped when the ``TwinProcess`` is closed or
the console exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import LoadedConfig

ROOT = Path(__file__).resolve().parents[1]
PARENT_ENV = "LOOPLINE_PARENT_PID"  # read by sim/parent_watch.py (sim is not imported here)


class TwinStartError(Exception):
    """The twin did not come up; str() says why (with its last output)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def child_env() -> dict[str, str]:
    """The twin's environment: this package on its path, and this process's pid, which the
    twin watches from its first instruction (sim/parent_watch.py) so it never outlives
    us, even when we are SIGKILLed while it is still starting."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[PARENT_ENV] = str(os.getpid())
    return env


@dataclass
class TwinProcess:
    proc: subprocess.Popen[bytes]
    host: str
    opcua_port: int
    modbus_port: int
    workdir: Path
    info: dict = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)  # "OPC UA 4840 → 38211": ports taken

    @property
    def opcua_endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.opcua_port}/loopline/"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def output_tail(self, n: int = 20) -> str:
        try:
            lines = (self.workdir / "twin.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self) -> TwinProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_taken(host: str, port: int) -> bool:
    """Something listens there, or the port cannot be bound (another twin, another app)."""
    if _answers(host, port):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def start_twin(cfg: LoadedConfig, *, opcua_port: int | None = None,
               modbus_port: int | None = None, extra_args: list[str] | None = None,
               timeout_s: float | None = None, free_if_busy: bool = False) -> TwinProcess:
    """Spawn ``python -m sim`` for this config and wait until both endpoints answer.

    ``free_if_busy`` (the console's own twin): a configured port another program holds is
    replaced by a free loopback port, and ``TwinProcess.moved`` says which; a port asked
    for explicitly is never moved."""
    sim = cfg.config.simulator
    host = sim.host
    op = opcua_port or sim.opcua_port
    mp = modbus_port or sim.modbus_port
    moved: list[str] = []
    ports = {"OPC UA": op, "Modbus": mp}
    for what, port in ports.items():
        explicit = (opcua_port if what == "OPC UA" else modbus_port) is not None
        if _port_taken(host, port):
            if not free_if_busy or explicit:
                raise TwinStartError(f"{what} port {host}:{port} is already in use; stop "
                                     "what runs there, pass --opcua-port/--modbus-port or "
                                     "change [simulator] ports")
            ports[what] = free_port(host)
            moved.append(f"{what} {port} → {ports[what]}")
    op, mp = ports["OPC UA"], ports["Modbus"]
    workdir = Path(tempfile.mkdtemp(prefix="loopline-twin-"))
    ready = workdir / "ready.json"
    cmd = [sys.executable, "-m", "sim", "--config", str(cfg.path.resolve()),
           "--opcua-port", str(op), "--modbus-port", str(mp), "--ready-file", str(ready),
           "--exit-with-parent", *(extra_args or [])]
    env = child_env()
    log = (workdir / "twin.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(cfg.base_dir),
                            env=env, start_new_session=True)
    log.close()
    tp = TwinProcess(proc, host, op, mp, workdir, moved=moved)
    deadline = time.monotonic() + (timeout_s or sim.startup_timeout_s)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = tp.output_tail()
            tp.stop()
            raise TwinStartError(f"the plant twin exited with code {proc.returncode}:\n{tail}")
        if ready.exists() and _answers(host, op) and _answers(host, mp):
            with contextlib.suppress(OSError, ValueError):
                tp.info = json.loads(ready.read_text())
            atexit.register(tp.stop)
            return tp
        time.sleep(0.1)
    tail = tp.output_tail()
    tp.stop()
    raise TwinStartError(f"the plant twin did not answer on {host}:{op} (OPC UA) and "
                         f"{host}:{mp} (Modbus) within "
                         f"{timeout_s or sim.startup_timeout_s:.0f} s:\n{tail}")


def maybe_start_twin(cfg: LoadedConfig) -> TwinProcess | None:
    """The twin for the console when the config asks for it, else None."""
    if not cfg.config.simulator.enabled:
        return None
    return start_twin(cfg)


_ENDPOINT = re.compile(r"^(opc\.tcp://)([^:/]+):(\d+)(.*)$")


def point_drivers_at_twin(loaded: LoadedConfig, host: str, opcua_port: int,
                          modbus_port: int) -> None:
    """Drivers that address the configured twin ports follow the ports it really uses."""
    sim = loaded.config.simulator
    for drv in loaded.config.drivers.values():
        if drv.kind == "opcua":
            m = _ENDPOINT.match(drv.endpoint)
            if m and int(m.group(3)) == sim.opcua_port:
                drv.endpoint = f"{m.group(1)}{host}:{opcua_port}{m.group(4)}"
        elif drv.kind == "modbus" and drv.port == sim.modbus_port:
            drv.port = modbus_port



IO_TUNED_SPEED = 60.0  # the config's intervals are tuned for a twin at this speed
IO_FLOOR_MS = 50


def scale_io_to_speed(loaded: LoadedConfig, speed: float) -> None:
    """A twin running faster than the config's intervals were tuned for would be sampled
    too coarsely (a 500 ms poll is 15 plant minutes at 1800×): shorten publishing,
    sampling and polling intervals in proportion, down to 50 ms, so plant-time
    resolution stays near the tuned one."""
    if speed <= IO_TUNED_SPEED:
        return
    f = IO_TUNED_SPEED / speed

    def scaled(ms: int) -> int:
        return max(IO_FLOOR_MS, int(ms * f)) if ms > IO_FLOOR_MS else ms

    for drv in loaded.config.drivers.values():
        if drv.kind == "opcua":
            drv.publishing_interval_ms = scaled(drv.publishing_interval_ms)
            drv.sampling_interval_ms = min(drv.sampling_interval_ms,
                                           drv.publishing_interval_ms)
        elif drv.kind == "modbus":
            drv.poll_interval_ms = scaled(drv.poll_interval_ms)
            for g in drv.poll_groups:
                g.interval_ms = scaled(g.interval_ms)
