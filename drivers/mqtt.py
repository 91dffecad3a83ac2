"""MQTT driver on aiomqtt 2.5 (paho-mqtt 2.2): Sparkplug B and plain JSON topics.

One client connection per driver (MQTT 3.1.1 or 5, optional TLS with a client
certificate, username and password). Messages are decoded straight in paho's
read callback: aiomqtt's ``queue_type`` hook hands each message to the driver
instead of queueing it, so there is no queue, task or copy per message, and the
samples go to the sink as one list per message.

- Sparkplug B tags (``spb:G/E/D#Metric``) are served by ``SparkplugHost``: births,
  aliases, sequence numbers, deaths and rebirth requests (NCMD ``Node
  Control/Rebirth``), see that module for the quality rules. With
  ``sparkplug_host_id`` the driver is a Sparkplug host application with a retained
  ``spBv1.0/STATE/<id>`` birth and will, so edge nodes that wait for their primary
  host start publishing when loopline is up.
- JSON tags (``json:topic#path``) read the value at a path of each message on the
  exact topic; a missing path or a non-JSON message is a Bad sample with the reason.

Writes: a Sparkplug tag becomes an NCMD/DCMD with the metric's BIRTH data type, a
JSON tag a message on ``json_write_topic`` (when configured); both are read back by
waiting for the device to report the value (``write_timeout_s``). Reconnect is ours:
on a lost connection every tag gets a Bad "connection lost" marker, the Sparkplug
state is forgotten (nodes are asked to rebirth on reconnect), and the client
reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
from aiomqtt.exceptions import MqttConnectError

from core.config.loader import ResolvedTag
from core.config.schema import MqttDriver as MqttDriverCfg
from core.samples import Quality, Sample, Value
from drivers import codec
from drivers.base import (
    CONNECTION_LOST,
    Backoff,
    ConnState,
    Driver,
    DriverConfigError,
    DriverError,
    Sink,
    WriteResult,
    compare_read_back,
    config_password,
    config_path,
)
from drivers.mqtt_address import (
    MISSING,
    AddressError,
    JsonAddress,
    SparkplugAddress,
    coerce,
    extract,
    nest,
    parse,
    parse_path,
    parse_time,
)
from drivers.sparkplug_host import SparkplugHost, rebirth_request
from drivers.vision import from_json
from sparkplug_b import NAMESPACE, DataType

log = logging.getLogger("loopline.drivers.mqtt")

_SPB_PREFIX = NAMESPACE + "/"


def _inbox(on_message: Any) -> type[asyncio.Queue[Any]]:
    """A 'queue' for aiomqtt that delivers each message at once instead of storing it."""

    class _Inbox(asyncio.Queue):  # type: ignore[type-arg]
        def put_nowait(self, item: Any) -> None:
            on_message(item)

    return _Inbox


class _Waiter:
    """A write waiting for the device to report the written value."""

    __slots__ = ("data_type", "expected", "fut", "last")

    def __init__(self, data_type: str, expected: Value, fut: asyncio.Future[Sample]) -> None:
        self.data_type = data_type
        self.expected = expected
        self.fut = fut
        self.last: Sample | None = None


class MqttDriver(Driver):
    kind = "mqtt"

    def __init__(
        self,
        driver_id: str,
        cfg: MqttDriverCfg,
        tags: Sequence[ResolvedTag],
        base_dir: Path | None = None,
    ) -> None:
        super().__init__(driver_id, tags)
        self.cfg = cfg
        self.base_dir = base_dir or Path.cwd()
        spb: list[tuple[ResolvedTag, SparkplugAddress]] = []
        self.json_by_topic: dict[str, list[tuple[ResolvedTag, JsonAddress]]] = {}
        self._json_addr: dict[str, JsonAddress] = {}
        problems = tag_problems(driver_id, cfg, tags)
        if problems:
            raise DriverConfigError(problems[0])
        for t in tags:
            a = parse(t.spec.address)
            if isinstance(a, SparkplugAddress):
                spb.append((t, a))
            else:
                self.json_by_topic.setdefault(a.topic, []).append((t, a))
                self._json_addr[t.id] = a
        self._ts_path = parse_path(cfg.json_timestamp_path) if cfg.json_timestamp_path \
            else None
        self.host = SparkplugHost(spb, lambda: self.now(), cfg.rebirth_min_interval_s)
        self.client_id = cfg.client_id or f"loopline-{driver_id}-{os.getpid()}"
        self.sparkplug_stats = {"seq_gaps": 0, "rebirths_requested": 0, "ignored_messages": 0}
        self._client: aiomqtt.Client | None = None
        self._connected = False
        self._ever_connected = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._waiters: dict[str, list[_Waiter]] = {}
        self._state_ts = 0

    # ------------------------------------------------------------ client set-up

    def _path(self, p: str) -> str:
        return config_path(self.base_dir, p)

    def _password(self) -> str | None:
        return config_password(self.id, self.cfg)

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.cfg
        problems = setup_problems(self.id, cfg, self.base_dir)
        if problems:
            raise DriverConfigError(problems[0])
        tls = None
        if cfg.tls is not None:
            files = {"tls.ca": cfg.tls.ca, "tls.cert": cfg.tls.cert, "tls.key": cfg.tls.key}
            paths = {k: self._path(v) for k, v in files.items() if v}
            tls = aiomqtt.TLSParameters(
                ca_certs=paths.get("tls.ca"),
                certfile=paths.get("tls.cert"),
                keyfile=paths.get("tls.key"),
            )
        will = None
        if cfg.sparkplug_host_id:
            self._state_ts = int(time.time() * 1000)
            will = aiomqtt.Will(
                self._state_topic(), self._state_payload(False), qos=1, retain=True
            )
        v5 = cfg.protocol == "5"
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=self._password(),
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            clean_start=True if v5 else paho_mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            will=will,
            keepalive=cfg.keepalive_s,
            timeout=cfg.timeout_s,
            tls_params=tls,
            queue_type=_inbox(self._on_message),
            logger=log,
        )

    def _state_topic(self) -> str:
        return f"{NAMESPACE}/STATE/{self.cfg.sparkplug_host_id}"

    def _state_payload(self, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": self._state_ts}).encode()

    def topics(self) -> list[str]:
        """What the driver subscribes to: one filter per edge node, each JSON topic."""
        return self.host.subscriptions() + list(self.json_by_topic)

    # ------------------------------------------------------------ interface

    async def connect(self) -> None:
        """One connection attempt (then closed); raises ``DriverError`` with the reason."""
        self._set_state(ConnState.CONNECTING)
        client = self._new_client()
        try:
            async with client:
                pass
        except aiomqtt.MqttError as e:
            msg = f"{self.cfg.host}:{self.cfg.port}: {e}"
            self.stats.note_error(msg)
            self._set_state(ConnState.CONNECTING, msg)
            raise DriverError(msg) from None

    async def start(self, sink: Sink) -> None:
        if self._task is not None:
            raise DriverError(f"driver {self.id} is already started")
        self._begin(sink)
        self._stopping = False
        if self._state.state is ConnState.DOWN:
            self._set_state(ConnState.CONNECTING)
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.id}")

    async def stop(self) -> None:
        self._stopping = True
        client = self._client
        if client is not None and self._connected and self.cfg.sparkplug_host_id:
            # a clean disconnect does not fire the will: say offline ourselves
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    client.publish(self._state_topic(), self._state_payload(False), qos=1,
                                   retain=True), 2.0)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, self.cfg.timeout_s + 1.0)
        self._client = None
        self._connected = False
        for ws in self._waiters.values():
            for w in ws:
                if not w.fut.done():  # the write reports it; its caller is not cancelled
                    w.fut.set_exception(aiomqtt.MqttError("driver stopped"))
        self._waiters.clear()
        self._stopped()

    async def _run(self) -> None:
        """Connect, subscribe, serve until the connection drops, mark the gap, back off."""
        cfg = self.cfg
        backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        refusals = 0
        while not self._stopping:
            try:
                client = self._new_client()
                async with client:
                    self._client = client
                    await self._subscribe(client)
                    if self._ever_connected:
                        self.stats.reconnects += 1
                    self._connected = self._ever_connected = True
                    self._set_state(ConnState.CONNECTED)
                    backoff.reset()
                    refusals = 0
                    if cfg.rebirth_on_gap:  # nodes born before we came have to tell us again
                        for g, e in self.host.nodes:
                            self._request_rebirth(g, e)
                    async for _ in client.messages:  # never yields: raises on disconnect
                        pass
            except asyncio.CancelledError:
                raise
            except DriverConfigError as e:  # retrying cannot help: say so and stay down
                self._client = None
                self._give_up(str(e))
                return
            except Exception as e:
                err = f"{cfg.host}:{cfg.port}: {e or type(e).__name__}"
                self.stats.note_error(err)
                refused = _refusal(e)
                if refused is not None:
                    refusals += 1
                    if refusals >= cfg.auth_attempts:
                        self._client = None
                        self._give_up(f"{cfg.host}:{cfg.port}: {refused} "
                                      f"({refusals} attempts; fix the config)", count=False)
                        return
            else:
                err = f"{cfg.host}:{cfg.port}: disconnected"
                self.stats.note_error(err)
            finally:
                self._client = None
            if self._stopping:
                return
            if self._connected:
                self._connected = False
                self.host.broker_lost()
                self._mark_lost(list(self.tags), CONNECTION_LOST)
            self._set_state(
                ConnState.RECONNECTING if self._ever_connected else ConnState.CONNECTING, err
            )
            await asyncio.sleep(backoff.next())

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        filters = self.topics()
        if self.cfg.sparkplug_host_id:
            filters.append(self._state_topic())
        for f in filters:
            await client.subscribe(f, qos=self.cfg.qos)
        if self.cfg.sparkplug_host_id:
            await client.publish(self._state_topic(), self._state_payload(True), qos=1,
                                 retain=True)

    # ------------------------------------------------------------ messages

    def _on_message(self, msg: aiomqtt.Message) -> None:
        topic = msg.topic.value
        payload = msg.payload if isinstance(msg.payload, bytes | bytearray) else \
            str(msg.payload).encode()
        try:
            if topic.startswith(_SPB_PREFIX):
                self._on_sparkplug(topic, bytes(payload))
            else:
                self._on_json(topic, bytes(payload))
        except Exception as e:  # one odd message must never stop the connection
            self.stats.note_error(f"message on {topic}: {type(e).__name__}: {e}")
            log.exception("driver %s: message on %s failed", self.id, topic)

    def _on_sparkplug(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[1] == "STATE":
            return
        out = self.host.handle(parts[2], parts[1], parts[3],
                               parts[4] if len(parts) > 4 else None, payload)
        st = self.sparkplug_stats
        if out.gaps:
            st["seq_gaps"] += out.gaps
            self.stats.note_error(f"Sparkplug sequence gap on {parts[1]}/{parts[3]}")
        st["ignored_messages"] += out.ignored
        if out.samples:
            self._emit(out.samples, fresh=False)
        if out.fresh:
            self._deliver(out.fresh)
        if self.cfg.rebirth_on_gap:
            for g, e in out.rebirth:
                self._request_rebirth(g, e)

    def _request_rebirth(self, group: str, edge: str) -> None:
        client = self._client
        if client is None:
            return
        self.sparkplug_stats["rebirths_requested"] += 1
        topic = f"{NAMESPACE}/{group}/NCMD/{edge}"
        task = asyncio.get_running_loop().create_task(
            client.publish(topic, rebirth_request(), qos=0))
        task.add_done_callback(_log_failure)

    def _on_json(self, topic: str, payload: bytes) -> None:
        entries = self.json_by_topic.get(topic)
        if not entries:
            return
        now = self.now()
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as e:
            reason = f"not JSON: {str(e)[:60]}"
            self._deliver([Sample(t.id, now, None, Quality.BAD, reason) for t, _ in entries])
            return
        ts = now
        if self._ts_path is not None:
            tv = extract(doc, self._ts_path)
            if tv is not MISSING:
                ts = parse_time(tv) or now
        out: list[Sample] = []
        for t, a in entries:
            v = extract(doc, a.path) if a.path else doc
            if v is MISSING:
                out.append(Sample(t.id, ts, None, Quality.BAD, f"no value at {a.path_text!r}"))
                continue
            spec = t.spec
            try:
                if spec.vision is not None:
                    out.append(Sample(t.id, ts, from_json(v, spec.vision)))
                    continue
                out.append(Sample(t.id, ts, coerce(v, spec.data_type, spec.scale,
                                                   spec.offset)).checked())
            except ValueError as e:
                out.append(Sample(t.id, ts, None, Quality.BAD, str(e)))
        self._deliver(out)

    def _deliver(self, samples: list[Sample]) -> None:
        if self._waiters:
            for s in samples:
                ws = self._waiters.get(s.tag_id)
                if not ws:
                    continue
                for w in ws:
                    w.last = s
                    if not w.fut.done() and s.quality is not Quality.BAD and \
                            compare_read_back(w.data_type, w.expected, s.value):
                        w.fut.set_result(s)
        self._emit(samples)

    # ------------------------------------------------------------ state

    def _fresh_mono(self, tag_id: str) -> float | None:
        """A born Sparkplug metric is current while its node and device live: Sparkplug
        reports by exception and the broker's DEATH says when that stops."""
        if self._connected and tag_id in self.host.address and self.host.is_live(tag_id) \
                and tag_id in self._last_mono:
            return time.monotonic()
        return self._last_mono.get(tag_id)

    def status(self, stale_after_s: float = 30.0) -> dict[str, object]:
        return {**super().status(stale_after_s), **self.sparkplug_stats}

    # ------------------------------------------------------------ writes

    async def write(self, tag_id: str, value: Value) -> WriteResult:
        rt = self.tags.get(tag_id)
        if rt is None:
            return self._write_failed(tag_id, value, f"unknown tag {tag_id!r} on driver {self.id}")
        if not rt.spec.writable:
            return self._write_failed(tag_id, value, f"tag {tag_id} is not writable (config)")
        client = self._client
        if client is None or not self._connected:
            return self._write_failed(tag_id, value, "not connected")
        spec = rt.spec
        try:
            expected = coerce(value, spec.data_type)
            float32 = spec.data_type == "float32"
            if tag_id in self.host.address:
                topic, payload = self.host.command(rt, value)
                float32 = float32 or self.host.born_type(tag_id) == DataType.Float
            else:
                topic, payload = self._json_write(rt, value)
        except ValueError as e:
            return self._write_failed(tag_id, value, str(e))
        if float32 and isinstance(expected, float):  # what a float32 on the wire can hold
            expected = codec.float32_roundtrip(expected)
        fut: asyncio.Future[Sample] = asyncio.get_running_loop().create_future()
        w = _Waiter(spec.data_type, expected, fut)
        self._waiters.setdefault(tag_id, []).append(w)
        try:
            await client.publish(topic, payload, qos=self.cfg.qos)
            back = await asyncio.wait_for(fut, self.cfg.write_timeout_s)
        except TimeoutError:
            self.stats.writes += 1
            self.stats.write_failures += 1
            last = w.last
            if last is None:
                return WriteResult(tag_id, False, value, None,
                                   f"no read-back within {self.cfg.write_timeout_s:g} s "
                                   "(the device did not report the value)")
            return WriteResult(tag_id, False, value, last.value,
                               f"read-back {last.value!r} ({last.reason or last.quality.name}) "
                               f"differs from written {value!r}", mismatch=True)
        except aiomqtt.MqttError as e:
            return self._write_failed(tag_id, value, f"write failed: {e or type(e).__name__}")
        finally:
            ws = self._waiters.get(tag_id, [])
            if w in ws:
                ws.remove(w)
            if not ws:
                self._waiters.pop(tag_id, None)
        self.stats.writes += 1
        return WriteResult(tag_id, True, value, back.value)

    def _json_write(self, rt: ResolvedTag, value: Value) -> tuple[str, bytes]:
        a = self._json_addr[rt.id]
        if self.cfg.json_write_topic is None:
            raise ValueError(f"tag {rt.id}: JSON tags are read-only unless json_write_topic "
                             "is set on the driver")
        spec = rt.spec
        raw: Any
        if spec.data_type == "bool":
            raw = codec.as_bool(value)
        elif spec.data_type == "string":
            raw = str(value)
        else:
            try:
                num = float(value) if isinstance(value, str) else value
                raw = codec.from_engineering(num, spec.data_type, spec.scale,  # type: ignore[arg-type]
                                             spec.offset)
            except (codec.CodecError, TypeError, ValueError) as e:
                raise ValueError(str(e)) from None
        topic = self.cfg.json_write_topic.format(topic=a.topic, path=a.path_text)
        return topic, json.dumps(nest(a.path, raw)).encode()

    def _write_failed(self, tag_id: str, value: Value, error: str) -> WriteResult:
        self.stats.writes += 1
        self.stats.write_failures += 1
        return WriteResult(tag_id, False, value, None, error)


