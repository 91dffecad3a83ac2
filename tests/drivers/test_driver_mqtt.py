"""MQTT driver against a real mosquitto on loopback and a Sparkplug B edge node
(``sim.sparkplug.EdgeNode``, paho-mqtt with the specification's protobuf), via config."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from driver_helpers import Collector, free_port, wait_until, write_config
from mqtt_helpers import Broker, make_tls

from core.clock import FrozenClock
from core.config import ConfigError, LoadedConfig
from core.config.schema import MqttDriver as MqttDriverCfg
from core.history import history
from core.ingest.pipeline import IngestPipeline
from core.samples import Quality
from core.store.db import Store
from drivers.base import CONNECTION_LOST, ConnState, make_drivers
from drivers.mqtt import MqttDriver
from drivers.mqtt_address import AddressError, JsonAddress, SparkplugAddress, parse
from sim.sparkplug import EdgeNode
from sparkplug_b import DataType

GROUP, EDGE = "Plant1", "GW1"
DEVICE_METRICS: dict[str, dict[str, tuple[int, Any]]] = {
    "PRESS1": {
        "Motor/Temp": (DataType.Double, 41.5),
        "Motor/Current": (DataType.Float, 12.25),
        "Count": (DataType.Int32, -3),
        "Running": (DataType.Boolean, True),
        "SpeedSP": (DataType.Float, 50.0),
        "TempSP": (DataType.Float, 20.0),
        "Lot": (DataType.String, "L-00501"),
    },
    "PRESS2": {"Motor/Temp": (DataType.Double, 30.0)},
}


def spb(device: str | None, metric: str) -> str:
    return f"spb:{GROUP}/{EDGE}/{device}#{metric}" if device else f"spb:{GROUP}/{EDGE}#{metric}"


TAGS = [
    {"name": "temp", "address": spb("PRESS1", "Motor/Temp")},
    {"name": "current", "address": spb("PRESS1", "Motor/Current"), "data_type": "float32"},
    {"name": "count", "address": spb("PRESS1", "Count"), "data_type": "int32"},
    {"name": "running", "address": spb("PRESS1", "Running"), "data_type": "bool"},
    {"name": "speed_sp", "address": spb("PRESS1", "SpeedSP"), "data_type": "float32",
     "writable": True, "kind": "setpoint"},
    {"name": "lot", "address": spb("PRESS1", "Lot"), "data_type": "string", "kind": "context"},
    {"name": "temp_sp", "address": spb("PRESS1", "TempSP"), "writable": True,
     "kind": "setpoint"},
    {"name": "temp2", "address": spb("PRESS2", "Motor/Temp")},
    {"name": "missing", "address": spb("PRESS1", "NotThere")},
    {"name": "uptime", "address": spb(None, "Uptime"), "data_type": "int64"},
]


# ---------------------------------------------------------------- addresses, config


def test_addresses_parse_both_forms_and_refuse_the_rest() -> None:
    assert parse("spb:G/E/D#Motor/Speed") == SparkplugAddress("G", "E", "D", "Motor/Speed")
    assert parse("spb:G/E#Node Control/Rebirth").device is None
    a = parse("json:plant/line1/press#data.values[1].v")
    assert isinstance(a, JsonAddress) and a.topic == "plant/line1/press"
    assert a.path == ("data", "values", 1, "v")
    assert parse("json:t/x").path == () and parse("json:t#$.a").path == ("a",)
    for bad in ("spb:G/E/D", "spb:G#m", "spb:G/E/D/X#m", "spb:G/+/D#m", "json:a/+/b#x",
                "json:#x", "json:t#a..b", "ns=2;s=X", "hr:100"):
        with pytest.raises(AddressError):
            parse(bad)


def _mqtt_config(tmp_path: Path, driver: dict[str, Any], tags: list[dict[str, Any]]
                 ) -> LoadedConfig:
    driver = dict(driver)
    tls = driver.pop("tls", None)
    extra = ""
    if tls is not None:
        extra = "[drivers.mq.tls]\n" + "".join(f'{k} = "{v}"\n' for k, v in tls.items())
    return write_config(tmp_path, "mq", {"kind": "mqtt", "host": "127.0.0.1", **driver}, tags,
                        extra=extra)


def test_config_builds_the_driver_and_refuses_plain_passwords(tmp_path: Path) -> None:
    loaded = _mqtt_config(tmp_path, {"port": 1883}, TAGS)
    d = make_drivers(loaded)["mq"]
    assert isinstance(d, MqttDriver) and d.kind == "mqtt"
    assert d.topics() == [f"spBv1.0/{GROUP}/+/{EDGE}/#"]
    with pytest.raises(ConfigError, match="only sent over TLS"):
        _mqtt_config(tmp_path, {"username": "u", "password": "p"}, TAGS)
    with pytest.raises(ConfigError, match="protocl"):
        _mqtt_config(tmp_path, {"protocl": "5"}, TAGS)
    with pytest.raises(Exception, match=r"M1\.x.*metric name goes after"):
        make_drivers(_mqtt_config(tmp_path, {}, [{"name": "x", "address": "spb:G/E/D"}]))
    from drivers.mqtt import setup_problems, tag_problems

    bad = _mqtt_config(tmp_path, {"json_write_topic": "{topc}/set", "username": "u",
                                  "password_env": "LOOPLINE_NOT_SET_ANYWHERE",
                                  "tls": {"ca": "missing-ca.pem"}},
                       [{"name": "x", "address": "json:a#b..c"}])
    cfg = bad.config.drivers["mq"]
    assert tag_problems("mq", cfg, bad.tags) == [  # type: ignore[arg-type]
        "tag M1.x: JSON path 'b..c': cannot read '..'",
        "driver mq: json_write_topic may use only {topic} and {path}"]
    assert setup_problems("mq", cfg, bad.base_dir) == [  # type: ignore[arg-type]
        f"driver mq: tls.ca {bad.base_dir / 'missing-ca.pem'} does not exist",
        "driver mq: environment variable LOOPLINE_NOT_SET_ANYWHERE (password_env) is not set"]
    from drivers.validate import device_problems  # what `loopline config check` prints

    assert device_problems(bad) == [
        "tag M1.x: JSON path 'b..c': cannot read '..'",
        "driver mq: json_write_topic may use only {topic} and {path}",
        f"driver mq: tls.ca {bad.base_dir / 'missing-ca.pem'} does not exist",
        "driver mq: environment variable LOOPLINE_NOT_SET_ANYWHERE (password_env) is not set"]
    assert device_problems(_mqtt_config(tmp_path, {}, TAGS)) == []


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", free_port()).start()
    try:
        yield b
    finally:
        b.stop()


def edge_node(port: int, **kw: Any) -> EdgeNode:
    return EdgeNode("127.0.0.1", port, GROUP, EDGE, DEVICE_METRICS,
                    node_metrics={"Uptime": (DataType.Int64, 5)}, **kw)


async def started(tmp_path: Path, port: int, tags: list[dict[str, Any]] = TAGS,
                  **driver: Any) -> tuple[MqttDriver, Collector]:
    loaded = _mqtt_config(tmp_path, {"port": port, "reconnect_min_s": 0.1,
                                     "reconnect_max_s": 0.5, "write_timeout_s": 2.0,
                                     **driver}, tags)
    d = make_drivers(loaded)["mq"]
    assert isinstance(d, MqttDriver)
    col = Collector()
    await d.start(col)
    await wait_until(lambda: d.state.state is ConnState.CONNECTED)
    return d, col


@pytest.fixture
async def running(tmp_path: Path, broker: Broker) -> AsyncIterator[tuple[MqttDriver,
                                                                      Collector, EdgeNode]]:
    d, col = await started(tmp_path, broker.port)
    node = edge_node(broker.port)
    await asyncio.to_thread(node.connect)
    try:
        await col.wait_for(lambda: bool(col.good("M1.temp2")))
        yield d, col, node
    finally:
        await d.stop()
        node.kill()


# ---------------------------------------------------------------- Sparkplug B


async def test_births_give_values_and_aliased_ddata_updates_them(
        running: tuple[MqttDriver, Collector, EdgeNode]) -> None:
    d, col, node = running
    assert col.last("M1.temp").value == 41.5  # type: ignore[union-attr]
    assert col.last("M1.current").value == 12.25  # type: ignore[union-attr]
    assert col.last("M1.count").value == -3  # type: ignore[union-attr]  # two's complement
    assert col.last("M1.running").value is True  # type: ignore[union-attr]
    assert col.last("M1.lot").value == "L-00501"  # type: ignore[union-attr]
    miss = col.last("M1.missing")
    assert miss is not None and miss.quality is Quality.BAD and "not in DBIRTH" in miss.reason
    node.publish("PRESS1", {"Motor/Temp": 43.0, "Count": 7}, ts_ms=1_767_600_000_000)
    await col.wait_for(lambda: col.last("M1.temp").value == 43.0)  # type: ignore[union-attr]
    last = col.last("M1.temp")
    assert last is not None and last.source_ts.timestamp() == 1_767_600_000.0
    assert col.last("M1.count").value == 7  # type: ignore[union-attr]
    node.publish(None, {"Uptime": 6})  # NDATA: the edge node's own metric
    await col.wait_for(lambda: col.last("M1.uptime").value == 6)  # type: ignore[union-attr]
    assert d.stale_tags(0.0) == ["M1.missing"]  # report by exception: born metrics are live
    assert d.status()["seq_gaps"] == 0


async def test_ndeath_marks_bad_and_a_new_session_restores(
        running: tuple[MqttDriver, Collector, EdgeNode]) -> None:
    d, col, node = running
    node.kill()  # no DISCONNECT: the broker publishes the will NDEATH
    await col.wait_for(lambda: col.last("M1.temp").quality is Quality.BAD)  # type: ignore[union-attr]
    for t in ("M1.temp", "M1.lot", "M1.temp2"):
        s = col.last(t)
        assert s is not None and s.value is None and "NDEATH" in (s.reason or "")
    assert "M1.temp" in d.stale_tags(0.0)
    await asyncio.to_thread(node.reconnect)  # next bdSeq, NBIRTH + DBIRTHs
    await col.wait_for(lambda: all(col.last(t).quality is Quality.GOOD  # type: ignore[union-attr]
                                   for t in ("M1.temp", "M1.temp2", "M1.uptime")))
    assert d.state.state is ConnState.CONNECTED


async def test_a_sequence_gap_marks_bad_and_asks_for_a_rebirth(
        running: tuple[MqttDriver, Collector, EdgeNode]) -> None:
    d, col, node = running
    before = node.rebirths
    node.lose_messages(2)
    node.publish("PRESS1", {"Motor/Temp": 99.0})  # arrives with seq +3: a gap
    await col.wait_for(lambda: col.last("M1.temp").quality is Quality.BAD)  # type: ignore[union-attr]
    assert "sequence gap" in (col.last("M1.temp").reason or "")  # type: ignore[union-attr]
    assert col.last("M1.temp2").quality is Quality.BAD  # type: ignore[union-attr]  # whole node
    # the rebirth request comes back as a full BIRTH with the current values
    await col.wait_for(lambda: col.last("M1.temp").quality is Quality.GOOD)  # type: ignore[union-attr]
    assert col.last("M1.temp").value == 99.0  # type: ignore[union-attr]
    assert node.rebirths == before + 1
    assert d.status()["seq_gaps"] == 1 and d.status()["rebirths_requested"] >= 1


async def test_ddeath_marks_one_device_and_dbirth_restores_it(
        running: tuple[MqttDriver, Collector, EdgeNode]) -> None:
    _d, col, node = running
    node.device_death("PRESS2")
    await col.wait_for(lambda: col.last("M1.temp2").quality is Quality.BAD)  # type: ignore[union-attr]
    assert "DDEATH" in (col.last("M1.temp2").reason or "")  # type: ignore[union-attr]
    assert col.last("M1.temp").quality is Quality.GOOD  # type: ignore[union-attr]
    node.device_birth("PRESS2")
    await col.wait_for(lambda: col.last("M1.temp2").quality is Quality.GOOD)  # type: ignore[union-attr]


async def test_dcmd_writes_are_read_back_and_refusals_reported(
        tmp_path: Path, broker: Broker) -> None:
    accept = {"SpeedSP": True, "TempSP": True}
    d, col = await started(tmp_path, broker.port)
    node = edge_node(broker.port, on_command=lambda dev, name, v: accept.get(name, False))
    await asyncio.to_thread(node.connect)
    try:
        await col.wait_for(lambda: bool(col.good("M1.speed_sp")))
        r = await d.write("M1.speed_sp", 62.5)
        assert r.ok and r.read_back == 62.5, r
        assert node.commands[-1] == ("PRESS1", "SpeedSP", 62.5)
        r = await d.write("M1.temp_sp", 0.1)  # a float64 tag on a Float metric
        assert r.ok and r.read_back == pytest.approx(0.1, rel=1e-7), r
        accept["SpeedSP"] = False  # the device refuses: no read-back
        r = await d.write("M1.speed_sp", 70.0)
        assert not r.ok and "no read-back" in (r.error or "")
        r = await d.write("M1.temp", 1.0)
        assert not r.ok and "not writable" in (r.error or "")
        node.device_death("PRESS1")
        await col.wait_for(lambda: col.last("M1.speed_sp").quality is Quality.BAD)  # type: ignore[union-attr]
        r = await d.write("M1.speed_sp", 55.0)
        assert not r.ok and "offline" in (r.error or "")
        assert d.stats.writes == 5 and d.stats.write_failures == 3
    finally:
        await d.stop()
        node.kill()


async def test_broker_loss_marks_connection_lost_and_reconnect_rebirths(
        tmp_path: Path, broker: Broker) -> None:
    d, col = await started(tmp_path, broker.port)
    node = edge_node(broker.port)
    await asyncio.to_thread(node.connect)
    try:
        await col.wait_for(lambda: bool(col.good("M1.temp")))
        broker.stop()
        await col.wait_for(lambda: col.last("M1.temp").reason == CONNECTION_LOST)  # type: ignore[union-attr]
        await wait_until(lambda: d.state.state is ConnState.RECONNECTING)
        assert d.state.last_error
        node.kill()
        broker.start()
        await wait_until(lambda: d.state.state is ConnState.CONNECTED)
        assert d.stats.reconnects == 1
        await asyncio.to_thread(node.reconnect)
        await col.wait_for(lambda: col.last("M1.temp").quality is Quality.GOOD)  # type: ignore[union-attr]
    finally:
        await d.stop()
        node.kill()


# ---------------------------------------------------------------- JSON topics


def _paho(port: int, **tls: Any) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{free_port()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


async def test_json_topics_values_bad_messages_and_plain_topic_writes(
        tmp_path: Path, broker: Broker) -> None:
    tags = [
        {"name": "temp", "address": "json:plant/L/M1#data.temp", "unit": "degC"},
        {"name": "first", "address": "json:plant/L/M1#data.values[0]", "data_type": "int32"},
        {"name": "mode", "address": "json:plant/L/mode", "data_type": "string"},
        {"name": "sp", "address": "json:plant/L/M1/sp#value", "writable": True,
         "scale": 0.1},
    ]
    d, col = await started(tmp_path, broker.port, tags, json_write_topic="{topic}/set",
                           json_timestamp_path="ts", protocol="3.1.1")
    dev = _paho(broker.port)

    def echo(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:  # the device applies a set
        c.publish("plant/L/M1/sp", m.payload)

    dev.on_message = echo
    dev.subscribe("plant/L/M1/sp/set")
    try:
        dev.publish("plant/L/M1", json.dumps(
            {"ts": "2026-01-05T06:00:01Z", "data": {"temp": 21.5, "values": [4, 5]}}))
        dev.publish("plant/L/mode", json.dumps("auto"))
        await col.wait_for(lambda: bool(col.good("M1.mode")) and bool(col.good("M1.first")))
        t = col.last("M1.temp")
        assert t is not None and t.value == 21.5 and t.source_ts.isoformat().startswith(
            "2026-01-05T06:00:01")
        assert col.last("M1.first").value == 4  # type: ignore[union-attr]
        dev.publish("plant/L/M1", b"{not json")
        await col.wait_for(lambda: col.last("M1.temp").quality is Quality.BAD)  # type: ignore[union-attr]
        assert col.last("M1.temp").reason.startswith("not JSON")  # type: ignore[union-attr]
        dev.publish("plant/L/M1", json.dumps({"data": {"temp": 22}}))
        await col.wait_for(lambda: col.last("M1.first").reason == "no value at 'data.values[0]'")  # type: ignore[union-attr]
        assert col.last("M1.temp").value == 22.0  # type: ignore[union-attr]
        r = await d.write("M1.sp", 12.5)  # engineering 12.5 = raw 125 on the wire
        assert r.ok and r.read_back == 12.5, r
    finally:
        dev.loop_stop()
        dev.disconnect()
        await d.stop()


# ---------------------------------------------------------------- TLS and credentials


async def test_tls_with_username_and_password_from_env(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_tls(tmp_path / "pki")
    b = Broker(tmp_path / "tlsbroker", free_port(), tls=tls, users={"loop": "s3cret"}).start()
    monkeypatch.setenv("LOOPLINE_MQTT_PW", "s3cret")
    try:
        tags = [{"name": "v", "address": "json:a/b#v"}]
        d, _col = await started(tmp_path, b.port, tags, username="loop",
                               password_env="LOOPLINE_MQTT_PW", tls={"ca": str(tls.ca)})
        await d.stop()
        monkeypatch.setenv("LOOPLINE_MQTT_PW", "wrong")
        loaded = _mqtt_config(tmp_path, {"port": b.port, "username": "loop",
                                         "password_env": "LOOPLINE_MQTT_PW",
                                         "tls": {"ca": str(tls.ca)}}, tags)
        bad = make_drivers(loaded)["mq"]
        with pytest.raises(Exception, match=r"[Nn]ot authori[sz]ed|[Bb]ad user name"):
            await bad.connect()
        assert bad.state.last_error
        # running, it tries auth_attempts times, then stops with the reason on every tag
        col = Collector()
        await bad.start(col)
        await wait_until(lambda: bad.state.state is ConnState.DOWN)
        assert re.search(r"broker refused the connection: (not authorized|bad user name or "
                         r"password) \(3 attempts", bad.state.last_error or "")
        v = col.last("M1.v")
        assert v is not None and v.quality is Quality.BAD and "refused" in (v.reason or "")
        await bad.stop()
        # a CA that did not sign the broker's certificate: not trusted, stops the same way
        other = make_tls(tmp_path / "other-pki")
        loaded = _mqtt_config(tmp_path, {"port": b.port, "username": "loop",
                                         "password_env": "LOOPLINE_MQTT_PW", "auth_attempts": 1,
                                         "tls": {"ca": str(other.ca)}}, tags)
        untrusted = make_drivers(loaded)["mq"]
        await untrusted.start(Collector())
        await wait_until(lambda: untrusted.state.state is ConnState.DOWN)
        assert "certificate is not trusted" in (untrusted.state.last_error or "")
        await untrusted.stop()
    finally:
        b.stop()


# ---------------------------------------------------------------- into the store


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(str(db))
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


async def test_edge_node_metrics_are_stored_with_context_bad_on_death_good_on_rebirth(
        tmp_path: Path, broker: Broker, store: Store, loaded_config: LoadedConfig,
        frozen_clock: FrozenClock) -> None:
    """The issue's check: a Sparkplug B edge node's metrics land in the store with the
    machine's production context; its NDEATH stores them Bad; the next birth Good."""
    loaded_config.config.store.spill_dir = str(tmp_path / "spill")
    loaded_config.config.store.archive_dir = str(tmp_path / "history")
    eq = "C-PRESS1"
    metrics = {"lot": (DataType.UInt32, 501), "state": (DataType.UInt16, 1),
               "good_count": (DataType.UInt32, 10), "vibration_rms": (DataType.Float, 2.0)}
    mine = [replace(t, driver_id="spb", spec=t.spec.model_copy(
                update={"address": f"spb:{GROUP}/{EDGE}/{eq}#{t.name}"}))
            for t in loaded_config.tags if t.equipment_id == eq and t.name in metrics]
    assert len(mine) == 4
    d = MqttDriver("spb", MqttDriverCfg(kind="mqtt", host="127.0.0.1", port=broker.port,
                                        reconnect_min_s=0.1), mine)
    d.now = frozen_clock.now  # as the runtime does: markers in the plant's time base
    pipe = IngestPipeline(loaded_config, store, frozen_clock, flush_ms=20).start()
    seen: list[Any] = []

    def sink(batch: list[Any]) -> None:
        seen.extend(batch)
        pipe.handle(batch)

    await d.start(sink)
    await wait_until(lambda: d.state.state is ConnState.CONNECTED)
    plant_ms = lambda: int(frozen_clock.now().timestamp() * 1000)  # noqa: E731
    node = EdgeNode("127.0.0.1", broker.port, GROUP, EDGE, {eq: metrics}, clock_ms=plant_ms)
    vib = f"{eq}.vibration_rms"

    def last_vib() -> Any:
        got = [s for s in seen if s.tag_id == vib]
        return got[-1] if got else None

    try:
        await asyncio.to_thread(node.connect)
        await wait_until(lambda: last_vib() is not None)
        frozen_clock.advance(1)
        node.publish(eq, {"vibration_rms": 2.25})
        await wait_until(lambda: last_vib().value == 2.25)
        frozen_clock.advance(1)
        node.kill()
        await wait_until(lambda: last_vib().quality is Quality.BAD)
        frozen_clock.advance(1)
        await asyncio.to_thread(node.reconnect)
        await wait_until(lambda: last_vib().quality is Quality.GOOD and
                         last_vib().source_ts == frozen_clock.now())
        assert pipe.writer.drain(30)
        got = history(store, None, [vib], datetime(2000, 1, 1, tzinfo=UTC),
                      datetime(2100, 1, 1, tzinfo=UTC)).select(
            "value", "quality", "reason", "lot_id", "order_id", "line_id",
            "equipment_id").rows()
        ctx = ("L-00501", "PO-0005", "C", eq)
        assert got == [
            (2.0, 0, None, *ctx),
            (2.25, 0, None, *ctx),
            (None, 2, "Sparkplug NDEATH (edge node offline)", *ctx),
            (2.25, 0, None, *ctx),
        ], got
    finally:
        await d.stop()
        node.kill()
        pipe.close()


