"""Deviation detectors on constructed series: a signal against its setpoint tag or its
own recipe baseline, counted per load class, quiet on healthy noise."""

from __future__ import annotations

import random

import pytest
from detect_helpers import at

from core.config.schema import Detector
from core.detect.deviation import SETTLE_S, DeviationDetector
from core.detect.tags import TagInfo
from core.samples import Context, ContextSample, Quality

EQ = "B-MOLD1"


def tags(eq: str = EQ) -> list[TagInfo]:
    line = eq[0]
    return [TagInfo(f"{eq}.state", "state", eq, line, "state"),
            TagInfo(f"{eq}.zone_temp", "zone_temp", eq, line, "signal", "°C"),
            TagInfo(f"{eq}.temp_sp", "temp_sp", eq, line, "setpoint", "°C"),
            TagInfo(f"{eq}.pressure_sp", "pressure_sp", eq, line, "setpoint", "bar"),
            TagInfo(f"{eq}.motor_current", "motor_current", eq, line, "signal", "A"),
            TagInfo(f"{eq}.vibration_rms", "vibration_rms", eq, line, "signal", "mm/s"),
            TagInfo(f"{eq}.flow", "flow", eq, line, "signal", "cm³/s")]


def cs(name: str, s: float, v: float, recipe: str = "R-HS", eq: str = EQ,
       q: Quality = Quality.GOOD) -> ContextSample:
    ctx = Context(equipment_id=eq, line_id=eq[0], lot_id="L-00101", recipe_id=recipe)
    return ContextSample(f"{eq}.{name}", at(s), v, q, None, ctx)


def build(signal: str, **kw) -> tuple[DeviationDetector, list[str]]:  # type: ignore[no-untyped-def]
    det = DeviationDetector(kw.pop("id", "dev"), "medium", **kw)
    info = next(t for t in tags() if t.name == signal)
    routes = det.add_tags(info, tags())
    return det, routes


class Twinish:
    """A machine's signals second by second: state, setpoints and the signal's level."""

    def __init__(self, det: DeviationDetector, seed: int = 1) -> None:
        self.det, self.rng, self.out = det, random.Random(seed), []

    def feed(self, name: str, s: float, v: float, recipe: str = "R-HS") -> None:
        self.out += self.det.feed(cs(name, s, v, recipe)) or []

    def run(self, t0: int, t1: int, level, name: str, noise: float,  # type: ignore[no-untyped-def]
            recipe: str = "R-HS", extra=None) -> None:  # type: ignore[no-untyped-def]
        for s in range(t0, t1):
            self.feed(name, s, level(s) + self.rng.gauss(0.0, noise), recipe)
            if extra is not None:
                extra(s)


def test_config_needs_reference_and_threshold() -> None:
    with pytest.raises(ValueError, match="reference"):
        Detector(id="d", kind="deviation", tags=["*.flow"], threshold=0.1)
    with pytest.raises(ValueError, match="threshold"):
        Detector(id="d", kind="deviation", tags=["*.flow"], reference="baseline")
    d = Detector(id="d", kind="deviation", tags=["*.flow"], reference="baseline",
                 threshold=-0.08)
    assert d.reference == "baseline"


def test_routes_each_tag_once_and_refuses_a_missing_setpoint() -> None:
    _, routes = build("zone_temp", reference="temp_sp", threshold=0.03)
    assert routes == [f"{EQ}.zone_temp", f"{EQ}.state", f"{EQ}.temp_sp", f"{EQ}.pressure_sp"]
    no_sp = [t for t in tags() if t.name != "temp_sp"]
    other = DeviationDetector("x", reference="temp_sp", threshold=0.03)
    assert other.add_tags(no_sp[1], no_sp) == []
    _, routes = build("motor_current", reference="baseline", threshold=0.07)
    assert f"{EQ}.vibration_rms" in routes  # the companion that tells bearing from tool


