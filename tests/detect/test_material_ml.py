"""Material shortage projection (pure and from the store) and ML score crossings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from detect_helpers import at

from core.detect.material import (
    MaterialDetector,
    PlannedDemand,
    line_side_inputs,
    project_shortage,
)
from core.detect.ml_score import MlScoreDetector, Score


def test_stock_lasting_the_plan_is_not_short() -> None:
    demand = [PlannedDemand(at(0), at(3600), 100.0, "op1"),
              PlannedDemand(at(3600), at(7200), 100.0, "op2")]
    p = project_shortage(250.0, 0.0, demand, at(0), horizon_h=8)
    assert not p.short and p.demand_in_horizon == pytest.approx(200.0) and p.shortfall == 0


def test_runout_time_from_planned_demand() -> None:
    demand = [PlannedDemand(at(0), at(3600), 100.0, "op1"),
              PlannedDemand(at(3600), at(7200), 100.0, "op2")]
    p = project_shortage(150.0, 0.0, demand, at(0), horizon_h=8, material_id="M-ST20")
    assert p.short and p.runout_at == at(5400)  # 100 in the first hour, 50 more by 1.5 h
    assert p.shortfall == pytest.approx(50.0) and p.refs == ("op2",)
    assert p.hours_to_runout(at(0)) == pytest.approx(1.5)


def test_measured_rate_replaces_the_plan_for_the_running_operation() -> None:
    demand = [PlannedDemand(at(-3600), at(3600), 200.0, "running")]  # 100 left at plan
    slow = project_shortage(90.0, 50.0, demand, at(0))  # 100 left at 50/h: out at 1.8 h
    assert slow.runout_at == at(0) + timedelta(hours=1.8)
    fast = project_shortage(90.0, 200.0, demand, at(0))
    assert fast.runout_at == at(0) + timedelta(hours=0.45)


def test_rate_alone_without_a_plan_and_demand_outside_horizon() -> None:
    p = project_shortage(10.0, 5.0, [], at(0), horizon_h=4)
    assert p.runout_at == at(7200)
    far = [PlannedDemand(at(20 * 3600), at(21 * 3600), 1e6)]
    assert not project_shortage(1.0, 0.0, far, at(0), horizon_h=8).short


def test_material_detector_fires_once_escalates_inside_lead_time_and_clears() -> None:
    det = MaterialDetector("material_short", "medium", horizon_h=8, lead_time_h=2)
    demand = [PlannedDemand(at(0), at(3600), 100.0, "op1")]
    got = det.check("A", "M-ST20", 50.0, 0.0, demand, at(0))
    assert [(g.problem_key, g.priority) for g in got] == [("material:A:M-ST20", "high")]
    assert "runs out in 0.5 h" in got[0].summary
    ev = got[0].evidence
    assert (ev["material_id"], ev["shortage_qty"], ev["short_at"]) == (
        "M-ST20", pytest.approx(50.0), at(1800).isoformat())
    assert det.check("A", "M-ST20", 50.0, 0.0, demand, at(60)) == []
    got = det.check("A", "M-ST20", 500.0, 0.0, demand, at(120))
    assert [(g.cleared, g.onset) for g in got] == [(True, at(0))]


def test_line_side_inputs_from_the_store(store) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select, update

    from core.store.models import Operation, ProductionOrder, RoutingStep, Stock

    op, po, rs = (m.__table__ for m in (Operation, ProductionOrder, RoutingStep))
    with store.begin() as c:
        stock = sum(r.quantity for r in c.execute(
            select(Stock.__table__).where(Stock.__table__.c.location_id == "A-LS")
            .where(Stock.__table__.c.material_id == "M-ST20")))
        row = c.execute(
            select(op.c.id, po.c.quantity, rs.c.qty_per_unit, rs.c.material_id)
            .join(po, po.c.id == op.c.order_id).join(rs, rs.c.id == op.c.routing_step_id)
            .where(po.c.line_id == "A", rs.c.material_id == "M-ST20").limit(1)).one()
        c.execute(update(op).where(op.c.id == row.id).values(
            planned_start=at(1800), planned_end=at(5400)))
    got = line_side_inputs(store, "A", at(0), horizon_h=8)
    qty, demand = got["M-ST20"]
    assert qty == pytest.approx(stock) and stock > 0
    assert [(d.ref, d.start, d.end) for d in demand] == [(row.id, at(1800), at(5400))]
    assert demand[0].qty == pytest.approx(row.quantity * row.qty_per_unit)
    assert line_side_inputs(store, "A", at(6000), horizon_h=8)["M-ST20"][1] == []


def test_ml_score_crossing_with_hysteresis() -> None:
    det = MlScoreDetector("failure_risk", "failure_risk", 0.6, "high", hysteresis=0.1)
    assert det.feed_score("A-LATHE1", Score(0.55), at(0)) == []
    got = det.feed_score("A-LATHE1", Score(0.65, contributions={"bearing_temp_slope": 0.3,
                                                               "vib_rms": 0.1},
                                         explanation="bearing temperature rising 2.1 °C/h"),
                         at(30))
    assert [(g.problem_key, g.cleared) for g in got] == [("ml_score:A-LATHE1:failure_risk",
                                                          False)]
    assert "rising 2.1" in got[0].summary and got[0].evidence["contributions"]
    assert det.feed_score("A-LATHE1", Score(0.55), at(60)) == []  # inside the hysteresis
    got = det.feed_score("A-LATHE1", Score(0.49), at(90))
    assert [g.cleared for g in got] == [True] and got[0].onset == at(30)


def test_ml_score_polls_a_callable_source() -> None:
    scores = {"A-LATHE1": Score(0.9, line_id="A"), "B-MOLD1": Score(0.1, line_id="B")}
    det = MlScoreDetector("failure_risk", "failure_risk", 0.6, source=lambda: scores)
    got = det.poll(at(0))
    assert [g.equipment_id for g in got] == ["A-LATHE1"]
    scores["A-LATHE1"] = Score(0.2)
    assert [g.cleared for g in det.poll(at(30))] == [True]


def test_contributions_become_plain_words_without_an_explanation() -> None:
    det = MlScoreDetector("failure_risk", "failure_risk", 0.6, line_of={"A-LATHE1": "A"})
    got = det.feed_score("A-LATHE1", Score(0.7, contributions={
        "bearing_temp_slope": 0.31, "vibration_rms_mean": 0.12, "speed_sp": -0.05,
        "noise": 0.001}), at(0))
    s = got[0].summary
    assert "bearing temp slope raises it (+0.31)" in s and "speed sp lowers it (-0.05)" in s
    assert "noise" not in s and got[0].line_id == "A"
