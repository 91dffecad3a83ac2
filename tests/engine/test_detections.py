"""Detections as core.detect emits them drive the right recommendation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from core.detect.events import Detection
from core.samples import Quality
from core.store.models import Recommendation
from engine.helpers import PLANT_START, make_engine


def rec_of(store, rid: str) -> Recommendation:
    with store.session() as s:
        r = s.get(Recommendation, rid)
    assert r is not None
    return r


def test_limit_detection_on_a_wear_signal_recommends_a_work_order(store, loaded_config,
                                                                   frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    det = Detection(kind="limit", detector_id="vibration_high",
                    problem_key="limit:A-MILL1.vibration_rms:hi", priority="medium",
                    onset=PLANT_START, summary="vibration RMS 7.4 mm/s above HI limit 7 mm/s",
                    equipment_id="A-MILL1", line_id="A", tag_id="A-MILL1.vibration_rms",
                    value=7.4, limit=7.0, context={"equipment_id": "A-MILL1", "line_id": "A",
                                                   "lot_id": "L-00101"},
                    evidence={"level": "hi", "limit": 7.0, "unit": "mm/s"})
    r = rec_of(store, eng.on_detection(det).recommendation_id)
    assert (r.decision_class, r.target) == ("work_order", "A-MILL1")
    assert r.rationale.startswith("vibration RMS 7.4 mm/s above HI limit 7 mm/s; on Machining "
                                  "centre 1, lot L-00101")
    assert json.loads(r.params)["fault_mode"] == "bearing"


def test_ml_failure_risk_recommends_a_work_order_with_words(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    det = Detection(kind="ml_score", detector_id="failure_risk",
                    problem_key="ml_score:B-MOLD2:failure_risk", priority="high",
                    onset=PLANT_START, summary="B-MOLD2: failure risk 0.83 above 0.60",
                    equipment_id="B-MOLD2", line_id="B", value=0.83, limit=0.6,
                    evidence={"model": "failure_risk", "contributions": {
                        "bearing_temp__slope_6h": 0.9}, "explanation": ""})
    r = rec_of(store, eng.on_detection(det).recommendation_id)
    assert r.decision_class == "work_order" and r.confidence == 0.83
    assert "bearing temperature trend over 6 h raises the score" in r.rationale
    assert json.loads(r.params)["fault_mode"] == "bearing"  # from the strongest contribution
    params = json.loads(r.params)
    # no failure time from the model: the shortest warning is assumed, and the job goes
    # into the window only if the window comes before it; else at the next lot change
    latest = datetime.fromisoformat(params["latest_start"])
    assert params["predicted_failure_source"].startswith("assumed")
    if PLANT_START + timedelta(hours=21.5) <= latest:
        assert params["window_id"] == "MW-B-01"
    else:
        assert params["priority"] == 1 and "window_id" not in params
        assert "output" in r.rationale  # the plan's cost is shown


def test_a_work_order_goes_into_the_window_when_the_failure_comes_after_it(
        store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    det = Detection(kind="ml_score", detector_id="failure_risk",
                    problem_key="ml_score:B-MOLD2:failure_risk", priority="high",
                    onset=PLANT_START, summary="B-MOLD2: failure risk 0.83 above 0.60",
                    equipment_id="B-MOLD2", line_id="B", value=0.83, limit=0.6,
                    evidence={"model": "failure_risk", "fault_mode": "bearing",
                              "predicted_failure_at": (PLANT_START + timedelta(days=2))
                              .isoformat()})
    r = rec_of(store, eng.on_detection(det).recommendation_id)
    params = json.loads(r.params)
    assert params["window_id"] == "MW-B-01" and params["priority"] == 2
    assert "no output is lost" in r.rationale
    det2 = Detection(kind="ml_score", detector_id="failure_risk",
                     problem_key="ml_score:B-MOLD1:failure_risk", priority="high",
                     onset=PLANT_START, summary="B-MOLD1: failure risk 0.9",
                     equipment_id="B-MOLD1", line_id="B", value=0.9, limit=0.6,
                     evidence={"model": "failure_risk", "fault_mode": "bearing",
                               "predicted_failure_at": (PLANT_START + timedelta(hours=3))
                               .isoformat()})
    r2 = rec_of(store, eng.on_detection(det2).recommendation_id)
    p2 = json.loads(r2.params)
    assert p2["priority"] == 1 and "window_id" not in p2  # scheduled before the failure
    assert datetime.fromisoformat(p2["latest_start"]) == PLANT_START + timedelta(hours=2)


def test_material_detection_recommends_replenishment(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    det = Detection(kind="material", detector_id="material_short",
                    problem_key="material:B:M-PA6", priority="medium", onset=PLANT_START,
                    summary="line B: M-PA6 runs out in 3.0 h", line_id="B", value=50.0,
                    values={"stock": 50.0, "shortfall": 300.0},
                    evidence={"runout_at": (PLANT_START + timedelta(hours=3)).isoformat()})
    r = rec_of(store, eng.on_detection(det).recommendation_id)
    p = json.loads(r.params)
    assert (r.decision_class, p["from_stock"], p["to_location"], p["quantity"]) == (
        "replenish", "WH:B-0009", "B-LS", 300.0)


def test_bad_quality_detection_is_withheld_and_stale_is_ignored(store, loaded_config,
                                                                 frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    bad = Detection(kind="limit", detector_id="bearing_temp_high",
                    problem_key="limit:A-LATHE1.bearing_temp:hi", priority="medium",
                    onset=PLANT_START, summary="bearing temperature 95 °C above HI limit",
                    equipment_id="A-LATHE1", line_id="A", tag_id="A-LATHE1.bearing_temp",
                    value=95.0, quality=Quality.UNCERTAIN)
    assert eng.on_detection(bad).outcome == "withheld"
    stale = Detection(kind="stale", detector_id="stale_data", problem_key="stale:A-LATHE1",
                      priority="low", onset=PLANT_START, summary="no data for 30 s",
                      equipment_id="A-LATHE1", line_id="A")
    assert eng.on_detection(stale).outcome == "ignored"
    cleared = Detection(kind="limit", detector_id="bearing_temp_high",
                        problem_key="limit:A-LATHE1.bearing_temp:hi", priority="medium",
                        onset=PLANT_START, summary="back inside", cleared=True)
    assert eng.on_detection(cleared).outcome == "ignored"


def test_a_lot_scrap_score_becomes_a_hold_of_that_lot(store, loaded_config, frozen_clock):
    """Predicted scrap per lot: the score carries the lot's context (where it is, its
    batch), so the detection names the lot and the engine recommends holding it."""
    from core.detect.ml_score import MlScoreDetector, Score

    det_src = MlScoreDetector("scrap_risk", "scrap_risk", 0.5, "high")
    score = Score(0.81, ts=PLANT_START, context={
        "lot_id": "L-00101", "equipment_id": "A-LATHE1", "line_id": "A",
        "order_id": "PO-0001", "batch_id": "B-0001"})
    [det] = det_src.feed_score("L-00101", score, PLANT_START)
    assert det.equipment_id == "A-LATHE1" and det.line_id == "A"
    assert det.context["lot_id"] == "L-00101" and "lot L-00101" in det.summary
    eng = make_engine(store, loaded_config, frozen_clock)
    r = rec_of(store, eng.on_detection(det).recommendation_id)
    assert r.decision_class == "lot_hold"
    assert "L-00101" in json.loads(r.params)["lots"]
