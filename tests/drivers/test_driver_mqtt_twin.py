"""The twin publishes line C over Sparkplug B (``--sparkplug``) to a real mosquitto and
the MQTT driver reads every tag of the line from it, writes a setpoint by DCMD, and
sees the twin's comms drop as a DDEATH."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from driver_helpers import Collector, free_port, wait_until
from mqtt_helpers import Broker

from core.config import load_config
from core.config.schema import MqttDriver as MqttDriverCfg
from core.samples import Quality
from drivers.base import ConnState
from drivers.mqtt import MqttDriver
from sim.master import load_master
from sim.runner import Twin, TwinOptions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def twin_on_mqtt(tmp_path: Path) -> AsyncIterator[tuple[Twin, Broker]]:
    broker = Broker(tmp_path / "broker", free_port()).start()
    cfg = load_config(ROOT / "config.toml")
    opts = TwinOptions(seed=7, speed=60, start=datetime(2026, 1, 5, 6, tzinfo=UTC),
                       opcua=False, modbus=False, sparkplug=("127.0.0.1", broker.port),
                       injections=[("comms-drop", "C-OVEN1", 0)])
    twin = Twin(cfg, load_master(cfg.master_data_path), opts)
    task = asyncio.create_task(twin.run())
    try:
        await asyncio.wait_for(twin.ready.wait(), 60)
        yield twin, broker
    finally:
        twin.stop()
        await asyncio.wait_for(task, 30)
        broker.stop()


async def test_the_twin_line_over_sparkplug_is_read_and_written(
        twin_on_mqtt: tuple[Twin, Broker]) -> None:
    twin, broker = twin_on_mqtt
    loaded = twin.plant.loaded
    line = [t for t in loaded.tags if t.line_id == "C"]
    tags = [replace(t, driver_id="spb", spec=t.spec.model_copy(
                update={"address": f"spb:loopline/twin-C/{t.equipment_id}#{t.name}"}))
            for t in line]
    d = MqttDriver("spb", MqttDriverCfg(kind="mqtt", host="127.0.0.1", port=broker.port,
                                        write_timeout_s=2.0), tags)
    col = Collector()
    await d.start(col)
    try:
        await wait_until(lambda: d.state.state is ConnState.CONNECTED)
        live = [t.id for t in tags if t.equipment_id != "C-OVEN1"]
        await col.wait_for(lambda: all(col.good(t) for t in live))
        def oven_dead() -> bool:  # comms-drop injected at t=0: DBIRTH, then DDEATH
            s = col.last("C-OVEN1.zone_temp")
            return s is not None and s.quality is Quality.BAD and "DDEATH" in (s.reason or "")

        await col.wait_for(oven_dead)
        ts = col.last("C-PRESS1.state").source_ts  # type: ignore[union-attr]
        assert ts.year == 2026 and ts.month == 1 and ts.day == 5  # twin time, not wall time
        r = await d.write("C-EXTR1.speed_sp", 32.0)
        assert r.ok and r.read_back == 32.0, r
        assert twin.plant.machines["C-EXTR1"].sp["speed_sp"].value == 32.0
        r = await d.write("C-EXTR1.speed_sp", 99.0)  # outside the recipe limits: refused
        assert not r.ok and twin.plant.machines["C-EXTR1"].sp["speed_sp"].value == 32.0
        assert d.status()["seq_gaps"] == 0
        # the vision station's result (a String metric of JSON) arrives as a reading
        from core.vision import decode_reading
        decode_reading(str(col.good("C-PACK1.vision")[-1].value))
    finally:
        await d.stop()


def test_a_bad_broker_address_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from sim.cli import main

    assert main(["--sparkplug", "localhost", "--duration", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sim: --sparkplug 'localhost': use HOST:PORT, e.g. 127.0.0.1:1883")
