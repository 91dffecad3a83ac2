"""A value its tag's data type cannot hold is stored Bad with the reason, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.config import load_config
from core.ingest.value_check import ValueCheck
from core.samples import Quality, Sample

REPO = Path(__file__).resolve().parents[2]
T = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def test_wrong_types_are_bad_and_right_ones_pass() -> None:
    loaded = load_config(REPO / "config.toml")
    by_type: dict[str, str] = {}
    for t in loaded.tags:
        if t.spec.scale == 1.0 and t.spec.offset == 0.0:
            by_type.setdefault(t.spec.data_type, t.id)
    f64, u32 = by_type["float64"], by_type.get("uint32") or by_type["uint16"]
    vc = ValueCheck(loaded.tags)
    good = [Sample(f64, T, 1.5), Sample(f64, T, 3), Sample(u32, T, 7), Sample(u32, T, 7.0)]
    assert vc.check(good) is good and vc.refused == 0  # no copy when all is well
    out = vc.check([Sample(f64, T, "fast"), Sample(u32, T, 12.5), Sample(u32, T, -7),
                    Sample(f64, T, True), Sample(u32, T, None, Quality.BAD, "timeout")])
    assert [s.quality for s in out] == [Quality.BAD] * 5
    assert [s.value for s in out] == [None] * 5
    assert "found str 'fast'" in (out[0].reason or "")
    assert "not a whole number" in (out[1].reason or "")
    assert "outside 0.." in (out[2].reason or "")
    assert out[4].reason == "timeout"  # already Bad: left as it was
    assert vc.refused == 4
