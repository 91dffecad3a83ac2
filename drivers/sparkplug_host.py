"""Sparkplug B host-application state: births, aliases, sequence numbers, deaths.

Pure bookkeeping on decoded messages (no broker), so every rule is testable alone.
``SparkplugHost.handle`` turns one message into samples for the mapped tags plus
the edge nodes that need a rebirth request; the driver sends those. Rules:

- a BIRTH says which metrics exist, their data types and aliases, and their current
  values; a configured tag whose metric is not in its BIRTH is Bad ("not in DBIRTH");
- every NBIRTH/DBIRTH/NDATA/DDATA/DDEATH carries the edge node's sequence number
  0..255; a jump is a gap: all the node's tags go Bad, DATA is ignored and a rebirth
  is requested until the next NBIRTH (the broker delivers one node's messages in
  order over one connection, so no reorder window is kept);
- DATA from a node or device never seen born (loopline started after it) cannot be
  decoded (aliases unknown): a rebirth is requested;
- NDEATH (only with the bdSeq of the current NBIRTH: an older will is ignored) marks
  the node's and its devices' tags Bad; DDEATH marks the device's tags Bad;
- a metric's ``Quality`` property (0 BAD, 192 GOOD, 500 STALE) is honoured, STALE as
  Uncertain; a null metric is Bad.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.config.loader import ResolvedTag
from core.samples import Quality, Sample, Value
from drivers import codec
from drivers.mqtt_address import SparkplugAddress, coerce
from drivers.vision import from_json
from sparkplug_b import BDSEQ, NAMESPACE, NODE_REBIRTH, DataType, Metric, Payload
from sparkplug_b.values import get_value, is_scalar, set_value

DATA_VERBS = frozenset({"NDATA", "DDATA"})
QUALITY_BAD, QUALITY_GOOD, QUALITY_STALE = 0, 192, 500

_TYPE_OF_TAG = {
    "bool": DataType.Boolean,
    "int16": DataType.Int16,
    "uint16": DataType.UInt16,
    "int32": DataType.Int32,
    "uint32": DataType.UInt32,
    "int64": DataType.Int64,
    "float32": DataType.Float,
    "float64": DataType.Double,
    "string": DataType.String,
}


@dataclass(slots=True)
class _Metric:
    name: str
    datatype: int
    tags: list[ResolvedTag]
    # per tag: may a float value pass as is (a float tag without scale or offset)?
    targets: list[tuple[ResolvedTag, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.targets = [(t, t.spec.data_type in ("float32", "float64") and
                         t.spec.scale == 1.0 and t.spec.offset == 0.0) for t in self.tags]


@dataclass(slots=True)
class _Device:
    online: bool = False
    metrics: dict[str, _Metric] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    group: str
    edge: str
    online: bool = False
    bdseq: int | None = None
    seq: int | None = None
    awaiting_rebirth: bool = False
    rebirth_asked_mono: float = -1e9
    metrics: dict[str, _Metric] = field(default_factory=dict)
    aliases: dict[int, tuple[str | None, _Metric]] = field(default_factory=dict)
    devices: dict[str, _Device] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What one message asks of the driver."""

    samples: list[Sample] = field(default_factory=list)
    fresh: list[Sample] = field(default_factory=list)  # device values (count as updates)
    rebirth: list[tuple[str, str]] = field(default_factory=list)  # (group, edge node)
    ignored: int = 0  # DATA messages dropped (gap, unborn node)
    gaps: int = 0


def rebirth_request() -> bytes:
    """NCMD payload asking an edge node for a complete BIRTH sequence."""
    p = Payload()
    p.timestamp = int(time.time() * 1000)
    m = p.metrics.add()
    m.name = NODE_REBIRTH
    m.timestamp = p.timestamp
    set_value(m, DataType.Boolean, True)
    return p.SerializeToString()


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


