"""SPC: control limits from a baseline; each Nelson rule on a series that triggers only it."""

from __future__ import annotations

import math
import random

import pytest
from detect_helpers import at, sample

from core.detect.spc import (
    ControlLimits,
    SpcChart,
    SpcDetector,
    SpcError,
    XbarRChart,
    characteristics_from_store,
    individuals_limits,
    xbar_r_limits,
)
from core.samples import Quality

# A clean in-control pattern: never 15 within 1σ, 9 on one side, 6 monotone, 14 alternating,
# 2 of 3 beyond 2σ, 4 of 5 beyond 1σ or 8 beyond 1σ.
CLEAN = [0.5, 1.5, -0.5, -1.5] * 10

SERIES: dict[int, list[float]] = {
    1: [3.5],
    2: [0.5, 0.6, 0.2, 0.3, 0.7, 0.4, 0.5, 0.8, 0.3],
    3: [-1.2, -0.8, -0.3, 0.2, 0.6, 0.9],
    4: [0.5, -0.5, 1.5, -0.5, 0.5, -1.5, 0.5, -0.5, 1.5, -0.5, 0.5, -1.5, 0.5, -0.5],
    5: [2.5, 0.5, 2.5],
    6: [1.5, 1.5, 0.5, 1.5, 1.5],
    7: [0.5, 0.3, -0.5, -0.3] * 4,
    8: [1.5, -1.5] * 4,
}


def chart(**kw: object) -> SpcChart:
    return SpcChart("quality_spc", "A-LATHE1.quality_value", equipment_id="A-LATHE1",
                    line_id="A", limits=ControlLimits(0.0, 1.0), **kw)  # type: ignore[arg-type]


def started(values: list[float]) -> set[int]:
    c = chart()
    out: set[int] = set()
    for i, v in enumerate(values):
        for d in c.add(v, at(i)):
            if not d.cleared:
                out.add(int(d.evidence["rule"]))
    return out


def test_clean_series_triggers_no_rule() -> None:
    assert started(CLEAN) == set()


@pytest.mark.parametrize("rule", range(1, 9))
def test_each_nelson_rule_alone(rule: int) -> None:
    assert started(CLEAN + SERIES[rule] + CLEAN) == {rule}


def test_detection_carries_rule_limits_and_points() -> None:
    c = chart()
    for i, v in enumerate(CLEAN):
        c.add(v, at(i))
    got = c.add(3.5, at(100))
    assert len(got) == 1
    d = got[0]
    assert d.kind == "spc" and d.problem_key == "spc:A-LATHE1.quality_value:A-LATHE1:rule1"
    assert d.priority == "high"  # rule 1 escalates the detector's medium
    assert d.values["ucl"] == pytest.approx(3.0) and d.values["lcl"] == pytest.approx(-3.0)
    assert d.evidence["points"][-1][1] == 3.5 and "Nelson rule 1" in d.summary


def test_a_rule_clears_after_its_window_without_violations() -> None:
    c = chart()
    events: list[tuple[int, bool]] = []
    for i, v in enumerate([*CLEAN[:8], 3.5, *CLEAN[:8]]):
        events += [(int(d.evidence["rule"]), d.cleared) for d in c.add(v, at(i))]
    assert events == [(1, False), (1, True)]


def test_individuals_limits_use_the_moving_range() -> None:
    lim = individuals_limits([10.0, 12.0, 11.0, 13.0])
    assert lim.centre == pytest.approx(11.5)
    assert lim.sigma == pytest.approx((5 / 3) / 1.128)
    assert lim.ucl == pytest.approx(11.5 + 3 * lim.sigma)
    with pytest.raises(SpcError, match="moving range 0"):
        individuals_limits([5.0, 5.0, 5.0])
    with pytest.raises(SpcError, match="at least 2"):
        individuals_limits([5.0])


def test_limits_from_a_streamed_baseline_then_a_shift_is_found() -> None:
    rng = random.Random(7)
    c = SpcChart("quality_spc", "diameter", baseline_n=30)
    for i in range(30):
        assert c.add(20.0 + rng.gauss(0, 0.01), at(i)) == []
    assert c.limits is not None and abs(c.limits.centre - 20.0) < 0.01
    fired: set[int] = set()
    for i in range(30, 45):
        fired |= {int(d.evidence["rule"]) for d in c.add(20.035, at(i)) if not d.cleared}
    assert 1 in fired and 2 in fired  # a 3.5σ shift: beyond 3σ and nine on one side


