"""A value that cannot be what its tag says it is becomes Bad, with the reason.

A device with a broken type system (or a tag map that names the wrong node) sends a
text where the config says float64, 12.5 or -7 for a uint32 counter. Stored as Good,
such a value would reach a chart, a counter or a model as if measured. ``ValueCheck``
marks it Bad ("expected uint32, found -7"), keeps the sample (nothing is dropped) and
counts it. Scaled tags are only checked for being numbers: their engineering value is
not the raw register.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from core.config import ResolvedTag
from core.samples import Quality, Sample

INT_RANGE = {"int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
             "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
             "int64": (-(2**63), 2**63 - 1)}
FLOATS = ("float32", "float64")


class ValueCheck:
    def __init__(self, tags: Iterable[ResolvedTag]) -> None:
        # tag id -> (data type, integer range or None when scaled / not an integer)
        self.rules: dict[str, tuple[str, tuple[int, int] | None]] = {}
        for t in tags:
            dt = t.spec.data_type
            scaled = t.spec.scale != 1.0 or t.spec.offset != 0.0
            if dt in FLOATS or (dt in INT_RANGE and scaled):
                self.rules[t.id] = (dt, None)
            elif dt in INT_RANGE:
                self.rules[t.id] = (dt, INT_RANGE[dt])
        self.refused = 0

    def check(self, samples: Sequence[Sample]) -> Sequence[Sample]:
        """The batch, a checked copy only when a value had to be refused."""
        rules = self.rules
        out: list[Sample] | None = None
        for i, s in enumerate(samples):
            rule = rules.get(s.tag_id)
            v = s.value
            if rule is None or v is None or s.quality == Quality.BAD:
                continue
            why = _problem(v, *rule)
            if why is None:
                continue
            if out is None:
                out = list(samples)
            self.refused += 1
            out[i] = replace(s, value=None, quality=Quality.BAD, reason=why)
        return samples if out is None else out


def _problem(v: object, dt: str, rng: tuple[int, int] | None) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"expected {dt}, found {type(v).__name__} {str(v)[:40]!r}"
    if rng is None:
        return None
    if isinstance(v, float) and not v.is_integer():
        return f"expected {dt}, found {v!r} (not a whole number)"
    if not rng[0] <= v <= rng[1]:
        return f"expected {dt}, found {v!r} (outside {rng[0]}..{rng[1]})"
    return None
