"""Shared test helpers: free ports, a config written to tmp_path, a waiting sink."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import LoadedConfig, load_config
from core.samples import Quality, Sample

PIN_HASH = (
    "scrypt$16384$8$1$6f6c67616f6c67616f6c67616f6c6761$"
    "0a45176b672df80d6af8a86c5b76b5f417780aed03f184632229b08aa8fe5ec2"
)

WAIT_S = 30.0  # upper bound for events that normally take well under a second


def free_port() -> int:
    """A TCP port nobody listens on right now (tests run in parallel on this machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return repr(v)


def write_config(
    tmp_path: Path,
    driver_id: str,
    driver: dict[str, Any],
    tags: list[dict[str, Any]],
    extra: str = "",
    equipment_extra: str = "",
    top: str = "",
    db: str | None = None,
) -> LoadedConfig:
    """A minimal plant: one line, one machine ``M1`` on ``driver_id`` with ``tags``.

    ``top`` goes before the first table (top-level keys such as ``master_data``)."""
    tag_lines = ",\n  ".join(
        "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in t.items()) + " }" for t in tags
    )
    drv = "\n".join(f"{k} = {_toml_value(v)}" for k, v in driver.items())
    text = f"""{top}
[site]
id = "test"
name = "Test site"

[[areas]]
id = "hall"
name = "Hall"

[[lines]]
id = "L"
name = "Line"
area = "hall"
driver = "{driver_id}"

  [[lines.equipment]]
  id = "M1"
  name = "Machine 1"
  type = "generic"
  ideal_cycle_s = 10
  {equipment_extra}
  tags = [
  {tag_lines}
  ]

[drivers.{driver_id}]
{drv}

[[users]]
id = "olga"
name = "Olga"
roles = ["operator"]
pin_hash = "{PIN_HASH}"
{extra}
"""
    p = tmp_path / "plant.toml"
    p.write_text(text, encoding="utf-8")
    return load_config(p, db=db)


class Collector:
    """A sink that keeps every sample and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.batches = 0
        self._changed = asyncio.Event()

    def __call__(self, batch: list[Sample]) -> None:
        self.samples.extend(batch)
        self.batches += 1
        self._changed.set()

    def of(self, tag_id: str) -> list[Sample]:
        return [s for s in self.samples if s.tag_id == tag_id]

    def last(self, tag_id: str) -> Sample | None:
        got = self.of(tag_id)
        return got[-1] if got else None

    def good(self, tag_id: str) -> list[Sample]:
        return [s for s in self.of(tag_id) if s.quality is Quality.GOOD]

    async def wait_for(self, pred: Callable[[], bool], timeout: float = WAIT_S) -> None:
        async def loop() -> None:
            while not pred():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)


async def wait_until(pred: Callable[[], bool], timeout: float = WAIT_S, step: float = 0.02) -> None:
    """Poll a condition that has no event of its own (e.g. a driver's state)."""

    async def loop() -> None:
        while not pred():
            await asyncio.sleep(step)

    await asyncio.wait_for(loop(), timeout)
