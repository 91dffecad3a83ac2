"""The plant host on MQTT: the runtime spawns the twin with line C also published over
Sparkplug B, reads line C only through the MQTT driver (a real mosquitto), and stores
its values with their production context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from driver_helpers import free_port, wait_until
from mqtt_helpers import Broker

from core.clock import WallClock
from core.config import load_config
from core.config.schema import MqttDriver as MqttDriverCfg
from core.history import history
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

    vib = [t.id for t in loaded.tags if t.id.endswith(".vibration_rms")]

    def stored() -> list[tuple[object, ...]]:
        """Line C's vibration samples with a lot, read back through core.history."""
        h = history(store, None, vib, datetime(2000, 1, 1, tzinfo=UTC),
                    datetime(2100, 1, 1, tzinfo=UTC))
        return h.filter((pl.col("line_id") == "C") & pl.col("lot_id").is_not_null()).select(
            "quality", "lot_id", "line_id").rows()

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