def test_heater_drift_from_its_setpoint_fires_after_on_delay_and_clears() -> None:
    det, _ = build("zone_temp", reference="temp_sp", threshold=0.03, hysteresis=0.01,
                   on_delay_s=600, id="heater_drift_high")
    m = Twinish(det)
    m.feed("state", 0, 1)
    m.feed("temp_sp", 0, 230.0)
    m.run(1, 20_000, lambda s: 230.0, "zone_temp", 0.4)  # healthy: quiet
    assert m.out == []
    # the heater drifts up 18 °C over four hours (the twin's heater wear, sign +)
    m.run(20_000, 34_400, lambda s: 230.0 + 18.0 * ((s - 20_000) / 14_400) ** 2,
          "zone_temp", 0.4)
    fired = [d for d in m.out if not d.cleared]
    assert len(fired) == 1
    d = fired[0]
    assert d.kind == "deviation" and d.problem_key == f"deviation:{EQ}.zone_temp:hi"
    assert d.evidence["fault_mode"] == "heater" and d.evidence["expected_downtime_h"] > 0
    sig = d.evidence["signals"][0]
    assert sig["signal"] == "zone_temp" and sig["baseline"] == 230.0 and sig["unit"] == "°C"
    assert sig["value"] > 230.0 * 1.03 and sig["slope_per_h"] > 0
    assert "above its setpoint temp sp" in d.summary and "heater" in d.summary
    # 3 % of 230 °C = 6.9 °C: wear 0.38, reached after ~62 % of the course, plus the delay
    assert at(20_000 + 0.55 * 14_400) < d.onset < at(20_000 + 0.75 * 14_400)
    assert (d.ts - d.onset).total_seconds() >= 600
    # a completed work order puts it back: cleared
    m.run(34_400, 36_000, lambda s: 230.0, "zone_temp", 0.4)
    assert [x.cleared for x in m.out] == [False, True]


def test_a_setpoint_change_and_a_cold_restart_are_not_drift() -> None:
    det, _ = build("zone_temp", reference="temp_sp", threshold=-0.03, on_delay_s=600)
    m = Twinish(det)
    m.feed("state", 0, 1)
    m.feed("temp_sp", 0, 230.0)
    zone = {"v": 230.0, "target": 230.0}

    def step(s: int) -> None:
        zone["v"] += (zone["target"] - zone["v"]) / 300.0  # the twin's zone lag

    def level(s: int) -> float:
        step(s)
        return zone["v"]

    m.run(1, 5_000, level, "zone_temp", 0.4)
    m.feed("temp_sp", 5_000, 250.0)  # a recipe step up: the zone lags ~20 min behind
    zone["target"] = 250.0
    m.run(5_001, 10_000, level, "zone_temp", 0.4)
    m.feed("state", 10_000, 4)  # breakdown: no heat, the zone cools to ambient
    zone["target"] = 20.0
    m.run(10_001, 16_000, level, "zone_temp", 0.4)
    m.feed("state", 16_000, 1)  # repaired: it heats back up within the settle time
    zone["target"] = 250.0
    m.run(16_001, 16_000 + int(SETTLE_S) + 4_000, level, "zone_temp", 0.4)
    assert m.out == []


def test_tool_wear_raises_current_over_its_recipe_baseline_in_both_load_classes() -> None:
    det, _ = build("motor_current", reference="baseline", threshold=0.07, hysteresis=0.02,
                   on_delay_s=600, id="tool_wear_current")
    m = Twinish(det)
    m.feed("pressure_sp", 0, 1200.0)
    m.feed("vibration_rms", 0, 2.0)
    wear = {"w": 0.0}

    def current(s: int, load: float) -> float:
        return 35.0 * (0.1 + 0.9 * load) + 10.0 * wear["w"] * load

    # a day of alternating running (load 1) and idle (0.15) under two recipes: quiet
    s = 0
    for k in range(24):
        recipe = "R-HS" if k % 3 else "R-HL"
        load = 1.0 if k % 2 == 0 else 0.15
        m.feed("state", s, 1 if load == 1.0 else 0)
        m.run(s + 1, s + 3600, lambda t, ld=load: current(t, ld), "motor_current", 0.42,
              recipe)
        s += 3600
    assert m.out == []
    # the tool wears over 10 h (shape 2): fired, tool named, well before the end
    start = s
    for k in range(10):
        load = 1.0 if k % 2 == 0 else 0.15
        m.feed("state", s, 1 if load == 1.0 else 0)
        for t in range(s + 1, s + 3600):
            wear["w"] = ((t - start) / 36_000) ** 2
            m.feed("motor_current", t, current(t, load) + m.rng.gauss(0.0, 0.42))
        s += 3600
    fired = [d for d in m.out if not d.cleared]
    assert len(fired) == 1
    d = fired[0]
    assert d.evidence["fault_mode"] == "tool" and d.evidence["reference"] == "baseline"
    assert d.evidence["signals"][0]["reference"] == "its baseline for this recipe"
    assert "tool wear" in d.summary
    lead_h = (at(start + 36_000) - d.ts).total_seconds() / 3600
    assert lead_h > 3.0


def test_current_up_with_vibration_up_names_the_bearing() -> None:
    det, _ = build("motor_current", reference="baseline", threshold=0.07, on_delay_s=600)
    m = Twinish(det)
    m.feed("pressure_sp", 0, 1200.0)
    m.feed("state", 0, 1)
    for t in range(1, 30_000):
        wb = max(0.0, (t - 5_000) / 25_000) ** 2
        m.feed("vibration_rms", t, 2.0 + 5.8 * wb + m.rng.gauss(0.0, 0.2))
        m.feed("motor_current", t, 35.0 + 3.0 * wb + m.rng.gauss(0.0, 0.42))
    fired = [d for d in m.out if not d.cleared]
    assert len(fired) == 1 and fired[0].evidence["fault_mode"] == "bearing"
    assert [s["signal"] for s in fired[0].evidence["signals"]] == ["motor_current",
                                                                   "vibration_rms"]
    assert "vibration rms is up too" in fired[0].summary


