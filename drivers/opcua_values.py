"""OPC UA values: Variants of exactly the node's type for writes, Samples from DataValues.

Kept apart from the session logic so the conversions can be tested on their own
and reused by anything else that reads OPC UA.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from core.config.loader import ResolvedTag
from core.samples import Quality, Sample, Value
from drivers.codec import as_bool

VARIANT_TYPES: dict[str, ua.VariantType] = {
    "bool": ua.VariantType.Boolean,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "int64": ua.VariantType.Int64,
    "float32": ua.VariantType.Float,
    "float64": ua.VariantType.Double,
    "string": ua.VariantType.String,
}

_INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
NUMERIC_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "float32", "float64"})


def to_variant(value: Value, data_type: str, scale: float = 1.0, offset: float = 0.0) -> ua.Variant:
    """An engineering value -> a Variant of exactly the node's type.

    Servers reject a Double written to a Float node, so the type never comes from
    the Python value. Raises ``ValueError`` with a readable message.
    """
    vt = VARIANT_TYPES[data_type]
    if data_type == "string":
        return ua.Variant("" if value is None else str(value), vt)
    if data_type == "bool":
        return ua.Variant(as_bool(value), vt)
    if value is None or (isinstance(value, bool) and data_type != "bool"):
        raise ValueError(f"{value!r} is not a number for a {data_type} node")
    try:
        num = float(value) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{value!r} is not a number for a {data_type} node") from None
    if isinstance(num, float) and not math.isfinite(num):
        raise ValueError(f"{num} cannot be written")
    if scale != 1.0 or offset != 0.0:
        if scale == 0:
            raise ValueError("scale is 0: the raw value cannot be computed")
        num = (num - offset) / scale
    if data_type in _INT_RANGE:
        if isinstance(num, float) and (scale == 1.0 and offset == 0.0) and num != int(num):
            raise ValueError(f"{num} is not a whole number for a {data_type} node")
        iv = round(num)
        lo, hi = _INT_RANGE[data_type]
        if not lo <= iv <= hi:
            raise ValueError(f"{iv} is outside the {data_type} range {lo}..{hi}")
        return ua.Variant(iv, vt)
    fv = float(num)
    if data_type == "float32" and abs(fv) > 3.4028234663852886e38:
        raise ValueError(f"{fv} is outside the float32 range")
    return ua.Variant(fv, vt)


def _plain(v: Any) -> Value:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, ua.LocalizedText):
        return v.Text
    return str(v)


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def sample_from_datavalue(tag: ResolvedTag, dv: ua.DataValue | None) -> Sample:
    """One DataValue -> one Sample: source time, severity-mapped quality, scaling."""
    spec = tag.spec
    if dv is None:
        return Sample(tag.id, datetime.now(UTC), None, Quality.BAD, "no data value")
    ts = _utc(dv.SourceTimestamp) or _utc(dv.ServerTimestamp) or datetime.now(UTC)
    sc = dv.StatusCode
    code = sc.value if sc is not None else 0
    q = Quality.from_status_code(code)
    raw = dv.Value.Value if dv.Value is not None else None
    if q is Quality.BAD:
        return Sample(tag.id, ts, None, q, sc.name if sc is not None else "bad")
    value = _plain(raw)
    if spec.vision is not None:
        from drivers.vision import from_json

        try:
            value = from_json("" if value is None else value, spec.vision)
        except ValueError as e:
            return Sample(tag.id, ts, None, Quality.BAD, f"vision result: {e}"[:120])
    elif (
        (spec.scale != 1.0 or spec.offset != 0.0)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        value = value * spec.scale + spec.offset
    reason = sc.name if q is Quality.UNCERTAIN and sc is not None else None
    return Sample(tag.id, ts, value, q, reason).checked()