class SparkplugHost:
    """The host application's view of the edge nodes the tags name."""

    def __init__(
        self,
        tags: Iterable[tuple[ResolvedTag, SparkplugAddress]],
        now: Callable[[], datetime],
        rebirth_min_interval_s: float = 5.0,
    ) -> None:
        self.now = now
        self.rebirth_min_interval_s = rebirth_min_interval_s
        # (group, edge, device | None, metric) -> tags; a metric may feed several tags
        self.index: dict[tuple[str, str, str | None, str], list[ResolvedTag]] = {}
        self.node_tags: dict[tuple[str, str], list[ResolvedTag]] = {}
        self.device_tags: dict[tuple[str, str, str], list[ResolvedTag]] = {}
        self.address: dict[str, SparkplugAddress] = {}
        for rt, a in tags:
            self.index.setdefault((a.group, a.edge_node, a.device, a.metric), []).append(rt)
            self.node_tags.setdefault((a.group, a.edge_node), []).append(rt)
            if a.device is not None:
                self.device_tags.setdefault((a.group, a.edge_node, a.device), []).append(rt)
            self.address[rt.id] = a
        self.nodes: dict[tuple[str, str], _Node] = {
            k: _Node(*k) for k in self.node_tags
        }

    # ---------------------------------------------------------------- topics

    def subscriptions(self) -> list[str]:
        """One wildcard per edge node: its births, data, deaths (and our commands)."""
        return [f"{NAMESPACE}/{g}/+/{e}/#" for g, e in self.nodes]

    def is_live(self, tag_id: str) -> bool:
        """Born, not dead, no gap: Sparkplug reports by exception, so silence is current."""
        a = self.address.get(tag_id)
        if a is None:
            return False
        n = self.nodes[(a.group, a.edge_node)]
        if not n.online or n.awaiting_rebirth:
            return False
        if a.device is None:
            return True
        d = n.devices.get(a.device)
        return d is not None and d.online

    def all_tag_ids(self) -> list[str]:
        return list(self.address)

    def broker_lost(self) -> None:
        """Our connection dropped: nothing is known any more until the next births."""
        for n in self.nodes.values():
            n.online = False
            n.seq = None
            n.awaiting_rebirth = False
            for d in n.devices.values():
                d.online = False

    # ---------------------------------------------------------------- messages

    def handle(self, verb: str, group: str, edge: str, device: str | None,
               payload: bytes) -> Outcome:
        out = Outcome()
        node = self.nodes.get((group, edge))
        if node is None or verb in ("NCMD", "DCMD", "STATE"):
            return out
        try:
            p = Payload.FromString(payload)
        except Exception:
            out.ignored += 1
            self._ask_rebirth(node, out)
            return out
        if verb == "NBIRTH":
            self._nbirth(node, p, out)
        elif verb == "NDEATH":
            self._ndeath(node, p, out)
        elif not self._in_sequence(node, verb, p, out):
            pass
        elif verb == "DBIRTH" and device is not None:
            self._dbirth(node, device, p, out)
        elif verb == "DDEATH" and device is not None:
            self._ddeath(node, device, p, out)
        elif verb == "NDATA":
            self._data(node, None, p, out)
        elif verb == "DDATA" and device is not None:
            self._data(node, device, p, out)
        return out

    def _in_sequence(self, node: _Node, verb: str, p: Payload, out: Outcome) -> bool:
        if not node.online or node.awaiting_rebirth or node.seq is None:
            out.ignored += 1
            self._ask_rebirth(node, out)
            return False
        seq = int(p.seq) if p.HasField("seq") else None
        expected = (node.seq + 1) % 256
        if seq != expected:
            out.gaps += 1
            out.ignored += 1
            node.awaiting_rebirth = True
            reason = f"Sparkplug sequence gap (expected {expected}, got {seq})"
            self._bad(self.node_tags.get((node.group, node.edge), []), self._payload_ts(p),
                      reason, out)
            self._ask_rebirth(node, out, force=True)
            return False
        node.seq = seq
        return True

    def _ask_rebirth(self, node: _Node, out: Outcome, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - node.rebirth_asked_mono < self.rebirth_min_interval_s:
            return
        node.rebirth_asked_mono = now
        out.rebirth.append((node.group, node.edge))

    def _nbirth(self, node: _Node, p: Payload, out: Outcome) -> None:
        node.online = True
        node.awaiting_rebirth = False
        node.seq = int(p.seq) if p.HasField("seq") else 0
        node.aliases = {}
        node.metrics = {}
        for d in node.devices.values():  # a new session: devices are born again after it
            d.online = False
            d.metrics = {}
        for m in p.metrics:
            if m.name == BDSEQ:
                node.bdseq = int(m.long_value) if m.HasField("long_value") else int(m.int_value)
        node.metrics = self._register(node, None, p, out)
        self._missing(node, None, node.metrics, p, out, "NBIRTH")

    def _dbirth(self, node: _Node, device: str, p: Payload, out: Outcome) -> None:
        d = node.devices.setdefault(device, _Device())
        # aliases are unique per edge node; drop this device's old ones first
        node.aliases = {a: v for a, v in node.aliases.items() if v[0] != device}
        d.metrics = self._register(node, device, p, out)
        d.online = True
        self._missing(node, device, d.metrics, p, out, "DBIRTH")

    def _register(self, node: _Node, device: str | None, p: Payload,
                  out: Outcome) -> dict[str, _Metric]:
        metrics: dict[str, _Metric] = {}
        for m in p.metrics:
            if not m.name:
                continue
            tags = self.index.get((node.group, node.edge, device, m.name), [])
            mm = _Metric(m.name, int(m.datatype), tags)
            metrics[m.name] = mm
            if m.HasField("alias"):
                node.aliases[int(m.alias)] = (device, mm)
            if tags:
                self._values(mm, m, None, out, p)
        return metrics

    def _missing(self, node: _Node, device: str | None, metrics: dict[str, _Metric],
                 p: Payload, out: Outcome, verb: str) -> None:
        tags = (self.device_tags.get((node.group, node.edge, device), []) if device
                else [t for t in self.node_tags.get((node.group, node.edge), [])
                      if self.address[t.id].device is None])
        gone = [t for t in tags if self.address[t.id].metric not in metrics]
        if gone:
            ts = self._payload_ts(p)
            for t in gone:
                out.samples.append(Sample(t.id, ts, None, Quality.BAD,
                                          f"metric {self.address[t.id].metric!r} not in {verb}"))

    def _data(self, node: _Node, device: str | None, p: Payload, out: Outcome) -> None:
        if device is not None:
            d = node.devices.get(device)
            if d is None or not d.online:
                out.ignored += 1
                node.awaiting_rebirth = True
                self._ask_rebirth(node, out)
                return
            by_name = d.metrics
        else:
            by_name = node.metrics
        aliases = node.aliases
        payload_ts: datetime | None = None
        last_ms, ts = -1, None
        for m in p.metrics:
            if m.HasField("alias"):
                hit = aliases.get(m.alias)
                mm = hit[1] if hit is not None and hit[0] == device else None
            else:
                mm = by_name.get(m.name)
            if mm is None or not mm.tags:
                continue  # not in the BIRTH (a broken edge node), or no tag wants it
            ms = m.timestamp  # one DATA's metrics mostly share their time: convert once
            if ms != last_ms or ts is None:
                last_ms = ms
                if ms:
                    ts = _ts(ms)
                else:
                    payload_ts = payload_ts or self._payload_ts(p)
                    ts = payload_ts
            self._values(mm, m, ts, out)

    def _values(self, mm: _Metric, m: Metric, ts: datetime | None, out: Outcome,
                p: Payload | None = None) -> None:
        if ts is None:
            assert p is not None
            ts = _ts(m.timestamp) if m.timestamp else self._payload_ts(p)
        dt = m.datatype or mm.datatype
        raw = get_value(m, dt)
        fresh = out.fresh
        if raw is not None and not m.HasField("properties"):
            for t, plain in mm.targets:  # the common case: a good value
                if plain and type(raw) is float and math.isfinite(raw):
                    fresh.append(Sample(t.id, ts, raw))
                    continue
                spec = t.spec
                try:
                    v: Value = coerce(raw, spec.data_type, spec.scale, spec.offset)
                    if spec.vision is not None:  # a station's result in a String metric
                        v = from_json(v, spec.vision)
                except ValueError as e:
                    fresh.append(Sample(t.id, ts, None, Quality.BAD, str(e)))
                    continue
                fresh.append(Sample(t.id, ts, v).checked())
            return
        quality, reason = Quality.GOOD, None
        if m.is_null:
            quality, reason = Quality.BAD, "null value"
        elif raw is None:
            quality = Quality.BAD
            reason = (f"unsupported Sparkplug type {DataType.name(dt)}" if not is_scalar(dt)
                      else "no value")
        else:
            quality, reason = _property_quality(m)
        for t in mm.tags:
            if raw is None:
                fresh.append(Sample(t.id, ts, None, quality, reason))
                continue
            spec = t.spec
            try:
                v = coerce(raw, spec.data_type, spec.scale, spec.offset)
                if spec.vision is not None:
                    v = from_json(v, spec.vision)
            except ValueError as e:
                fresh.append(Sample(t.id, ts, None, Quality.BAD, str(e)))
                continue
            fresh.append(Sample(t.id, ts, v, quality, reason).checked())

    def _ndeath(self, node: _Node, p: Payload, out: Outcome) -> None:
        bdseq = None
        for m in p.metrics:
            if m.name == BDSEQ:
                bdseq = int(m.long_value) if m.HasField("long_value") else int(m.int_value)
        if node.bdseq is not None and bdseq is not None and bdseq != node.bdseq:
            return  # the will of an older session, delivered late
        was = node.online
        node.online = False
        node.seq = None
        node.awaiting_rebirth = False
        for d in node.devices.values():
            d.online = False
        if was or node.bdseq is None:
            # an NDEATH payload carries no reliable time (its will was set at connect)
            self._bad(self.node_tags.get((node.group, node.edge), []), self.now(),
                      "Sparkplug NDEATH (edge node offline)", out)

    def _ddeath(self, node: _Node, device: str, p: Payload, out: Outcome) -> None:
        d = node.devices.get(device)
        if d is not None:
            d.online = False
        self._bad(self.device_tags.get((node.group, node.edge, device), []),
                  self._payload_ts(p), "Sparkplug DDEATH (device offline)", out)

    def _bad(self, tags: list[ResolvedTag], ts: datetime, reason: str, out: Outcome) -> None:
        out.samples.extend(Sample(t.id, ts, None, Quality.BAD, reason) for t in tags)

    def _payload_ts(self, p: Payload) -> datetime:
        return _ts(p.timestamp) if p.HasField("timestamp") and p.timestamp else self.now()

    # ---------------------------------------------------------------- commands

    def born_type(self, tag_id: str) -> int | None:
        """The data type the tag's metric was born with (None: not born now)."""
        a = self.address[tag_id]
        node = self.nodes[(a.group, a.edge_node)]
        if a.device is None:
            mm = node.metrics.get(a.metric)
        else:
            d = node.devices.get(a.device)
            mm = d.metrics.get(a.metric) if d is not None else None
        return mm.datatype if mm is not None else None

    def command(self, tag: ResolvedTag, value: Value) -> tuple[str, bytes]:
        """Topic and payload of the NCMD/DCMD that writes ``value`` to the tag's metric.

        Raises ``ValueError`` with the reason when the device cannot take it now: the
        node or device is offline, the metric was not in its BIRTH, or the value does
        not fit the metric's type.
        """
        a = self.address[tag.id]
        node = self.nodes[(a.group, a.edge_node)]
        if not node.online or node.awaiting_rebirth:
            raise ValueError(f"edge node {a.group}/{a.edge_node} is offline")
        if a.device is None:
            metrics = node.metrics
        else:
            d = node.devices.get(a.device)
            if d is None or not d.online:
                raise ValueError(f"device {a.group}/{a.edge_node}/{a.device} is offline")
            metrics = d.metrics
        mm = metrics.get(a.metric)
        if mm is None:
            raise ValueError(f"metric {a.metric!r} was not in the device's BIRTH")
        dt = mm.datatype or _TYPE_OF_TAG.get(tag.spec.data_type, DataType.Unknown)
        if not is_scalar(dt):
            raise ValueError(f"metric {a.metric!r} has type {DataType.name(dt)}: not writable")
        spec = tag.spec
        raw: Value
        try:
            if dt == DataType.Boolean:
                raw = codec.as_bool(value)
            elif dt in (DataType.String, DataType.Text, DataType.UUID):
                raw = str(value)
            else:
                num = float(value) if isinstance(value, str) else value
                raw = codec.from_engineering(num, spec.data_type, spec.scale,  # type: ignore[arg-type]
                                             spec.offset)
                if dt not in (DataType.Float, DataType.Double) and isinstance(raw, float):
                    if raw != int(raw):
                        raise ValueError(f"{value!r} is not a whole number for "
                                         f"{DataType.name(dt)}")
                    raw = int(raw)
        except (codec.CodecError, TypeError, ValueError) as e:
            raise ValueError(str(e)) from None
        p = Payload()
        p.timestamp = int(time.time() * 1000)
        m = p.metrics.add()
        m.name = a.metric
        m.timestamp = p.timestamp
        set_value(m, dt, raw)  # type: ignore[arg-type]
        verb, tail = ("NCMD", a.edge_node) if a.device is None else \
            ("DCMD", f"{a.edge_node}/{a.device}")
        return f"{NAMESPACE}/{a.group}/{verb}/{tail}", p.SerializeToString()


def _property_quality(m: Metric) -> tuple[Quality, str | None]:
    props = m.properties
    for k, v in zip(props.keys, props.values, strict=False):
        if k != "Quality":
            continue
        code = int(v.int_value) if v.HasField("int_value") else int(v.long_value)
        if code == QUALITY_GOOD:
            return Quality.GOOD, None
        if code == QUALITY_STALE:
            return Quality.UNCERTAIN, "device quality STALE"
        return Quality.BAD, f"device quality {code}"
    return Quality.GOOD, None
