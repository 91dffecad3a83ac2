"""Register codec: Python values <-> 16-bit Modbus registers, pure functions.

Devices disagree on how multi-register values are laid out, so both the order of
the 16-bit words (``word_order``) and the order of the two bytes inside each word
(``byte_order``) are configurable per tag. Every type is handled the same way:
pack big-endian, split into words, then reorder. Decoding never raises on odd
values: NaN and infinity come back as floats so ``Sample.checked()`` can mark
them Bad with a reason, and callers can ask ``is_finite`` up front.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

Order = Literal["big", "little", "ABCD", "CDAB", "BADC", "DCBA"]

# Layout names as device manuals write them (A = most significant byte) -> (word, byte)
LAYOUTS: dict[str, tuple[str, str]] = {
    "ABCD": ("big", "big"),
    "CDAB": ("little", "big"),
    "BADC": ("big", "little"),
    "DCBA": ("little", "little"),
}


def layout_name(word_order: str, byte_order: str) -> str:
    """The ABCD-style name of a (word order, byte order) pair."""
    for name, pair in LAYOUTS.items():
        if pair == (word_order, byte_order):
            return name
    raise CodecError(f"unknown register order {word_order!r}/{byte_order!r}")

# struct format (big-endian) and register count per data type
_FORMATS: dict[str, tuple[str, int]] = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "int64": (">q", 4),
    "float32": (">f", 2),
    "float64": (">d", 4),
}

INT_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64"})
FLOAT_TYPES = frozenset({"float32", "float64"})

_INT_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


class CodecError(ValueError):
    """A value that cannot be encoded for its register type (range, type, NaN)."""


def register_count(data_type: str) -> int:
    """How many 16-bit registers a value of ``data_type`` occupies (bool: one)."""
    if data_type == "bool":
        return 1
    try:
        return _FORMATS[data_type][1]
    except KeyError:
        raise CodecError(f"data type {data_type!r} cannot be stored in Modbus registers") from None


def _reorder(words: list[int], word_order: Order, byte_order: Order) -> list[int]:
    # Both operations are their own inverse, so encode and decode share this.
    if word_order in LAYOUTS:
        word_order, byte_order = LAYOUTS[word_order]  # type: ignore[assignment]
    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if word_order == "little":
        words = words[::-1]
    return words


def decode(
    registers: Sequence[int],
    data_type: str,
    word_order: Order = "big",
    byte_order: Order = "big",
) -> int | float:
    """Registers as read from the device -> the raw value (before scale/offset)."""
    fmt, n = _FORMATS.get(data_type, ("", 0))
    if not fmt:
        raise CodecError(f"data type {data_type!r} cannot be decoded from registers")
    if len(registers) != n:
        raise CodecError(f"{data_type} needs {n} registers, got {len(registers)}")
    words = _reorder([int(r) & 0xFFFF for r in registers], word_order, byte_order)
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    return struct.unpack(fmt, raw)[0]


def encode(
    value: int | float,
    data_type: str,
    word_order: Order = "big",
    byte_order: Order = "big",
) -> list[int]:
    """A raw value -> registers in the device's order; refuses what does not fit."""
    fmt, n = _FORMATS.get(data_type, ("", 0))
    if not fmt:
        raise CodecError(f"data type {data_type!r} cannot be encoded to registers")
    if data_type in INT_TYPES:
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise CodecError(f"{value!r} is not a whole number for {data_type}")
            value = int(value)
        lo, hi = _INT_RANGE[data_type]
        if not lo <= int(value) <= hi:
            raise CodecError(f"{value} is outside the {data_type} range {lo}..{hi}")
    else:
        value = float(value)
        if data_type == "float32" and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise CodecError(f"{value} is outside the float32 range")
    raw = struct.pack(fmt, value)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * n, 2)]
    return _reorder(words, word_order, byte_order)


def decode_bit(register: int, bit: int) -> bool:
    """Bit ``bit`` (0 = least significant) of a status word."""
    if not 0 <= bit <= 15:
        raise CodecError(f"bit {bit} is outside 0..15")
    return bool((int(register) >> bit) & 1)


def set_bit(register: int, bit: int, on: bool) -> int:
    """The status word with one bit changed (for read-modify-write of a bit tag)."""
    if not 0 <= bit <= 15:
        raise CodecError(f"bit {bit} is outside 0..15")
    return (int(register) | (1 << bit)) if on else (int(register) & ~(1 << bit) & 0xFFFF)


def to_engineering(raw: int | float, scale: float = 1.0, offset: float = 0.0) -> int | float:
    """raw × scale + offset; integers stay integers when there is nothing to scale."""
    if scale == 1.0 and offset == 0.0:
        return raw
    return raw * scale + offset


def from_engineering(
    value: float, data_type: str, scale: float = 1.0, offset: float = 0.0
) -> int | float:
    """The inverse of ``to_engineering`` for writes; integer types are rounded."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CodecError(f"{value} cannot be written to a device")
    if scale == 0:
        raise CodecError("scale is 0: the raw value cannot be computed")
    raw: float | int = value if (scale == 1.0 and offset == 0.0) else (value - offset) / scale
    if data_type in INT_TYPES:
        return round(raw)
    return float(raw)


def float32_roundtrip(value: float) -> float:
    """What a float32 register will hold for ``value`` (to compare read-backs)."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def as_bool(value: object) -> bool:
    """A value meant for a bool tag; text must say what it means ("false" is False)."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "on", "yes"):
            return True
        if low in ("false", "0", "off", "no"):
            return False
        raise CodecError(f"{value!r} is not a boolean")
    if value is None:
        raise CodecError("None is not a boolean")
    return bool(value)


def is_finite(value: int | float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
