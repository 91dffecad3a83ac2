"""Storage compression per tag: which samples the history keeps (detection sees them all).

Configured per tag as ``history = { kind = "...", value = ..., max_interval_s = ... }``
(``core.config.schema.HistoryFilter``); tags without it keep every sample, and that is
the default for every tag, quality characteristics included. Error bounds, for a
reader that holds the last stored value (absolute, percent) or draws straight lines
between stored points (swinging door):

- ``absolute``: a sample is stored when it differs from the last stored value by more
  than ``value`` (engineering units). Every dropped sample is within ``value`` of the
  stored value before it: step-hold error <= value.
- ``percent``: the same with a band of ``value`` % of the last stored value's magnitude:
  step-hold error <= value/100 * |last stored|.
- ``swinging_door``: the historian algorithm. From the last stored point, the door's
  two slopes narrow with every sample; a sample is held while the straight line from
  the stored point to it stays within ``value`` of every sample since (a little
  stricter than the classic door, which only asks that some line fits, and so can
  miss its bound); otherwise the held sample is stored and a new door opens there.
  Every dropped sample lies within ``value`` of the straight line between the stored
  points around it (interpolation error <= value). Output lags by one sample (the
  held point), flushed when the pipeline closes.

Always stored whatever the band: a sample whose quality differs from the last stored
one's, anything not Good, text values, and a sample ``max_interval_s`` or more after
the last stored one (a heartbeat, so a flat signal still shows it is alive).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.samples import ContextSample, Quality


@dataclass(frozen=True)
class Band:
    kind: str  # absolute | percent | swinging_door
    value: float
    max_interval_s: float


@dataclass
class _State:
    value: float  # last stored value
    ts: float  # its time (s)
    quality: int
    held: ContextSample | None = None  # swinging door: the newest sample inside the door
    lo: float = float("-inf")  # the door's slopes (units per second)
    hi: float = float("inf")


def bands_from_tags(tags: Iterable[Any]) -> dict[str, Band]:
    """tag id → Band for the tags configured with a ``history`` filter."""
    out = {}
    for t in tags:
        h = getattr(t.spec, "history", None)
        if h is not None:
            out[t.id] = Band(h.kind, h.value, h.max_interval_s)
    return out


class HistoryFilter:
    """Drops samples inside each configured tag's band; counts what it dropped."""

    def __init__(self, bands: dict[str, Band]) -> None:
        self.bands = bands
        self._state: dict[str, _State] = {}
        self.dropped = 0

    def __bool__(self) -> bool:
        return bool(self.bands)

    def filter(self, samples: Sequence[ContextSample]) -> list[ContextSample]:
        if not self.bands:
            return list(samples)
        out: list[ContextSample] = []
        bands = self.bands
        for s in samples:
            band = bands.get(s.tag_id)
            if band is None:
                out.append(s)
                continue
            self._one(s, band, out)
        return out

    def flush(self) -> list[ContextSample]:
        """Samples held by swinging doors (call when the stream ends)."""
        out = [st.held for st in self._state.values() if st.held is not None]
        for st in self._state.values():
            st.held = None
        return out

    def _store(self, s: ContextSample, out: list[ContextSample], v: float | None) -> None:
        out.append(s)
        if v is None:
            self._state.pop(s.tag_id, None)
        else:
            self._state[s.tag_id] = _State(v, s.source_ts.timestamp(), int(s.quality))

    def _one(self, s: ContextSample, band: Band, out: list[ContextSample]) -> None:
        v = s.value
        num = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
        st = self._state.get(s.tag_id)
        if num is None or num != num or s.quality != Quality.GOOD or st is None \
                or st.quality != int(s.quality):
            if st is not None and st.held is not None:
                out.append(st.held)
            self._store(s, out, num if num == num else None)
            return
        t = s.source_ts.timestamp()
        dt = t - st.ts
        if dt >= band.max_interval_s or dt <= 0:
            if st.held is not None:
                out.append(st.held)
            self._store(s, out, num)
            return
        if band.kind == "absolute":
            if abs(num - st.value) > band.value:
                self._store(s, out, num)
            else:
                self.dropped += 1
            return
        if band.kind == "percent":
            if abs(num - st.value) > band.value / 100 * abs(st.value):
                self._store(s, out, num)
            else:
                self.dropped += 1
            return
        # swinging door: narrow the slopes from the last stored point
        lo = max(st.lo, (num - band.value - st.value) / dt)
        hi = min(st.hi, (num + band.value - st.value) / dt)
        if lo <= (num - st.value) / dt <= hi:  # the line to this sample fits all before it
            if st.held is not None:
                self.dropped += 1
            st.lo, st.hi, st.held = lo, hi, s
            return
        held = st.held
        if held is None:  # cannot happen after a stored point, kept for safety
            self._store(s, out, num)
            return
        out.append(held)  # the door closed: its last point is stored, a new door opens there
        hv = float(held.value)  # type: ignore[arg-type]
        ht = held.source_ts.timestamp()
        ns = _State(hv, ht, int(held.quality))
        dt2 = t - ht
        ns.lo = (num - band.value - hv) / dt2 if dt2 > 0 else float("-inf")
        ns.hi = (num + band.value - hv) / dt2 if dt2 > 0 else float("inf")
        ns.held = s
        self._state[s.tag_id] = ns
