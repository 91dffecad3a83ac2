"""Analyze: the detection's context from the store and its evidence in plain words."""

from __future__ import annotations

from datetime import timedelta

from core.engine.analyze import (
    analyze,
    phrase_contribution,
    phrase_evidence,
    phrase_ratio,
    phrase_slope,
)
from core.samples import Context
from core.store.models import Lot, LotGenealogy, WorkOrder
from engine.helpers import PLANT_START, bearing

SLOPE = {"signal": "bearing_temp", "feature": "slope_6h", "value": 2.1, "baseline": 0.1,
         "unit": "°C/h", "contribution": 0.5, "statistic": "trend", "window": "6h",
         "direction": "raises"}
DBASE = {"signal": "vibration_rms", "feature": "dbase_1h", "value": 0.8, "baseline": 0.0,
         "unit": "mm/s", "contribution": 0.1, "window": "1h", "direction": "raises"}


def test_phrases_read_like_a_colleague():
    assert phrase_slope("A-LATHE1.bearing_temp", 2.1, 6, "°C") == \
        "bearing temperature rising 2.1 °C/h over 6 h"
    assert phrase_slope("cycle_time", -0.05, 0.5, "s") == "cycle time falling 0.05 s/h over 30 min"
    assert phrase_ratio("vibration_rms", 2.8, 2.0) == \
        "vibration RMS 40 % above this recipe's baseline"
    assert phrase_ratio("motor_current", 9.0, 10.0, "normal") == "motor current 10 % below normal"


def test_model_contributions_in_words():
    assert phrase_contribution(SLOPE) == "bearing temperature rising 2.1 °C/h over 6 h"
    assert phrase_contribution(DBASE) == "vibration RMS 0.8 mm/s above this recipe's baseline"
    assert phrase_contribution({"signal": "motor_current", "feature": "mean_1h", "value": 12.0,
                                "baseline": 10.0, "unit": "A", "statistic": "mean",
                                "window": "1h"}) == "motor current mean 20 % above normal over 1 h"
    assert phrase_contribution({"context": "hours_since_maint", "value": 412.0,
                                "baseline": 200.0, "unit": "h"}) == \
        "hours since maintenance 412 h (normal 200 h)"
    assert phrase_contribution({"context": "recipe_id", "value": "R-SH20"}) == "recipe is R-SH20"
    # largest magnitude first, whatever the sign; the score and threshold last
    words = phrase_evidence({"model": "failure_risk", "score": 0.83, "threshold": 0.6,
                             "contributions": [DBASE, {**SLOPE, "contribution": -0.9}]})
    assert words == ["bearing temperature rising 2.1 °C/h over 6 h",
                     "vibration RMS 0.8 mm/s above this recipe's baseline",
                     "failure_risk score 0.83 (threshold 0.6)"]


def test_context_joined_from_the_store(store, frozen_clock):
    with store.session() as s:
        lot = s.get(Lot, "L-00101")
        lot.status, lot.equipment_id = "wip", "A-LATHE1"
        s.add(lot)
        s.add(LotGenealogy(child_lot_id="L-00101", batch_id="B-0001", relation="consume",
                           quantity=100, ts=PLANT_START))
        s.add(WorkOrder(id="WO-OLD", kind="preventive", equipment_id="A-LATHE1",
                        status="done", created_at=PLANT_START - timedelta(days=3),
                        completed_at=PLANT_START - timedelta(hours=50)))
        s.commit()
    det = bearing(PLANT_START + timedelta(hours=2),
                  ctx=Context(equipment_id="A-LATHE1", line_id="A", operator_id="olga"))
    an = analyze(store, det)
    c = an.context
    assert (c["lot_id"], c["order_id"], c["recipe_id"], c["batch_id"]) == (
        "L-00101", "PO-0001", "R-SH20", "B-0001")
    assert (c["shift_id"], c["operator_id"]) == ("early", "olga")
    assert c["last_work_order"]["id"] == "WO-OLD" and c["hours_since_maintenance"] == 52.0
    assert c["downstream"] == ["A-MILL1"] and c["upstream"] == []
    assert c["neighbours"] == ["A-MILL1", "A-GRIND1", "A-WASH1"]
    assert an.quality == "good"
    assert an.rationale == (
        "bearing temperature above 80 °C; bearing temperature rising 2.1 °C/h over 6 h; "
        "vibration RMS 40 % above this recipe's baseline; on CNC lathe 1, lot L-00101, "
        "recipe R-SH20, batch B-0001; "
        "last maintenance 52.0 h ago (WO-OLD)")


def test_night_shift_wraps_midnight(store):
    an = analyze(store, bearing(PLANT_START.replace(hour=2)))
    assert an.context["shift_id"] == "night"
    assert analyze(store, bearing(PLANT_START, quality="uncertain")).quality == "uncertain"


def test_detector_shaped_contributions_in_words():
    """core.detect's ml_score gives {feature name: contribution}, without values."""
    words = phrase_evidence({"model": "failure_risk", "contributions": {
        "bearing_temp__slope_6h": 0.9, "vibration_rms__dbase_1h": 0.4,
        "ctx__hours_since_maint": -0.1}})
    assert words == ["bearing temperature trend over 6 h raises the score",
                     "vibration RMS change vs recipe baseline over 1 h raises the score",
                     "hours since maintenance lowers the score"]
