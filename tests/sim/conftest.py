"""Fixtures for the twin's tests: the default plant, free ports, an in-process twin."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import LoadedConfig, load_config
from sim.master import Master, load_master
from sim.runner import Twin, TwinOptions

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def cfg() -> LoadedConfig:
    return load_config(ROOT / "config.toml")


@pytest.fixture(scope="session")
def master(cfg: LoadedConfig) -> Master:
    return load_master(cfg.master_data_path)


@pytest.fixture
async def twin(cfg: LoadedConfig, master: Master, tmp_path: Path) -> AsyncIterator[Twin]:
    """Both servers on free loopback ports, twin at 60× with a comms drop on C-OVEN1."""
    opts = TwinOptions(seed=7, speed=60, host="127.0.0.1", opcua_port=free_port(),
                       modbus_port=free_port(), start=START, truth=tmp_path / "truth.jsonl",
                       injections=[("comms-drop", "C-OVEN1", 0), ("comms-drop", "B-PACK1", 0)])
    t = Twin(cfg, master, opts)
    task = asyncio.create_task(t.run())
    ready = asyncio.create_task(t.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the start-up error
    assert ready in done, "twin did not start"
    while t.plant.t < 120:  # two twin minutes: lots on the machines, values published
        await asyncio.sleep(0.05)
    try:
        yield t
    finally:
        t.stop()
        await asyncio.wait_for(task, timeout=30)