# ---------------------------------------------------------------- host rules, no broker


def _host() -> tuple[Any, Any]:
    from datetime import UTC, datetime

    from core.config.loader import ResolvedTag
    from core.config.schema import Tag
    from drivers.sparkplug_host import SparkplugHost

    t = ResolvedTag("M1.v", "v", "M1", "L", "mq", Tag(name="v", address="spb:G/E/D#v"))
    a = parse(t.spec.address)
    assert isinstance(a, SparkplugAddress)
    return SparkplugHost([(t, a)], lambda: datetime(2026, 1, 5, tzinfo=UTC)), t


def _payload(seq: int | None, metrics: list[tuple[str | None, int | None, int, Any]],
             props: dict[str, int] | None = None) -> bytes:
    from sparkplug_b import Payload, set_value

    p = Payload(timestamp=1_767_600_000_000)
    if seq is not None:
        p.seq = seq
    for name, alias, dt, v in metrics:
        m = p.metrics.add()
        if name:
            m.name = name
        if alias is not None:
            m.alias = alias
        set_value(m, dt, v)
        for k, code in (props or {}).items():
            m.properties.keys.append(k)
            pv = m.properties.values.add(type=DataType.Int32)
            pv.int_value = code
    return p.SerializeToString()


def test_host_ignores_an_old_will_and_asks_unknown_nodes_to_rebirth() -> None:
    host, _ = _host()
    out = host.handle("DDATA", "G", "E", "D", _payload(5, [(None, 1, DataType.Double, 1.0)]))
    assert out.rebirth == [("G", "E")] and not out.fresh  # aliases unknown: cannot decode
    host.handle("NBIRTH", "G", "E", None, _payload(0, [("bdSeq", None, DataType.Int64, 3)]))
    out = host.handle("DBIRTH", "G", "E", "D", _payload(1, [("v", 1, DataType.Double, 2.5)]))
    assert [(s.value, s.quality) for s in out.fresh] == [(2.5, Quality.GOOD)]
    out = host.handle("NDEATH", "G", "E", None, _payload(None, [("bdSeq", None,
                                                                   DataType.Int64, 2)]))
    assert not out.samples and host.is_live("M1.v")  # the previous session's will
    out = host.handle("DDATA", "G", "E", "D", _payload(2, [(None, 1, DataType.Double, 3.5)],
                                                      props={"Quality": 500}))
    assert [(s.value, s.quality, s.reason) for s in out.fresh] == [
        (3.5, Quality.UNCERTAIN, "device quality STALE")]
    out = host.handle("NDEATH", "G", "E", None, _payload(None, [("bdSeq", None,
                                                                   DataType.Int64, 3)]))
    assert [s.quality for s in out.samples] == [Quality.BAD] and not host.is_live("M1.v")


