"""The block format of ``sample_chunk``: one tag's samples of one hour, compressed.

A chunk holds columns, not rows: time offsets from the chunk's first sample (µs,
int64), values (float64, NaN for "no value": non-finite numbers are stored as Bad
with no value, so NaN is never a real reading), quality (uint8) and reason code
(int32, -1 for none). Each column is byte-shuffled (byte k of every value together,
as Parquet's BYTE_STREAM_SPLIT does) before one zlib pass, which is what makes slowly
moving sensor values and regular time steps cheap: the high bytes repeat. Blocks
of fewer than ``MIN_COMPRESS`` samples are stored shuffled but uncompressed.

Also the time codes every history table uses: ``to_us``/``from_us`` between aware
datetimes and integer microseconds since the epoch in UTC.
"""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
HOUR_US = 3_600_000_000
MAGIC = b"LC1"  # zlib body
RAW = b"LC0"  # body as is: a small block, where zlib's set-up costs more than it saves
MIN_COMPRESS = 128
_HEAD = struct.Struct("<3sI")
LEVEL = 1  # level 6 saves ~5 % more bytes at 2-3x the compaction time


def to_us(ts: datetime) -> int:
    """An aware (or naive = UTC) datetime as µs since the epoch."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


class Columns(NamedTuple):
    ts: np.ndarray  # int64 µs since the epoch
    value: np.ndarray  # float64, NaN = None
    quality: np.ndarray  # uint8
    reason: np.ndarray  # int32, -1 = None


def _planes(a: np.ndarray, size: int) -> np.ndarray:
    """Byte k of every value together (the byte-shuffle), as one flat uint8 array."""
    n = len(a)
    return a.view(np.uint8).reshape(n, size).T.reshape(n * size)


def _unshuffle(buf: memoryview, n: int, dtype: np.dtype) -> np.ndarray:
    import numpy as np

    size = np.dtype(dtype).itemsize
    b = np.frombuffer(buf, dtype=np.uint8, count=n * size).reshape(size, n)
    return np.ascontiguousarray(b.T).view(dtype).reshape(n)


def encode(ts: np.ndarray, value: np.ndarray, quality: np.ndarray,
           reason: np.ndarray) -> bytes:
    """Sorted columns of one chunk to its block (int64, float64, uint8, int32 columns).

    Lean on purpose: compaction encodes one block per tag per pass, and with thousands of
    tags the per-block overhead, not the bytes, is what costs.
    """
    import numpy as np

    n = len(ts)
    off = np.empty(n, np.int64)
    if n:
        off[0] = 0
        np.subtract(ts[1:], ts[:-1], out=off[1:])
    body = np.concatenate((_planes(off, 8), _planes(np.ascontiguousarray(value), 8),
                           quality.view(np.uint8), _planes(np.ascontiguousarray(reason), 4)))
    if n < MIN_COMPRESS:
        return _HEAD.pack(RAW, n) + body.tobytes()
    return _HEAD.pack(MAGIC, n) + zlib.compress(body, LEVEL)


def decode(blob: bytes, t0: int) -> Columns:
    """A block back to its columns (absolute times from the chunk's ``t0``)."""
    import numpy as np

    magic, n = _HEAD.unpack_from(blob)
    if magic == MAGIC:
        body = memoryview(zlib.decompress(blob[_HEAD.size:]))
    elif magic == RAW:
        body = memoryview(blob)[_HEAD.size:]
    else:
        raise ValueError("not a loopline sample chunk")
    o = 0
    off = _unshuffle(body[o:], n, np.dtype(np.int64))
    o += 8 * n
    value = _unshuffle(body[o:], n, np.dtype(np.float64))
    o += 8 * n
    quality = np.frombuffer(body[o:o + n], dtype=np.uint8).copy()
    o += n
    reason = _unshuffle(body[o:], n, np.dtype(np.int32))
    ts = np.cumsum(off) + (t0 - int(off[0]) if n else 0)
    return Columns(ts.astype(np.int64), value, quality, reason)
