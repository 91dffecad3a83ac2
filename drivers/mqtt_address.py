"""MQTT tag addresses, JSON paths and value coercion: pure functions, no broker.

Two address forms, both in the tag's ``address`` like Modbus's ``hr:100``:

- ``spb:GROUP/EDGE_NODE/DEVICE#METRIC`` a Sparkplug B device metric, or
  ``spb:GROUP/EDGE_NODE#METRIC`` an edge node's own metric. Sparkplug ids cannot
  hold ``/``, ``#`` or ``+``; metric names may hold ``/`` (``Motor/Speed``), so the
  ``#`` is what separates them.
- ``json:TOPIC#PATH`` the value at ``PATH`` (``temp``, ``data.temp``, ``values[2].v``,
  a leading ``$.`` allowed) of a JSON message on the exact ``TOPIC``; ``json:TOPIC``
  takes the whole message (a bare number, boolean or string).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.samples import Value
from drivers import codec

_ID = re.compile(r"^[^/#+]+$")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class AddressError(ValueError):
    """An address that is not one of the two forms; ``str()`` says which part is wrong."""


@dataclass(frozen=True, slots=True)
class SparkplugAddress:
    group: str
    edge_node: str
    device: str | None  # None: a metric of the edge node itself
    metric: str


@dataclass(frozen=True, slots=True)
class JsonAddress:
    topic: str
    path: tuple[str | int, ...]  # () : the whole message
    path_text: str


def parse(address: str) -> SparkplugAddress | JsonAddress:
    """One tag address; raises ``AddressError`` with an example on anything else."""
    if address.startswith("spb:"):
        return _parse_spb(address[4:])
    if address.startswith("json:"):
        return _parse_json(address[5:])
    raise AddressError(
        f"{address!r} is not an MQTT address (spb:GROUP/EDGE/DEVICE#METRIC or json:TOPIC#PATH)"
    )


def _parse_spb(rest: str) -> SparkplugAddress:
    where, sep, metric = rest.partition("#")
    if not sep or not metric:
        raise AddressError(f"spb:{rest}: the metric name goes after '#' (spb:G/E/D#Metric)")
    parts = where.split("/")
    if len(parts) not in (2, 3) or not all(_ID.match(p) for p in parts):
        raise AddressError(
            f"spb:{rest}: expected GROUP/EDGE_NODE or GROUP/EDGE_NODE/DEVICE before '#'"
        )
    return SparkplugAddress(parts[0], parts[1], parts[2] if len(parts) == 3 else None, metric)


def _parse_json(rest: str) -> JsonAddress:
    topic, _, path_text = rest.partition("#")
    if not topic or any(c in topic for c in "+#") or "\x00" in topic:
        raise AddressError(f"json:{rest}: needs an exact topic (no wildcards)")
    return JsonAddress(topic, parse_path(path_text), path_text)


def parse_path(text: str) -> tuple[str | int, ...]:
    """``a.b[2].c`` -> ("a", "b", 2, "c"); an empty path is the whole message."""
    t = text.removeprefix("$").removeprefix(".")
    if not t:
        return ()
    out: list[str | int] = []
    pos = 0
    for m in _STEP.finditer(t):
        gap = t[pos : m.start()]
        if gap not in ("", "."):
            raise AddressError(f"JSON path {text!r}: cannot read {gap!r}")
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(t) or not out:
        raise AddressError(f"JSON path {text!r}: cannot read {t[pos:]!r}")
    return tuple(out)


_MISSING = object()


def extract(doc: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` or ``MISSING``; never raises for a wrong shape."""
    cur = doc
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return _MISSING
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                return _MISSING
            cur = cur[step]
    return cur


MISSING = _MISSING


def nest(path: tuple[str | int, ...], value: Any) -> Any:
    """The JSON document that has ``value`` at ``path`` (for plain-topic writes)."""
    out = value
    for step in reversed(path):
        out = [out] if isinstance(step, int) else {step: out}
    return out


def coerce(value: Any, data_type: str, scale: float = 1.0, offset: float = 0.0) -> Value:
    """A decoded value as the tag's type in engineering units; ``ValueError`` if it
    cannot be one (the caller stores the sample Bad with the message)."""
    if value is None:
        raise ValueError("null value")
    if data_type == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if data_type == "bool":
        if isinstance(value, dict | list):
            raise ValueError(f"{_short(value)} is not a boolean")
        try:
            return codec.as_bool(value)
        except codec.CodecError as e:
            raise ValueError(str(e)) from None
    if isinstance(value, bool):
        num: int | float = int(value)
    elif isinstance(value, int | float):
        num = value
    elif isinstance(value, str):
        try:
            num = float(value) if any(c in value for c in ".eEn") else int(value)
        except ValueError:
            raise ValueError(f"{_short(value)} is not a number") from None
    else:
        raise ValueError(f"{_short(value)} is not a number")
    if data_type in codec.INT_TYPES:
        if isinstance(num, float):
            if not math.isfinite(num) or num != int(num):
                return codec.to_engineering(num, scale, offset)  # keep it; no silent rounding
            num = int(num)
        return codec.to_engineering(num, scale, offset)
    return codec.to_engineering(float(num), scale, offset)


def parse_time(value: Any) -> datetime | None:
    """A JSON message's time: ISO-8601 text or epoch milliseconds; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value / 1000.0, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."
