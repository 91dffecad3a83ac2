"""Where a metric's value lives in the payload for each Sparkplug data type.

The specification stores Int8/16/32 in ``int_value`` (uint32) and Int64 in
``long_value`` (uint64) as two's complement, so negative numbers need the sign
put back on reading. Scalar types only; arrays, data sets, templates and files
are reported as unsupported by the caller rather than guessed at.
"""

from __future__ import annotations

from sparkplug_b import sparkplug_b_pb2 as pb

Payload = pb.Payload
Metric = pb.Payload.Metric


class DataType:
    """The specification's data type numbers (enum ``DataType`` in the schema)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15

    @staticmethod
    def name(code: int) -> str:
        try:
            return pb.DataType.Name(code)
        except ValueError:
            return f"type {code}"


NODE_REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"

_SIGNED_BITS = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
_INT_FIELD = {
    DataType.Int8: "int_value",
    DataType.Int16: "int_value",
    DataType.Int32: "int_value",
    DataType.UInt8: "int_value",
    DataType.UInt16: "int_value",
    DataType.UInt32: "int_value",
    DataType.Int64: "long_value",
    DataType.UInt64: "long_value",
    DataType.DateTime: "long_value",  # ms since the epoch
}
_STR_TYPES = (DataType.String, DataType.Text, DataType.UUID)

ScalarValue = int | float | bool | str


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


def get_value(m: Metric, datatype: int) -> ScalarValue | None:
    """The metric's value per its data type; ``None`` when null or not a scalar type."""
    if m.is_null:
        return None
    if datatype in _INT_FIELD:
        field = _INT_FIELD[datatype]
        if not m.HasField(field):
            return None
        raw = getattr(m, field)
        bits = _SIGNED_BITS.get(datatype)
        return _signed(raw, bits) if bits else raw
    if datatype == DataType.Float:
        return m.float_value if m.HasField("float_value") else None
    if datatype == DataType.Double:
        return m.double_value if m.HasField("double_value") else None
    if datatype == DataType.Boolean:
        return m.boolean_value if m.HasField("boolean_value") else None
    if datatype in _STR_TYPES:
        return m.string_value if m.HasField("string_value") else None
    return None


def is_scalar(datatype: int) -> bool:
    return datatype in _INT_FIELD or datatype in _STR_TYPES or datatype in (
        DataType.Float, DataType.Double, DataType.Boolean)


def set_value(m: Metric, datatype: int, value: ScalarValue | None) -> None:
    """Put ``value`` into the field the data type uses (two's complement for signed)."""
    m.datatype = datatype
    if value is None:
        m.is_null = True
        return
    if datatype in _INT_FIELD:
        bits = 32 if _INT_FIELD[datatype] == "int_value" else 64
        setattr(m, _INT_FIELD[datatype], int(value) & ((1 << bits) - 1))
    elif datatype == DataType.Float:
        m.float_value = float(value)
    elif datatype == DataType.Double:
        m.double_value = float(value)
    elif datatype == DataType.Boolean:
        m.boolean_value = bool(value)
    elif datatype in _STR_TYPES:
        m.string_value = str(value)
    else:
        raise ValueError(f"{DataType.name(datatype)} is not a scalar Sparkplug type")