def test_xbar_r_limits_and_range_violation() -> None:
    rng = random.Random(3)
    base = [[10 + rng.gauss(0, 0.1) for _ in range(5)] for _ in range(25)]
    lim = xbar_r_limits(base)
    rbar = sum(max(g) - min(g) for g in base) / 25
    assert lim.n == 5 and lim.r_centre == pytest.approx(rbar)
    assert lim.xbar.sigma == pytest.approx(rbar / (2.326 * math.sqrt(5)))
    assert lim.r_ucl == pytest.approx(2.114 * rbar) and lim.r_lcl == 0.0
    c = XbarRChart("quality_spc", "diameter", lim)
    out = []
    for i, v in enumerate([10.0, 10.0, 10.0, 9.0, 11.0]):  # mean in control, range huge
        out += c.add(v, at(i))
    assert [d.problem_key for d in out] == ["spc:diameter:range"]
    out = []
    for i in range(5):  # subgroup mean far off: rule 1 on X̄
        out += c.add(12.0 + 0.01 * i, at(10 + i))
    assert {d.evidence["rule"] for d in out} == {1}
    with pytest.raises(SpcError, match="same size"):
        xbar_r_limits([[1.0, 2.0], [1.0, 2.0, 3.0]])


def test_detector_charts_tags_and_store_measurements_separately() -> None:
    det = SpcDetector("quality_spc", baseline_n=20)
    det.add_tag("A-LATHE1.quality_value", "A-LATHE1", "A", "mm")
    assert det.feed(sample("A-LATHE1.quality_value", 0, 9.0, Quality.BAD)) is None
    for i in range(20):
        det.feed(sample("A-LATHE1.quality_value", i, 20.0 + (0.01 if i % 2 else -0.01)))
    got = det.feed(sample("A-LATHE1.quality_value", 30, 25.0))
    assert got and got[0].tag_id == "A-LATHE1.quality_value" and got[0].line_id == "A"
    assert got[0].problem_key == "spc:quality_value[R-SH20]:A-LATHE1:rule1"
    det.set_limits("SH20.diameter", ControlLimits(20.0, 0.01), equipment_id="A-GRIND1")
    got = det.feed_measurement("SH20.diameter", 20.05, at(40), "A-GRIND1", "A")
    assert [d.problem_key for d in got] == ["spc:SH20.diameter:A-GRIND1:rule1"]


def test_a_polled_quality_tag_repeating_its_value_is_one_measurement() -> None:
    det = SpcDetector("quality_spc", baseline_n=4)
    det.add_tag("C-EXTR1.quality_value", "C-EXTR1", "C", "mm")
    for i, v in enumerate([1.0, 1.0, 1.0, 2.0, 2.0, 1.5, 1.5, 1.2]):
        det.feed(sample("C-EXTR1.quality_value", i, v))
    ch = det.charts["quality_value[R-SH20]@C-EXTR1"]
    assert ch.limits is not None and ch.limits.centre == pytest.approx(1.425)


def test_a_changeover_switches_charts_by_recipe() -> None:
    det = SpcDetector("quality_spc", baseline_n=10,
                      characteristic_of={"R-SH20": "P-SH20.diameter", "R-SH25": "P-SH25.diameter"})
    det.add_tag("A-GRIND1.quality_value", "A-GRIND1", "A", "mm")
    rng = random.Random(5)
    out = []
    for i in range(30):
        out += det.feed(sample("A-GRIND1.quality_value", i, 20 + rng.gauss(0, 0.01))) or []
    for i in range(30, 60):  # 25 mm parts after the changeover: a new chart, no alarm
        cs = sample("A-GRIND1.quality_value", i, 25 + rng.gauss(0, 0.01))
        cs.ctx.recipe_id = "R-SH25"
        out += det.feed(cs) or []
    assert [d for d in out if d.evidence["rule"] == 1] == []
    assert set(det.charts) == {"P-SH20.diameter@A-GRIND1", "P-SH25.diameter@A-GRIND1"}


def test_characteristics_from_the_store(store) -> None:  # type: ignore[no-untyped-def]
    m = characteristics_from_store(store)
    assert m and all("." in v for v in m.values())
    from core.store.models import QualityCharacteristic, Recipe

    with store.session() as s:
        r = s.get(Recipe, next(iter(m)))
        q = s.get(QualityCharacteristic, m[r.id])
    assert q.product_id == r.product_id
