"""Twin → OPC UA and Modbus drivers → ingest → inspections, checked against the truth log.

The twin runs in-process on free loopback ports, run forward first (warm-up) with tool
wear injected on the lathe of line A and the press of line C, so its stations inspect
from the start. The real drivers read only the two stations' machines by config.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import func, select

from core.clock import FrozenClock
from core.config import LoadedConfig
from core.ingest.pipeline import IngestPipeline
from core.production import PRODUCTION_COUNT
from core.samples import Sample
from core.store.db import Store
from core.vision import inspections
from drivers.modbus import ModbusDriver
from drivers.opcua import OpcUaDriver
from runtime.twin import free_port
from sim.master import load_master
from sim.runner import Twin, TwinOptions
from sim.truth import read_truth

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
STATIONS = ("A-WASH1", "C-PACK1")


def _truth_units(path: Path) -> dict[tuple[str, str], dict]:
    return {(e["station"], e["unit"]): e for e in read_truth(path) if e["event"] == "vision_unit"}


async def test_twin_stations_over_opcua_and_modbus(store: Store, loaded_config: LoadedConfig,
                                                   frozen_clock: FrozenClock,
                                                   tmp_path: Path) -> None:
    cfg = loaded_config
    cfg.config.store.spill_dir = str(tmp_path / "spill")
    cfg.config.store.archive_dir = str(tmp_path / "history")
    ua_port, mb_port = free_port(), free_port()
    truth = tmp_path / "truth.jsonl"
    opts = TwinOptions(seed=7, speed=60, host="127.0.0.1", opcua_port=ua_port,
                       modbus_port=mb_port, start=T0, truth=truth,
                       injections=[("tool", "A-LATHE1", 60, 0.55), ("tool", "C-PRESS1", 60, 0.55)])
    twin = Twin(cfg, load_master(cfg.master_data_path), opts)
    twin.plant.run(11_500)  # warm-up: lots have reached both stations
    task = asyncio.create_task(twin.run())
    await asyncio.wait_for(twin.ready.wait(), 60)
    tags = [t for t in cfg.tags if t.equipment_id in STATIONS or t.equipment_id is None]
    ua_cfg = cfg.config.drivers["opcua"].model_copy(
        update={"endpoint": f"opc.tcp://127.0.0.1:{ua_port}/loopline/"})
    mb_cfg = cfg.config.drivers["modbus"].model_copy(update={"port": mb_port})
    ua = OpcUaDriver("opcua", ua_cfg, [t for t in tags if t.driver_id == "opcua"])  # type: ignore[arg-type]
    mb = ModbusDriver("modbus", mb_cfg, [t for t in tags if t.driver_id == "modbus"])  # type: ignore[arg-type]
    pipe = IngestPipeline(cfg, store, frozen_clock, flush_ms=50).start()

    def handle(samples: list[Sample]) -> None:
        pipe.handle(samples)

    df = pl.DataFrame()
    try:
        await ua.start(handle)
        await mb.start(handle)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:  # wait on the condition, not a fixed time
            await asyncio.sleep(0.5)
            await asyncio.to_thread(pipe.maintain, archive=False)
            df = await asyncio.to_thread(inspections, store)
            per = df.filter(pl.col("defect_class") == "burr").group_by("equipment_id").len()
            if per.height == 2 and per["len"].min() >= 3 \
                    and df["inspection_id"].n_unique() >= 40:
                break
    finally:
        await ua.stop()
        await mb.stop()
        await asyncio.to_thread(pipe.close)
        twin.stop()
        await asyncio.wait_for(task, 30)
    df = inspections(store)
    assert set(df["equipment_id"]) == set(STATIONS), df
    units = df.unique("inspection_id", keep="first")
    assert units["unit_id"].n_unique() == units.height  # every unit once
    truth_units = _truth_units(truth)
    rejects = units.filter(~pl.col("passed"))
    assert rejects.height >= 6
    lots: list[tuple[str, str | None, str]] = []
    for r in rejects.iter_rows(named=True):
        eq = r["equipment_id"]
        unit = r["unit_id"] if eq == "A-WASH1" else f"{eq}-{int(r['unit_id']):05d}"
        e = truth_units[(eq, unit)]  # the twin's truth agrees: a flagged unit
        classes = sorted(df.filter(pl.col("inspection_id") == r["inspection_id"])
                         ["defect_class"].to_list())
        assert classes == e["flagged"] and not e["passed"], (r, e)
        lots.append((eq, r["lot_id"], e["lot"]))
        assert r["order_id"] and r["order_id"].startswith("PO-")
        assert r["shift_id"] in ("early", "late", "night")
        if eq == "A-WASH1":
            assert r["image_ref"] == f"img/A-WASH1/{e['lot']}/{unit[-5:]}.png"
    # the unit's lot is its machine's context: over OPC UA the lot and the result arrive
    # in order; over Modbus the lot register is polled every 500 ms, the station every
    # 100 ms, so a unit just after a lot change may still carry the lot before
    ua_lots = [(got, want) for eq, got, want in lots if eq == "A-WASH1"]
    assert ua_lots and all(got == want for got, want in ua_lots), ua_lots
    mb_lots = [(got, want) for eq, got, want in lots if eq == "C-PACK1"]
    assert sum(got == want for got, want in mb_lots) >= 0.8 * len(mb_lots), mb_lots
    burrs = df.filter(pl.col("defect_class") == "burr")
    assert set(burrs["equipment_id"]) == set(STATIONS)
    with store.engine.connect() as c:
        moved = c.execute(select(func.sum(PRODUCTION_COUNT.c.scrap)).where(
            PRODUCTION_COUNT.c.good < 0)).scalar()
    assert moved == rejects.height  # each reject booked as the lot's scrap
    # missed units (polled too slowly) are counted, not guessed: at 60x none on line C
    assert pipe.vision.stats.missed <= 2
