"""The plant host on MQTT: the runtime spawns the twin with line C also published over
Sparkplug B, reads line C only through the MQTT driver (a real mosquitto), and stores
its values with their production context."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from driver_helpers import free_port, wait_until
from mqtt_helpers import Broker

from core.clock import WallClock
from core.config import load_config
from core.config.schema import MqttDriver as MqttDriverCfg
from core.masterdata import load_master_data
from core.store.db import open_store
from runtime.host import Runtime, RuntimeOptions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", free_port()).start()
    try:
        yield b
    finally:
        b.stop()


async def test_the_runtime_reads_a_line_over_sparkplug_with_context(
        tmp_path: Path, broker: Broker) -> None:
    loaded = load_config(ROOT / "config.toml")
    loaded.config.store.spill_dir = str(tmp_path / "spill")
    loaded.config.store.archive_dir = str(tmp_path / "history")
    loaded.config.drivers["spb"] = MqttDriverCfg(kind="mqtt", host="127.0.0.1",
                                                 port=broker.port, sparkplug_host_id="loopline")
    for line in loaded.config.lines:
        if line.id == "C":
            line.driver = "spb"
    loaded.tags = [
        replace(t, driver_id="spb", spec=t.spec.model_copy(
            update={"address": f"spb:loopline/twin-C/{t.equipment_id}#{t.name}"}))
        if t.line_id == "C" else t for t in loaded.tags]
    db = tmp_path / "run.db"
    store = open_store(str(db))
    load_master_data(store, loaded, WallClock())
    rt = Runtime(loaded, store, RuntimeOptions(
        approve="never", ml=False, spawn_twin=True, opcua_port=free_port(),
        modbus_port=free_port(), twin_args=["--sparkplug", f"127.0.0.1:{broker.port}",
                                            "--sparkplug-line", "C"]))

    def stored() -> list[tuple[object, ...]]:
        con = sqlite3.connect(str(db))
        try:
            return con.execute(
                "SELECT quality, lot_id, line_id FROM sample WHERE line_id = 'C' "
                "AND tag_id LIKE '%.vibration_rms' AND lot_id IS NOT NULL").fetchall()
        finally:
            con.close()

    await rt.start()
    try:
        spb = rt.drivers["spb"]
        await wait_until(lambda: spb.status()["state"] == "connected", timeout=60)
        await wait_until(lambda: bool(stored()), timeout=90, step=0.5)
        q, lot, line = stored()[-1]
        assert q == 0 and str(lot).startswith("L-") and line == "C"
        assert spb.status()["seq_gaps"] == 0
        assert not [e for e in rt.errors if "spb" in e]
        assert spb.status()["values_received"] > 0
    finally:
        summary = await rt.stop()
        store.close()
    assert summary is not None
