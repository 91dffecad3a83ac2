"""Limit checks: on-delay and hysteresis on constructed series; Bad/Uncertain never fire."""

from __future__ import annotations

import pytest
from detect_helpers import at, sample

from core.config.schema import Limits
from core.detect.limits import LimitDetector, limit_specs
from core.detect.tags import TagInfo
from core.samples import Quality

TAG = "A-LATHE1.bearing_temp"
INFO = TagInfo(TAG, "bearing_temp", "A-LATHE1", "A", "signal", "°C",
               Limits(hi=80.0, hihi=95.0))


def detector(on_delay: float = 60.0, hyst: float = 1.0, **kw: object) -> LimitDetector:
    d = LimitDetector("bearing_temp_high", "high", hysteresis=hyst, on_delay_s=on_delay,
                      **kw)  # type: ignore[arg-type]
    assert d.add_tag(INFO)
    return d


def run(d: LimitDetector, series: list[tuple[float, float]], q: Quality = Quality.GOOD) -> list:
    out = []
    for t, v in series:
        out.extend(d.feed(sample(TAG, t, v, q)) or [])
    return out


def test_on_delay_fires_only_after_the_condition_held() -> None:
    d = detector()
    got = run(d, [(0, 79.0), (10, 81.0), (20, 82.0), (40, 81.5), (60, 83.0)])
    assert got == []  # held 50 s of 60
    got = run(d, [(70, 84.0)])
    assert len(got) == 1
    det = got[0]
    assert det.problem_key == "limit:A-LATHE1.bearing_temp:hi"
    assert det.kind == "limit" and not det.cleared
    assert det.onset == at(10) and det.ts == at(70)
    assert det.value == 84.0 and det.limit == 80.0 and det.priority == "high"
    assert det.context["lot_id"] == "L-00101" and det.equipment_id == "A-LATHE1"
    assert "above HI limit" in det.summary
    assert run(d, [(80, 85.0), (90, 86.0)]) == []  # one detection per problem, not per sample


def test_a_dip_below_the_limit_restarts_the_on_delay() -> None:
    d = detector()
    assert run(d, [(0, 81.0), (50, 81.0), (55, 79.9), (60, 81.0), (110, 81.0)]) == []
    got = run(d, [(120, 81.0)])
    assert [g.onset for g in got] == [at(60)]


def test_hysteresis_clears_only_back_past_limit_minus_hysteresis() -> None:
    d = detector(on_delay=0.0, hyst=1.0)
    assert len(run(d, [(0, 80.5)])) == 1
    assert run(d, [(10, 79.5), (20, 80.2), (30, 79.01)]) == []  # noise around the limit
    got = run(d, [(40, 79.0)])
    assert len(got) == 1 and got[0].cleared and got[0].onset == at(0)
    assert got[0].values["peak"] == 80.5
    assert len(run(d, [(50, 80.1)])) == 1  # a new excursion is a new detection


def test_hihi_is_its_own_alarm_with_a_higher_priority() -> None:
    d = detector(on_delay=0.0)
    got = run(d, [(0, 96.0)])
    assert sorted(g.problem_key.rsplit(":", 1)[1] for g in got) == ["hi", "hihi"]
    prio = {g.problem_key.rsplit(":", 1)[1]: g.priority for g in got}
    assert prio == {"hi": "high", "hihi": "critical"}
    got = run(d, [(10, 90.0)])  # hihi clears (90 <= 94), hi stays
    assert [(g.problem_key.rsplit(":", 1)[1], g.cleared) for g in got] == [("hihi", True)]


def test_low_limits_with_hysteresis() -> None:
    info = TagInfo("A-WASH1.pressure", "pressure", "A-WASH1", "A", "signal", "bar",
                   Limits(lo=2.0, hi=8.0))
    d = LimitDetector("wash_pressure", "medium", hysteresis=0.5, on_delay_s=0)
    d.add_tag(info)
    fire = d.feed(sample(info.tag_id, 0, 1.9))
    assert fire and fire[0].problem_key.endswith(":lo") and "below LO" in fire[0].summary
    assert d.feed(sample(info.tag_id, 1, 2.4)) is None
    clear = d.feed(sample(info.tag_id, 2, 2.5))
    assert clear and clear[0].cleared


def test_bad_and_uncertain_samples_never_fire_a_limit() -> None:
    d = detector(on_delay=0.0)
    series = [(t, 150.0) for t in range(0, 600, 10)]
    assert run(d, series, Quality.BAD) == []
    assert run(d, series, Quality.UNCERTAIN) == []
    assert d.tick(at(3600)) == []
    assert run(d, [(700, None)], Quality.BAD) == []  # type: ignore[list-item]


def test_a_bad_sample_restarts_a_pending_on_delay_and_never_clears() -> None:
    d = detector(on_delay=60.0)
    assert run(d, [(0, 85.0), (30, 85.0)]) == []
    assert run(d, [(40, 85.0)], Quality.BAD) == []
    assert run(d, [(50, 85.0), (100, 85.0)]) == []  # held since 50, only 50 s
    got = run(d, [(110, 85.0)])
    assert [g.onset for g in got] == [at(50)]
    assert run(d, [(120, 10.0)], Quality.BAD) == []  # an unknown value does not clear it


def test_tick_fires_an_on_delay_when_no_new_sample_arrives() -> None:
    d = detector(on_delay=60.0)
    assert run(d, [(0, 85.0)]) == []
    assert d.tick(at(59)) == []
    got = d.tick(at(61))
    assert len(got) == 1 and got[0].onset == at(0) and got[0].ts == at(61)
    assert d.tick(at(120)) == []


def test_detector_threshold_replaces_the_tag_limits() -> None:
    assert [(s.level, s.value) for s in limit_specs(INFO.limits, 70.0)] == [("hi", 70.0)]
    assert [s.level for s in limit_specs(INFO.limits)] == ["hihi", "hi"]
    assert limit_specs(None) == ()
    d = LimitDetector("t", threshold=70.0)
    d.add_tag(INFO)
    assert d.feed(sample(TAG, 0, 75.0))
    assert not LimitDetector("none").add_tag(TagInfo("x.y", "y"))


def test_non_numeric_values_are_ignored() -> None:
    d = detector(on_delay=0.0)
    assert d.feed(sample(TAG, 0, "hot")) is None
    assert d.feed(sample(TAG, 0, True)) is None


def test_the_summary_says_how_fast_the_value_is_moving() -> None:
    d = detector(on_delay=0.0)
    got = run(d, [(t, 60.0 + 20.0 * t / 3600) for t in range(0, 3721, 60)])
    assert len(got) == 1
    assert "rising 20 °C/h over 61 min" in got[0].summary
    assert got[0].evidence["trend_per_h"] == pytest.approx(20.0)
    sig = got[0].evidence["signals"][0]  # the shape the engine's analyzer reads
    assert sig["signal"] == "bearing_temp" and sig["slope_per_h"] == pytest.approx(20.0)
    assert sig["window_h"] == pytest.approx(61 / 60) and sig["quality"] == "good"
