"""Deviation detections (core.detect.deviation) become maintenance work orders for the
wear they name: tool, heater, clog — and the rationale says why in words."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from core.detect.deviation import DeviationDetector
from core.detect.events import Detection
from core.detect.tags import TagInfo
from core.engine.rules import decision_class_for, fault_mode_of
from core.samples import Context, ContextSample, Quality
from core.store.models import Recommendation
from engine.helpers import PLANT_START, make_engine


def heater_detection(eq: str = "B-MOLD1") -> Detection:
    """A real detector over a zone drifting 18 °C below its setpoint in three hours."""
    tags = [TagInfo(f"{eq}.state", "state", eq, "B", "state"),
            TagInfo(f"{eq}.zone_temp", "zone_temp", eq, "B", "signal", "°C"),
            TagInfo(f"{eq}.temp_sp", "temp_sp", eq, "B", "setpoint", "°C")]
    det = DeviationDetector("heater_drift_low", "medium", reference="temp_sp",
                            threshold=-0.03, hysteresis=0.01, on_delay_s=600)
    det.add_tags(tags[1], tags)
    ctx = Context(equipment_id=eq, line_id="B", lot_id="L-00101", recipe_id="R-HS")
    rng = random.Random(4)
    out: list[Detection] = []

    def feed(name: str, s: int, v: float) -> None:
        out.extend(det.feed(ContextSample(f"{eq}.{name}", PLANT_START + timedelta(seconds=s),
                                          v, Quality.GOOD, None, ctx)) or [])

    feed("state", 0, 0)
    feed("temp_sp", 0, 230.0)
    for s in range(1, 3 * 3600 + 1800):
        wear = max(0.0, (s - 1800) / 10_800) ** 2
        feed("zone_temp", s, 230.0 - 18.0 * wear + rng.gauss(0.0, 0.4))
    fired = [d for d in out if not d.cleared]
    assert len(fired) == 1
    return fired[0]


def test_a_deviation_naming_a_wear_is_a_work_order_for_that_fault() -> None:
    d = heater_detection()
    assert decision_class_for(d) == "work_order" and fault_mode_of(d) == "heater"
    d.evidence.pop("fault_mode")
    assert decision_class_for(d) is None  # a deviation naming no wear: an alarm only


def test_heater_drift_recommends_a_heater_work_order_with_words(store, loaded_config,  # type: ignore[no-untyped-def]
                                                                frozen_clock) -> None:
    eng = make_engine(store, loaded_config, frozen_clock)
    det = heater_detection()
    frozen_clock.set(det.ts)
    res = eng.on_detection(det)
    with store.session() as s:
        r = s.get(Recommendation, res.recommendation_id)
    assert r is not None and (r.decision_class, r.target) == ("work_order", "B-MOLD1")
    params = json.loads(r.params)
    assert params["fault_mode"] == "heater" and params["expected_downtime_h"] == 3.0
    assert "below its setpoint temp sp 230 °C" in r.rationale
    assert "zone temp" in r.rationale  # the signal evidence, phrased


def test_tool_and_clog_deviations_name_their_fault() -> None:
    for signal, side, fault in (("motor_current", "hi", "tool"), ("pressure", "hi", "clog"),
                                ("flow", "lo", "clog")):
        d = Detection(kind="deviation", detector_id="x",
                      problem_key=f"deviation:A-MILL1.{signal}:{side}", priority="medium",
                      onset=PLANT_START, summary="", equipment_id="A-MILL1", line_id="A",
                      tag_id=f"A-MILL1.{signal}", evidence={"fault_mode": fault})
        assert (decision_class_for(d), fault_mode_of(d)) == ("work_order", fault)
