"""Twin → Modbus driver → ingest pipeline → store: real values arrive with lot and order ids.

The twin runs in-process with only its Modbus server on a free loopback port; line C's
tags are read by the real ModbusDriver through config alone and handed to the
pipeline as the runtime will.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from ingest_helpers import T0

from core.clock import FrozenClock
from core.config import LoadedConfig
from core.history import CONTEXT, OUT_SCHEMA, history
from core.ingest.pipeline import IngestPipeline
from core.samples import ContextSample, Sample
from core.store.db import Store
from core.store.raw import connect_raw
from core.store.sample_writer import to_row
from drivers.modbus import ModbusDriver
from sim.master import load_master
from sim.runner import Twin, TwinOptions


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FAR = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _contextualized(store: Store, tags: list[str]
                    ) -> list[tuple[str, str, str, str | None, str, str]]:
    """Samples read back through core.history, joined with the lots and orders they name."""
    h = history(store, None, tags, *FAR).filter(pl.col("lot_id").is_not_null())
    con = connect_raw(store.target)
    try:
        lots = dict(con.execute("SELECT id, order_id FROM lot").fetchall())
        orders = {r[0] for r in con.execute("SELECT id FROM production_order")}
    finally:
        con.close()
    return [(t, lot, order, lots.get(lot), order if order in orders else None, shift)
            for t, lot, order, shift in h.select("tag_id", "lot_id", "order_id",
                                                 "shift_id").rows()]


def _as_stamped(stamped: list[ContextSample], instant: bool = False) -> pl.DataFrame:
    """What the wide sample table stored for these samples: each with its own context
    (``instant``: with the context of the machine's last sample of the same instant)."""
    last = {(s.ctx.equipment_id, s.source_ts): s.ctx for s in stamped}
    rows = []
    for s in stamped:
        ctx = last[(s.ctx.equipment_id, s.source_ts)] if instant else s.ctx
        _, _, value, text, quality, reason, _ = to_row(s)
        rows.append({"tag_id": s.tag_id, "ts": s.source_ts, "value": value,
                     "quality": quality, **{k: getattr(ctx, k) for k in CONTEXT},
                     "text_value": text, "reason": reason})
    return pl.DataFrame(rows, schema=OUT_SCHEMA).sort(["ts", "tag_id"], maintain_order=True)


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
    stamped: list[ContextSample] = []
    vib = [t.id for t in loaded_config.tags if t.id.startswith("C-")
           and t.id.endswith(".vibration_rms")]

    def handle(samples: list[Sample]) -> None:
        stamped.extend(pipe.handle(samples))
    try:
        await driver.start(handle)
        deadline = time.monotonic() + 90
        got: list[tuple[str, str, str, str | None, str, str]] = []
        while time.monotonic() < deadline:  # wait on the condition, not a fixed time
            await asyncio.sleep(0.2)
            got = await asyncio.to_thread(_contextualized, store, vib)
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
    # the same run read back from the narrow tables equals what the wide rows held
    # (every sample with the context it was stamped with), for every tag of line C
    # (a vision station's polled repeats are kept once: core.vision, tests/vision)
    stamped = [s for s in stamped if not s.tag_id.endswith(".vision")]
    tags = sorted({s.tag_id for s in stamped})
    got = history(store, None, tags, *FAR)
    assert got.equals(_as_stamped(stamped, instant=True))
    # the one difference: a poll block shares one time, and the block's samples read
    # before its lot register carried the old lot; an interval gives the whole instant
    # the new one (the context in force at that time)
    changed = got.join(_as_stamped(stamped), on=["tag_id", "ts"], suffix="_wide").filter(
        pl.col("lot_id") != pl.col("lot_id_wide"))
    assert changed.height <= 20 * len({s.ctx.lot_id for s in stamped})
