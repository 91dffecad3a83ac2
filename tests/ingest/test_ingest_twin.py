"""Twin → Modbus driver → ingest pipeline → store: real values arrive with lot and order ids.

The twin runs in-process with only its Modbus server on a free loopback port; line C's
tags are read by the real ModbusDriver through config alone and handed to the
pipeline as the runtime will.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path

from ingest_helpers import T0

from core.clock import FrozenClock
from core.config import LoadedConfig
from core.ingest.pipeline import IngestPipeline
from core.store.db import Store
from drivers.modbus import ModbusDriver
from sim.master import load_master
from sim.runner import Twin, TwinOptions


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _contextualized(db: Path) -> list[tuple[str, str, str, str | None, str, str]]:
    con = sqlite3.connect(str(db))
    try:
        return con.execute(
            "SELECT s.tag_id, s.lot_id, s.order_id, l.order_id, o.id, s.shift_id FROM sample s "
            "LEFT JOIN lot l ON l.id = s.lot_id "
            "LEFT JOIN production_order o ON o.id = s.order_id WHERE s.lot_id IS NOT NULL "
            "AND s.tag_id LIKE 'C-%.vibration_rms'").fetchall()
    finally:
        con.close()


async def test_twin_values_arrive_with_lot_and_order(store: Store, loaded_config: LoadedConfig,
                                                     frozen_clock: FrozenClock,
                                                     tmp_path: Path) -> None:
    loaded_config.config.store.spill_dir = str(tmp_path / "spill")
    loaded_config.config.store.archive_dir = str(tmp_path / "history")
    port = _free_port()
    opts = TwinOptions(seed=7, speed=600, host="127.0.0.1", opcua=False, modbus_port=port,
                       start=T0, truth=tmp_path / "truth.jsonl")
    twin = Twin(loaded_config, load_master(loaded_config.master_data_path), opts)
    task = asyncio.create_task(twin.run())
    await asyncio.wait_for(twin.ready.wait(), 60)
    drv_cfg = loaded_config.config.drivers["modbus"].model_copy(update={"port": port})
    driver = ModbusDriver("modbus", drv_cfg,
                          [t for t in loaded_config.tags if t.driver_id == "modbus"])
    pipe = IngestPipeline(loaded_config, store, frozen_clock, flush_ms=50).start()
    assert store.path is not None
    try:
        await driver.start(pipe.handle)
        deadline = time.monotonic() + 90
        got: list[tuple[str, str, str, str | None, str, str]] = []
        while time.monotonic() < deadline:  # wait on the condition, not a fixed time
            await asyncio.sleep(0.2)
            got = await asyncio.to_thread(_contextualized, store.path)
            if len({g[0] for g in got}) >= 2:
                break
        assert len({g[0] for g in got}) >= 2, "no contextualized line C samples arrived"
        for tag, lot, order, lot_order, known_order, shift in got:
            # the order is one the store knows; a lot the store knows belongs to it (the
            # twin numbers its own lots, so its lot ids need not be in master data)
            assert lot.startswith("L-") and known_order == order, (tag, lot, order)
            assert lot_order in (None, order), (tag, lot, order, lot_order)
            assert shift in ("early", "late", "night")
    finally:
        await driver.stop()
        final = await asyncio.to_thread(pipe.close)
        twin.stop()
        await asyncio.wait_for(task, 30)
    assert final["balanced"] and final["dropped"] == 0 and final["stored"] > 0
