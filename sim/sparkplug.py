"""A Sparkplug B edge node on paho-mqtt 2.2: what a plant's gateway publishes.

The twin uses it to publish one line over Sparkplug B; the driver's tests use it as
the device under test. It follows the specification's edge-node side: a will
NDEATH with the session's bdSeq, NBIRTH (``Node Control/Rebirth``, ``bdSeq``) then
one DBIRTH per device with every metric, its data type, an alias and its current
value; DDATA by alias with the sequence number 0..255 running over all of the
node's messages; a rebirth on NCMD ``Node Control/Rebirth``; DCMD writes handed to
``on_command`` and, when accepted, reported back in DDATA.

paho's network loop runs in its own thread, so every publish holds one lock: the
sequence number and the order on the wire always agree.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from sparkplug_b import BDSEQ, NAMESPACE, NODE_REBIRTH, DataType, Payload, get_value, set_value

log = logging.getLogger("sim.sparkplug")

Value = int | float | bool | str | None
# (device, metric name, value) -> accept?; the node then reports the value in DDATA
CommandHandler = Callable[[str, str, Value], bool]


@dataclass
class MetricDef:
    datatype: int
    value: Value
    alias: int = 0  # assigned at birth


def now_ms() -> int:
    return int(time.time() * 1000)


class EdgeNode:
    """One Sparkplug edge node with its devices; ``devices`` maps device id to its
    metrics ``{name: (datatype, initial value)}``."""

    def __init__(
        self,
        host: str,
        port: int,
        group: str,
        edge_node: str,
        devices: Mapping[str, Mapping[str, tuple[int, Value]]],
        *,
        node_metrics: Mapping[str, tuple[int, Value]] | None = None,
        on_command: CommandHandler | None = None,
        use_aliases: bool = True,
        username: str | None = None,
        password: str | None = None,
        ca: str | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.host, self.port = host, port
        self.group, self.edge_node = group, edge_node
        self.on_command = on_command
        self.use_aliases = use_aliases
        self.clock_ms = clock_ms
        self.node_metrics = {k: MetricDef(dt, v) for k, (dt, v) in (node_metrics or {}).items()}
        self.devices = {d: {k: MetricDef(dt, v) for k, (dt, v) in ms.items()}
                        for d, ms in devices.items()}
        self.dead_devices: set[str] = set()
        self.bdseq = 0
        self.seq = 0
        self.rebirths = 0  # rebirth requests served
        self.commands: list[tuple[str, str, Value]] = []
        self._lock = threading.RLock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        next_alias = 1
        for ms in [self.node_metrics, *self.devices.values()]:
            for m in ms.values():
                m.alias = next_alias
                next_alias += 1
        self._auth = (username, password, ca)
        self._client = self._new_client(username, password, ca)

    # ---------------------------------------------------------------- session

    def _topic(self, verb: str, device: str | None = None) -> str:
        tail = f"{self.edge_node}/{device}" if device else self.edge_node
        return f"{NAMESPACE}/{self.group}/{verb}/{tail}"

    def _new_client(self, username: str | None, password: str | None,
                    ca: str | None) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                        client_id=f"{self.group}-{self.edge_node}", clean_session=True,
                        reconnect_on_failure=False)
        if username:
            c.username_pw_set(username, password)
        if ca:
            c.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        death = Payload()
        m = death.metrics.add()
        m.name = BDSEQ
        set_value(m, DataType.Int64, self.bdseq)
        c.will_set(self._topic("NDEATH"), death.SerializeToString(), qos=1, retain=False)
        return c

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any = None) -> None:
        if not rc.is_failure:
            self._connected.set()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect, subscribe to our commands, publish NBIRTH and the DBIRTHs."""
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"edge node {self.edge_node}: broker did not accept us")
        self._client.subscribe([(self._topic("NCMD"), 1),
                                (f"{NAMESPACE}/{self.group}/DCMD/{self.edge_node}/#", 1)])
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"edge node {self.edge_node}: no SUBACK")
        self.birth()

    def reconnect(self, timeout: float = 10.0) -> None:
        """A new MQTT session after a death: the next bdSeq, a new will, a full BIRTH."""
        self.bdseq = (self.bdseq + 1) % 256
        self._connected.clear()
        self._subscribed.clear()
        self._client = self._new_client(*self._auth)
        self.connect(timeout)

    def birth(self) -> None:
        """A complete BIRTH sequence: NBIRTH with seq 0, then every live device's DBIRTH."""
        with self._lock:
            self.seq = 0
            ts = self.clock_ms()
            p = Payload(timestamp=ts, seq=0)
            for name, dt, value, alias in (
                (BDSEQ, DataType.Int64, self.bdseq, None),
                (NODE_REBIRTH, DataType.Boolean, False, None),
            ):
                m = p.metrics.add(name=name, timestamp=ts)
                if alias is not None:
                    m.alias = alias
                set_value(m, dt, value)
            self._add_birth_metrics(p, self.node_metrics, ts)
            self._publish("NBIRTH", None, p)
            for d in self.devices:
                if d not in self.dead_devices:
                    self._dbirth(d)

    def _add_birth_metrics(self, p: Payload, metrics: Mapping[str, MetricDef], ts: int) -> None:
        for name, md in metrics.items():
            m = p.metrics.add(name=name, timestamp=ts)
            if self.use_aliases:
                m.alias = md.alias
            set_value(m, md.datatype, md.value)

    def _dbirth(self, device: str) -> None:
        p = Payload(timestamp=self.clock_ms())
        self._add_birth_metrics(p, self.devices[device], p.timestamp)
        self._publish("DBIRTH", device, p)

    def _publish(self, verb: str, device: str | None, p: Payload) -> None:
        """Stamp the next sequence number and send; the caller holds the lock."""
        if verb != "NBIRTH":
            self.seq = (self.seq + 1) % 256
        p.seq = self.seq
        self._client.publish(self._topic(verb, device), p.SerializeToString(), qos=0)

    # ---------------------------------------------------------------- data

    def publish(self, device: str | None, values: Mapping[str, Value],
                ts_ms: int | None = None) -> None:
        """DDATA (or NDATA with ``device=None``) of the changed metrics, by alias."""
        with self._lock:
            metrics = self.node_metrics if device is None else self.devices[device]
            ts = self.clock_ms() if ts_ms is None else ts_ms
            p = Payload(timestamp=ts)
            for name, value in values.items():
                md = metrics[name]
                md.value = value
                m = p.metrics.add(timestamp=ts)
                if self.use_aliases:
                    m.alias = md.alias
                else:
                    m.name = name
                set_value(m, md.datatype, value)
            self._publish("NDATA" if device is None else "DDATA", device, p)

    def lose_messages(self, n: int = 1) -> None:
        """Skip ``n`` sequence numbers, as if those messages were lost on the way."""
        with self._lock:
            self.seq = (self.seq + n) % 256

    def device_death(self, device: str) -> None:
        with self._lock:
            self.dead_devices.add(device)
            self._publish("DDEATH", device, Payload(timestamp=self.clock_ms()))

    def device_birth(self, device: str) -> None:
        with self._lock:
            self.dead_devices.discard(device)
            self._dbirth(device)

    # ---------------------------------------------------------------- commands

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            p = Payload.FromString(msg.payload)
        except Exception:
            log.warning("edge node %s: undecodable command on %s", self.edge_node, msg.topic)
            return
        parts = msg.topic.split("/")
        if parts[2] == "NCMD":
            for m in p.metrics:
                if m.name == NODE_REBIRTH and get_value(m, DataType.Boolean):
                    self.rebirths += 1
                    self.birth()
            return
        if parts[2] == "DCMD" and len(parts) > 4:
            self._device_command(parts[4], p)

    def _device_command(self, device: str, p: Payload) -> None:
        metrics = self.devices.get(device)
        if metrics is None or device in self.dead_devices:
            return
        by_alias = {md.alias: (n, md) for n, md in metrics.items()}
        accepted: dict[str, Value] = {}
        for m in p.metrics:
            if m.name:
                name, md = m.name, metrics.get(m.name)
            else:
                name, md = by_alias.get(int(m.alias), ("", None))
            if md is None:
                continue
            value = get_value(m, m.datatype or md.datatype)
            self.commands.append((device, name, value))
            if self.on_command is None or self.on_command(device, name, value):
                accepted[name] = value
        if accepted:
            self.publish(device, accepted)

    # ---------------------------------------------------------------- leaving

    def disconnect(self) -> None:
        """A clean goodbye: NDEATH published by us (a clean disconnect fires no will)."""
        with self._lock:
            d = Payload()
            m = d.metrics.add(name=BDSEQ)
            set_value(m, DataType.Int64, self.bdseq)
            info = self._client.publish(self._topic("NDEATH"), d.SerializeToString(), qos=1)
            info.wait_for_publish(5.0)
        self._client.disconnect()
        self._client.loop_stop()

    def kill(self) -> None:
        """Drop the connection without a DISCONNECT: the broker publishes our will."""
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._client.loop_stop()