def test_a_new_setpoint_learns_its_own_baseline_and_bad_samples_are_skipped() -> None:
    det, _ = build("flow", reference="baseline", threshold=-0.08, on_delay_s=600)
    m = Twinish(det)
    m.feed("state", 0, 1)
    m.feed("pressure_sp", 0, 1200.0)
    m.run(1, 8_000, lambda s: 60.0, "flow", 0.6)
    m.feed("pressure_sp", 8_000, 1000.0)  # a correction: the flow settles lower
    m.run(8_001, 20_000, lambda s: 50.0, "flow", 0.6)
    for s in range(20_000, 21_000):  # a comms drop says nothing
        m.out += det.feed(cs("flow", s, 0.0, q=Quality.BAD)) or []
    assert m.out == []
    # a clog: flow down by 55 % of the way
    m.run(21_000, 40_000, lambda s: 50.0 * (1 - 0.55 * ((s - 21_000) / 19_000) ** 2),
          "flow", 0.6)
    fired = [d for d in m.out if not d.cleared]
    assert len(fired) == 1 and fired[0].evidence["fault_mode"] == "clog"
    assert fired[0].problem_key == f"deviation:{EQ}.flow:lo"
    assert fired[0].evidence["signals"][0]["baseline"] == pytest.approx(50.0, abs=0.2)


def test_a_baseline_learned_while_worn_is_corrected_after_the_repair() -> None:
    det, _ = build("motor_current", reference="baseline", threshold=0.07, on_delay_s=600)
    m = Twinish(det)
    m.feed("pressure_sp", 0, 1200.0)
    m.feed("state", 0, 1)
    m.run(1, 4_000, lambda s: 38.0, "motor_current", 0.42)  # learned worn (+3 A)
    m.feed("state", 4_000, 3)  # the work order
    m.feed("state", 5_200, 1)
    m.run(5_201, 10_000, lambda s: 35.0, "motor_current", 0.42)
    base = next(iter(det._signals.values())).baselines
    assert [round(b.value) for b in base.values()] == [35]
    m.run(10_000, 14_000, lambda s: 35.0 * 1.09, "motor_current", 0.42)
    assert [d.evidence["fault_mode"] for d in m.out if not d.cleared] == ["tool"]


def test_a_sample_ahead_of_its_state_change_and_mixed_load_samples_do_not_fire() -> None:
    """What a real driver delivers: the signal's new level a moment before the state tag
    says the machine started, and now and then an idle-level sample while running."""
    det, _ = build("flow", reference="baseline", threshold=-0.08, on_delay_s=600)
    m = Twinish(det)
    m.feed("pressure_sp", 0, 1200.0)
    m.feed("state", 0, 0)
    s = 0
    for k in range(12):  # two-hour stretches, alternately idle and running
        running = k % 2 == 1
        level = 60.0 if running else 9.0
        m.feed("flow", s, level)  # the new level first ...
        m.feed("state", s, 1 if running else 0)  # ... then the state, same timestamp
        for t in range(s + 25, s + 7200, 25):
            odd = running and (t // 25) % 9 == 0  # one idle-level sample in nine
            m.feed("flow", t, (9.0 if odd else level) * (1 + m.rng.gauss(0.0, 0.01)))
        s += 7200
    assert m.out == []
    base = next(iter(det._signals.values())).baselines
    assert sorted(round(b.value) for b in base.values()) == [9, 60]


def test_a_noisy_polled_signal_at_idle_stays_quiet() -> None:
    """Idle pressure of an extruder polled every ~2.5 min: 5 % noise per sample, close to
    the 6 % threshold; the filtered deviation must stand out of its own noise to fire."""
    det, _ = build("flow", reference="baseline", threshold=0.06, on_delay_s=600)
    m = Twinish(det, seed=3)
    m.feed("pressure_sp", 0, 1200.0)
    m.feed("state", 0, 0)
    for t in range(1, 7 * 86400, 150):
        m.feed("flow", t, 27.0 + m.rng.gauss(0.0, 1.44))
    assert m.out == []
    # a real clog still shows: +30 % at the end of its course
    for t in range(7 * 86400, 7 * 86400 + 12 * 3600, 150):
        wear = ((t - 7 * 86400) / (12 * 3600)) ** 2
        m.feed("flow", t, 27.0 * (1 + 0.3 * wear) + m.rng.gauss(0.0, 1.44))
    assert [d.cleared for d in m.out] == [False]
