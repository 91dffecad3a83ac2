"""Storage compression per tag: what is dropped stays within the stated error bound."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from ingest_helpers import CTX, at

from core.config import ConfigError, load_config
from core.ingest.deadband import Band, HistoryFilter, bands_from_tags
from core.samples import ContextSample, Quality

TAG = "A-LATHE1.bearing_temp"


def _series(n: int = 600) -> list[ContextSample]:
    """A slow sine with small noise, 1 Hz, one Bad sample and one Uncertain."""
    out = []
    for i in range(n):
        v = 60 + 2 * math.sin(i / 40) + 0.01 * ((i * 7919) % 13 - 6)
        q = Quality.BAD if i == 300 else Quality.UNCERTAIN if i == 400 else Quality.GOOD
        out.append(ContextSample(TAG, at(i), None if q == Quality.BAD else v, q, None, CTX))
    return out


def _kept(kind: str, value: float, series: list[ContextSample]) -> list[ContextSample]:
    f = HistoryFilter({TAG: Band(kind, value, 120.0)})
    kept = f.filter(series[:250]) + f.filter(series[250:]) + f.flush()
    assert f.dropped == len(series) - len(kept) > 0
    return sorted(kept, key=lambda s: s.source_ts)


def _t(s: ContextSample) -> float:
    return s.source_ts.timestamp()


@pytest.mark.parametrize("kind,value", [("absolute", 0.1), ("percent", 0.2)])
def test_step_hold_error_is_within_the_band(kind: str, value: float) -> None:
    series = _series()
    kept = _kept(kind, value, series)
    stored = {_t(s): s for s in kept}
    last = None
    for s in series:
        if _t(s) in stored:
            last = stored[_t(s)]
            continue
        assert s.quality == Quality.GOOD and last is not None
        band = value if kind == "absolute" else value / 100 * abs(float(last.value))
        assert abs(float(s.value) - float(last.value)) <= band + 1e-12
    assert any(s.quality == Quality.BAD for s in kept)  # never dropped
    assert any(s.quality == Quality.UNCERTAIN for s in kept)
    gaps = [b - a for a, b in zip(map(_t, kept), map(_t, kept[1:]), strict=False)]
    assert max(gaps) <= 120  # the heartbeat
    assert len(kept) < len(series) / 3


def test_swinging_door_interpolation_error_is_within_the_band() -> None:
    series = _series()
    kept = _kept("swinging_door", 0.1, series)
    ts = [_t(s) for s in kept]
    good = [s for s in kept if s.quality == Quality.GOOD]
    assert len(kept) < len(series) / 4
    for s in series:
        if s.quality != Quality.GOOD or _t(s) in ts:
            continue
        t = _t(s)
        a = max((k for k in good if _t(k) < t), key=_t)
        b = min((k for k in good if _t(k) > t), key=_t)
        if any(_t(a) < _t(x) < _t(b) for x in kept if x.quality != Quality.GOOD):
            continue
        line = float(a.value) + (float(b.value) - float(a.value)) * (t - _t(a)) / (_t(b) - _t(a))
        assert abs(float(s.value) - line) <= 0.1 + 1e-9


def test_off_by_default_and_set_per_tag_in_config(tmp_path: Path, config_path: Path) -> None:
    loaded = load_config(config_path)
    assert bands_from_tags(loaded.tags) == {}  # every sample kept unless configured
    text = config_path.read_text()
    marker = 'name = "bearing_temp"'
    assert marker in text
    (tmp_path / "c.toml").write_text(text.replace(
        marker, marker + ', history = { kind = "swinging_door", value = 0.05 }', 1))
    bands = bands_from_tags(load_config(tmp_path / "c.toml").tags)
    assert bands and all(b.kind == "swinging_door" and b.value == 0.05 for b in bands.values())
    (tmp_path / "bad.toml").write_text(text.replace(
        marker, marker + ', history = { kind = "gzip", value = 1 }', 1))
    with pytest.raises(ConfigError):
        load_config(tmp_path / "bad.toml")
