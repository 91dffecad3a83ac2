"""Vision tags over real protocols on loopback: a minimal Modbus station, MQTT JSON via
mosquitto. Unit counting (polled repeats, counter restarts, a loopline restart), the
machine's context on every inspection, rejects booked as the lot's scrap, bad input Bad."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drivers"))
from driver_helpers import Collector, free_port, wait_until, write_config
from mqtt_helpers import Broker

from core.clock import WallClock
from core.config import LoadedConfig
from core.ingest.pipeline import IngestPipeline
from core.production import PRODUCTION_COUNT
from core.samples import Quality
from core.store.db import Store, open_store
from core.vision import decode_reading, inspections
from drivers.base import ConnState, make_drivers


class Station:
    """Holding registers 0..31 on loopback that the test sets like a station's PLC."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.image = [0] * 32
        self.server: ModbusTcpServer | None = None

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      current: list[int], set_values: Any) -> None:
        off = address - start_address
        for i in range(count):
            current[off + i] = self.image[address + i]

    async def start(self) -> None:
        dev = SimDevice(id=0, simdata=[SimData(0, count=32, values=0,
                                               datatype=DataType.REGISTERS)],
                        action=self._action)
        self.server = ModbusTcpServer(dev, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    def unit(self, n: int, code: int = 0, mask: int = 0, conf: tuple[int, int] = (0, 0)
             ) -> None:
        self.image[10:15] = [n, code, mask, *conf]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()


def _modbus_plant(tmp_path: Path, port: int) -> LoadedConfig:
    return write_config(tmp_path, "mb", {
        "kind": "modbus", "host": "127.0.0.1", "port": port, "poll_interval_ms": 20,
        "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}, [
        {"name": "lot", "address": "hr:0", "kind": "context", "data_type": "uint32",
         "id_format": "L-{:05d}"},
        {"name": "order", "address": "hr:2", "kind": "context", "data_type": "uint32",
         "id_format": "PO-{:04d}"},
        {"name": "vision", "address": "hr:10", "kind": "vision", "id_format": "U{:04d}",
         "vision": {"classes": ["burr", "scratch"]}},
    ], db=str(tmp_path / "plant.db"))


def _pipe(loaded: LoadedConfig, store: Store, tmp_path: Path) -> IngestPipeline:
    loaded.config.store.spill_dir = str(tmp_path / "spill")
    loaded.config.store.archive_dir = str(tmp_path / "history")
    return IngestPipeline(loaded, store, WallClock(), flush_ms=20).start()


def _scrap_moved(store: Store) -> int:
    with store.engine.connect() as c:
        return int(c.execute(select(func.sum(PRODUCTION_COUNT.c.scrap)).where(
            PRODUCTION_COUNT.c.good < 0)).scalar() or 0)


async def _run(loaded: LoadedConfig, store: Store, tmp_path: Path, steps: list[Any]
               ) -> IngestPipeline:
    """Start driver + pipeline, run the steps (callables; ints: wait for N inspections)."""
    pipe = _pipe(loaded, store, tmp_path)
    d = make_drivers(loaded)["mb"]
    col = Collector()

    def sink(batch: list[Any]) -> None:
        col(batch)
        pipe.handle(batch)
    await d.start(sink)
    try:
        for step in steps:
            if isinstance(step, int):
                async def have(n: int = step) -> bool:
                    await asyncio.to_thread(pipe.maintain, archive=False)
                    return inspections(store)["inspection_id"].n_unique() >= n
                for _ in range(300):
                    if await have():
                        break
                    await asyncio.sleep(0.02)
                assert inspections(store)["inspection_id"].n_unique() == step
            else:
                n0 = len(col.of("M1.vision"))
                step()
                await col.wait_for(lambda n0=n0: len(col.of("M1.vision")) >= n0 + 3)
    finally:
        await d.stop()
        await asyncio.to_thread(pipe.close)
    return pipe


async def test_modbus_station_units_restart_and_context(tmp_path: Path) -> None:
    port = free_port()
    st = Station(port)
    st.image[0:4] = [0, 7, 0, 12]  # lot L-00007, order PO-0012
    await st.start()
    loaded = _modbus_plant(tmp_path, port)
    store = open_store(str(tmp_path / "plant.db"))
    try:
        pipe = await _run(loaded, store, tmp_path, [
            lambda: st.unit(0),  # nothing inspected yet
            lambda: st.unit(1, 1, 0b01, (93, 0)), 1,  # polled many times: one unit
            lambda: st.unit(2), 2,
            lambda: st.unit(3, 1, 0b11, (88, 61)), 3,
            lambda: st.unit(1), 4,  # the station restarted: its counter went back
            lambda: st.unit(2, 1, 0b10, (0, 70)), 5])
        assert pipe.vision.stats.restarts == 1 and pipe.vision.stats.missed == 0
        repeats = pipe.vision.stats.repeats
        # loopline restarts on the same store: the unit on display is not counted again
        pipe = await _run(loaded, store, tmp_path, [lambda: st.unit(2, 1, 0b10, (0, 70)), 5,
                                                    lambda: st.unit(3), 6])
        df = inspections(store)
        units = df.unique("inspection_id", keep="first", maintain_order=True)
        assert units["unit_id"].to_list() == ["U0001", "U0002", "U0003", "U0001", "U0002",
                                              "U0003"]
        assert units["passed"].to_list() == [False, True, False, True, False, True]
        assert set(df["lot_id"]) == {"L-00007"} and set(df["order_id"]) == {"PO-0012"}
        third = df.filter(df["unit_id"] == "U0003").head(2)
        assert third["defect_class"].to_list() == ["burr", "scratch"]
        assert third["confidence"].to_list() == pytest.approx([0.88, 0.61])
        assert _scrap_moved(store) == 3  # three rejects moved from good to scrap
        # polled every 20 ms, the station's readings are kept in history once each
        from datetime import UTC, datetime

        from core.history import history
        kept = history(store, None, ["M1.vision"], datetime(2000, 1, 1, tzinfo=UTC),
                       datetime(2100, 1, 1, tzinfo=UTC))
        assert repeats > 5 and 6 <= kept.height <= 10, (repeats, kept)
        # a bitmask naming a class beyond the configured ones is Bad, not guessed
        pipe = _pipe(loaded, store, tmp_path)
        d = make_drivers(loaded)["mb"]
        col = Collector()
        st.unit(4, 1, 0b100, (0, 0))
        await d.start(col)
        try:
            await col.wait_for(lambda: any(s.quality is Quality.BAD for s in col.of("M1.vision")))
            bad = next(s for s in col.of("M1.vision") if s.quality is Quality.BAD)
            assert "bitmask" in (bad.reason or "")
        finally:
            await d.stop()
            pipe.close()
    finally:
        store.close()
        await st.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", free_port()).start()
    try:
        yield b
    finally:
        b.stop()


async def test_mqtt_json_station(tmp_path: Path, broker: Broker) -> None:
    loaded = write_config(tmp_path, "mq", {
        "kind": "mqtt", "host": "127.0.0.1", "port": broker.port, "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5}, [
        {"name": "lot", "address": "json:plant/L/M1/lot", "kind": "context",
         "data_type": "string"},
        {"name": "vision", "address": "json:plant/L/M1/vision", "kind": "vision",
         "vision": {"unit_path": "part.serial", "result_path": "verdict",
                    "defects_path": "findings", "class_key": "type", "confidence_key": "score",
                    "image_path": "image.uri", "pass_values": ["OK"]}},
    ], db=str(tmp_path / "plant.db"))
    store = open_store(str(tmp_path / "plant.db"))
    pipe = _pipe(loaded, store, tmp_path)
    d = make_drivers(loaded)["mq"]
    col = Collector()

    def sink(batch: list[Any]) -> None:
        col(batch)
        pipe.handle(batch)
    await d.start(sink)
    dev = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{free_port()}")
    dev.connect("127.0.0.1", broker.port)
    dev.loop_start()
    try:
        await wait_until(lambda: d.state.state is ConnState.CONNECTED)
        dev.publish("plant/L/M1/lot", json.dumps("L-00042"), qos=1).wait_for_publish()
        await col.wait_for(lambda: bool(col.good("M1.lot")))
        msgs = [{"part": {"serial": "S-1"}, "verdict": "OK", "findings": []},
                {"part": {"serial": "S-2"}, "verdict": "NOK", "image": {"uri": "s3://b/2.jpg"},
                 "findings": [{"type": "sink_mark", "score": 87}]},
                {"part": {"serial": "S-2"}, "verdict": "NOK",  # sent twice: one unit
                 "findings": [{"type": "sink_mark", "score": 87}]},
                {"part": {"serial": "S-3"}, "findings": []}]  # no verdict: Bad
        for m in msgs:
            dev.publish("plant/L/M1/vision", json.dumps(m), qos=1).wait_for_publish()
        await col.wait_for(lambda: len(col.of("M1.vision")) >= 4)
        assert col.of("M1.vision")[-1].quality is Quality.BAD
        assert "no result at 'verdict'" in (col.of("M1.vision")[-1].reason or "")
        assert decode_reading(str(col.of("M1.vision")[1].value)).defects[0].confidence == 0.87
    finally:
        dev.loop_stop()
        dev.disconnect()
        await d.stop()
        pipe.close()
    df = inspections(store)
    store.close()
    # S-1 is the baseline (first sight of the station), S-2 the first unit counted
    assert df["unit_id"].to_list() == ["S-2"]
    row = df.row(0, named=True)
    assert (row["passed"], row["defect_class"], row["image_ref"], row["lot_id"]) == \
        (False, "sink_mark", "s3://b/2.jpg", "L-00042")