def test_host_builds_dcmd_with_the_birth_type_and_refuses_what_cannot_be_sent() -> None:
    from dataclasses import replace as rep

    from sparkplug_b import Payload, get_value

    host, t = _host()
    t = rep(t, spec=t.spec.model_copy(update={"writable": True, "data_type": "int16"}))
    with pytest.raises(ValueError, match="offline"):
        host.command(t, 1)
    host.handle("NBIRTH", "G", "E", None, _payload(0, []))
    host.handle("DBIRTH", "G", "E", "D", _payload(1, [("v", 7, DataType.Int16, 0)]))
    topic, raw = host.command(t, -4)
    m = Payload.FromString(raw).metrics[0]
    assert topic == "spBv1.0/G/DCMD/E/D" and m.name == "v" and get_value(m, m.datatype) == -4
    with pytest.raises(ValueError, match="could not convert"):
        host.command(t, "abc")
    t2 = rep(t, id="M1.w", spec=t.spec.model_copy(update={"address": "spb:G/E/D#w"}))
    host.address["M1.w"] = parse(t2.spec.address)
    with pytest.raises(ValueError, match="not in the device's BIRTH"):
        host.command(t2, 1)


async def test_sparkplug_host_state_is_retained_online_then_offline(
        tmp_path: Path, broker: Broker) -> None:
    d, _col = await started(tmp_path, broker.port, sparkplug_host_id="loopline")
    got: list[dict[str, Any]] = []

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        got.append({"retain": m.retain, **json.loads(m.payload)})

    c = _paho(broker.port)
    c.on_message = on_message
    c.subscribe("spBv1.0/STATE/loopline", qos=1)
    try:
        await wait_until(lambda: bool(got))
        assert got[0]["online"] is True and got[0]["retain"] and got[0]["timestamp"] > 0
        await d.stop()
        await wait_until(lambda: len(got) >= 2)
        assert got[-1]["online"] is False and got[-1]["timestamp"] == got[0]["timestamp"]
    finally:
        c.loop_stop()
        c.disconnect()
        await d.stop()