def tag_problems(driver_id: str, cfg: MqttDriverCfg, tags: Sequence[ResolvedTag]) -> list[str]:
    """What the driver refuses at construction, one line each (``config check`` too)."""
    out: list[str] = []
    for t in tags:
        try:
            parse(t.spec.address)
        except AddressError as e:
            out.append(f"tag {t.id}: {e}")
    if cfg.json_write_topic is not None:
        try:
            cfg.json_write_topic.format(topic="t", path="p")
        except (KeyError, IndexError, ValueError):
            out.append(f"driver {driver_id}: json_write_topic may use only {{topic}} and "
                       "{path}")
    if cfg.json_timestamp_path:
        try:
            parse_path(cfg.json_timestamp_path)
        except AddressError as e:
            out.append(f"driver {driver_id}: json_timestamp_path: {e}")
    return out


def setup_problems(driver_id: str, cfg: MqttDriverCfg, base_dir: Path) -> list[str]:
    """What the driver would stop on when connecting: TLS files, the password variable."""
    out: list[str] = []
    if cfg.tls is not None:
        for label, f in (("tls.ca", cfg.tls.ca), ("tls.cert", cfg.tls.cert),
                         ("tls.key", cfg.tls.key)):
            if f:
                q = Path(os.path.expanduser(f))
                q = q if q.is_absolute() else base_dir / q
                if not q.is_file():
                    out.append(f"driver {driver_id}: {label} {q} does not exist")
    if cfg.password_env and cfg.password_env not in os.environ:
        out.append(f"driver {driver_id}: environment variable {cfg.password_env} "
                   "(password_env) is not set")
    return out


_REFUSED = {134: "bad user name or password", 135: "not authorized", 138: "client banned"}


def _refusal(e: BaseException) -> str | None:
    """Why the broker refused us if retrying cannot help, else None."""
    rc = getattr(e, "rc", None)
    if isinstance(e, MqttConnectError) and rc is not None:
        code = int(getattr(rc, "value", rc))
        if code in _REFUSED:
            return f"broker refused the connection: {_REFUSED[code]}"
    if "CERTIFICATE_VERIFY_FAILED" in str(e):
        return "the broker's TLS certificate is not trusted (tls.ca)"
    return None


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("mqtt: rebirth request failed: %s", task.exception())

