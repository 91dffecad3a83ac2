"""The block format of ``sample_chunk``: one tag's samples of one hour, compressed.

A chunk holds columns, not rows: time offsets from the chunk's first sample (µs,
int64), values (float64, NaN for "no value": non-finite numbers are stored as Bad
with no value, so NaN is never a real reading), quality (uint8) and reason code
(int32, -1 for none). Each column is byte-shuffled (byte k of every value together,
as Parquet's BYTE_STREAM_SPLIT does) before one zlib pass, which is what makes slowly
moving sensor values and regular time steps cheap: the high bytes repeat.

Also the time codes every history table uses: ``to_us``/``from_us`` between aware
datetimes and integer microseconds since the epoch in UTC.
"""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
HOUR_US = 3_600_000_000
MAGIC = b"LC1"
_HEAD = struct.Struct("<3sI")
LEVEL = 6


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


def _shuffle(a: np.ndarray) -> bytes:
    import numpy as np

    b = np.ascontiguousarray(a).view(np.uint8).reshape(len(a), a.itemsize)
    return b.T.tobytes()


def _unshuffle(buf: memoryview, n: int, dtype: np.dtype) -> np.ndarray:
    import numpy as np

    size = np.dtype(dtype).itemsize
    b = np.frombuffer(buf, dtype=np.uint8, count=n * size).reshape(size, n)
    return np.ascontiguousarray(b.T).view(dtype).reshape(n)


def encode(ts: np.ndarray, value: np.ndarray, quality: np.ndarray,
           reason: np.ndarray) -> bytes:
    """Sorted columns of one chunk to its block."""
    import numpy as np

    n = len(ts)
    off = np.diff(ts.astype(np.int64), prepend=ts[0]) if n else ts.astype(np.int64)
    body = b"".join((_shuffle(off.astype(np.int64)), _shuffle(value.astype(np.float64)),
                     quality.astype(np.uint8).tobytes(), _shuffle(reason.astype(np.int32))))
    return _HEAD.pack(MAGIC, n) + zlib.compress(body, LEVEL)


def decode(blob: bytes, t0: int) -> Columns:
    """A block back to its columns (absolute times from the chunk's ``t0``)."""
    import numpy as np

    magic, n = _HEAD.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("not a loopline sample chunk")
    body = memoryview(zlib.decompress(blob[_HEAD.size:]))
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
