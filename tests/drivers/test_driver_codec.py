"""Register codec: every type and word/byte order round-trips; odd values are flagged."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, datetime

import pytest

from core.samples import Quality, Sample
from drivers import codec

ORDERS = [(w, b) for w in ("big", "little") for b in ("big", "little")]
SIZES = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "float32": 2, "float64": 4}


def test_register_counts() -> None:
    for t, n in SIZES.items():
        assert codec.register_count(t) == n
    assert codec.register_count("bool") == 1
    with pytest.raises(codec.CodecError):
        codec.register_count("string")


# Known layouts: 123.456 as float32 is 0x42F6E979 (ABCD). The four conventions seen on
# real devices: ABCD (big/big), CDAB (word swap), BADC (byte swap), DCBA (both).
@pytest.mark.parametrize(
    ("word_order", "byte_order", "regs"),
    [
        ("big", "big", [0x42F6, 0xE979]),
        ("little", "big", [0xE979, 0x42F6]),
        ("big", "little", [0xF642, 0x79E9]),
        ("little", "little", [0x79E9, 0xF642]),
    ],
)
def test_float32_known_layouts(word_order: str, byte_order: str, regs: list[int]) -> None:
    assert codec.encode(123.456, "float32", word_order, byte_order) == regs  # type: ignore[arg-type]
    got = codec.decode(regs, "float32", word_order, byte_order)  # type: ignore[arg-type]
    assert got == pytest.approx(123.456, rel=1e-7)


def test_float64_known_layout_abcd_and_dcba() -> None:
    raw = struct.pack(">d", -9876.54321)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in (0, 2, 4, 6)]
    assert codec.encode(-9876.54321, "float64") == words
    dcba = [((w & 0xFF) << 8) | (w >> 8) for w in reversed(words)]
    assert codec.encode(-9876.54321, "float64", "little", "little") == dcba
    assert codec.decode(dcba, "float64", "little", "little") == -9876.54321


@pytest.mark.parametrize(("word_order", "byte_order"), ORDERS)
def test_float_roundtrip_every_order(word_order: str, byte_order: str) -> None:
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, -1.0, 1e-30, 3.4e38, -3.4e38, 1.17549435e-38, 123.456]
    values += [rng.uniform(-1e6, 1e6) for _ in range(300)]
    for v in values:
        r32 = codec.encode(v, "float32", word_order, byte_order)  # type: ignore[arg-type]
        assert len(r32) == 2 and all(0 <= r <= 0xFFFF for r in r32)
        back32 = codec.decode(r32, "float32", word_order, byte_order)  # type: ignore[arg-type]
        assert back32 == codec.float32_roundtrip(v)
        r64 = codec.encode(v, "float64", word_order, byte_order)  # type: ignore[arg-type]
        assert codec.decode(r64, "float64", word_order, byte_order) == v  # type: ignore[arg-type]


@pytest.mark.parametrize(("word_order", "byte_order"), ORDERS)
def test_int_roundtrip_every_order_and_extremes(word_order: str, byte_order: str) -> None:
    rng = random.Random(11)
    ranges = {
        "int16": (-(2**15), 2**15 - 1),
        "uint16": (0, 2**16 - 1),
        "int32": (-(2**31), 2**31 - 1),
        "uint32": (0, 2**32 - 1),
        "int64": (-(2**63), 2**63 - 1),
    }
    for t, (lo, hi) in ranges.items():
        for v in [lo, hi, 0, lo + 1, hi - 1, *[rng.randint(lo, hi) for _ in range(200)]]:
            regs = codec.encode(v, t, word_order, byte_order)  # type: ignore[arg-type]
            assert len(regs) == SIZES[t]
            assert codec.decode(regs, t, word_order, byte_order) == v  # type: ignore[arg-type]
        with pytest.raises(codec.CodecError, match="outside"):
            codec.encode(hi + 1, t, word_order, byte_order)  # type: ignore[arg-type]
        with pytest.raises(codec.CodecError, match="outside"):
            codec.encode(lo - 1, t, word_order, byte_order)  # type: ignore[arg-type]


def test_word_order_is_distinct_from_byte_order() -> None:
    # a uint32 0x00010002 is [1, 2] big-endian and [2, 1] with the low word first
    assert codec.decode([1, 2], "uint32") == 0x00010002
    assert codec.decode([1, 2], "uint32", "little") == 0x00020001
    assert codec.decode([0x0100, 0x0200], "uint32", "big", "little") == 0x00010002
    assert codec.decode([-1 & 0xFFFF], "int16") == -1
    assert codec.decode([0xFFFF], "uint16") == 65535


@pytest.mark.parametrize(("word_order", "byte_order"), ORDERS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_decode_and_become_bad(
    word_order: str, byte_order: str, bad: float
) -> None:
    for t in ("float32", "float64"):
        raw = struct.pack(">f" if t == "float32" else ">d", bad)
        words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        if byte_order == "little":
            words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
        if word_order == "little":
            words = words[::-1]
        v = codec.decode(words, t, word_order, byte_order)  # type: ignore[arg-type]
        assert not codec.is_finite(v)
        s = Sample("M1.x", datetime.now(UTC), v).checked()
        assert s.quality is Quality.BAD and s.value is None and "non-finite" in (s.reason or "")


def test_encode_refuses_bad_values() -> None:
    with pytest.raises(codec.CodecError, match="whole number"):
        codec.encode(1.5, "int16")
    with pytest.raises(codec.CodecError):
        codec.encode(math.nan, "int32")
    with pytest.raises(codec.CodecError, match="float32 range"):
        codec.encode(1e39, "float32")
    with pytest.raises(codec.CodecError):
        codec.decode([1], "float32")
    with pytest.raises(codec.CodecError):
        codec.from_engineering(math.inf, "float32")
    with pytest.raises(codec.CodecError, match="not a number"):
        codec.from_engineering("12", "int16")  # type: ignore[arg-type]


def test_bits_of_a_status_word() -> None:
    word = 0b1000_0000_0000_0101
    assert [codec.decode_bit(word, b) for b in (0, 1, 2, 15)] == [True, False, True, True]
    assert codec.set_bit(word, 1, True) == 0b1000_0000_0000_0111
    assert codec.set_bit(word, 15, False) == 0b0000_0000_0000_0101
    with pytest.raises(codec.CodecError):
        codec.decode_bit(word, 16)


def test_scale_and_offset_round_trip() -> None:
    # motor current in 0.1 A steps: raw 123 -> 12.3 A; writing 12.3 A gives raw 123
    assert codec.to_engineering(123, 0.1) == pytest.approx(12.3)
    assert codec.from_engineering(12.3, "int16", 0.1) == 123
    assert codec.from_engineering(-40.0, "int16", 0.5, -50.0) == 20
    assert codec.to_engineering(20, 0.5, -50.0) == -40.0
    assert codec.to_engineering(7, 1.0, 0.0) == 7 and isinstance(codec.to_engineering(7), int)
