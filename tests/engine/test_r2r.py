"""Run-to-run corrections: an SPC shift becomes a setpoint move that re-centres the
characteristic, inside the recipe limits, sized by the setpoint's effect — and a
correction's outcome refines that effect. Rules 4–8 alone recommend nothing; a shift
no setpoint can correct falls back to a hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.engine import r2r
from core.samples import Context
from core.store.db import exec_sql
from core.store.models import Recommendation
from core.store.sample_writer import write_samples
from engine.helpers import PLANT_START, detection, make_engine

T0 = PLANT_START + timedelta(hours=2)
# R-SH20 on the lathe: feed_sp 0.20 (0.15..0.25) mm/rev, effect 0.3 mm per mm/rev;
# P-SH20's diameter targets 20.00 mm
CTX = Context(equipment_id="A-LATHE1", line_id="A", order_id="PO-0001", lot_id="L-00101",
              recipe_id="R-SH20", batch_id="B-0001")


def spc_shift(points: list[float], rule: int = 2, sigma: float = 0.01,
              key: str = "spc:A-LATHE1:rule2") -> object:
    return detection(kind="spc", detector_id="quality_spc", problem_key=key,
                     equipment_id="A-LATHE1", line_id="A", tag_id="A-LATHE1.quality_value",
                     priority="medium", onset=T0, ts=T0, value=points[-1],
                     summary=f"P-SH20.diameter on A-LATHE1 out of control (Nelson rule {rule})",
                     ctx=CTX, values={"centre": 20.0, "sigma": sigma},
                     evidence={"rule": rule, "characteristic": "P-SH20.diameter",
                               "points": [[T0.isoformat(), p] for p in points]})


def measured(store, values: list[float], minutes: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """The lathe's diameter measurements in the hour before T0 (what the shift is
    estimated from), oldest first."""
    from core.store.models import QualityMeasurement

    with store.session() as s:
        for i, v in enumerate(values):
            s.add(QualityMeasurement(lot_id="L-00101", equipment_id="A-LATHE1",
                                     characteristic_id="P-SH20.diameter", value=v,
                                     lsl=19.975, usl=20.025, in_spec=abs(v - 20) < 0.025,
                                     ts=T0 - timedelta(minutes=minutes * (1 - i / len(values)))))
        s.commit()


def recs(store) -> list[Recommendation]:  # type: ignore[no-untyped-def]
    with store.session() as s:
        return list(s.exec(select(Recommendation)).all())


def test_a_run_above_target_lowers_the_setpoint_that_raises_it(store, loaded_config,
                                                                frozen_clock) -> None:
    frozen_clock.set(T0)
    measured(store, [20.006 + (i % 3 - 1) * 0.001 for i in range(30)])
    eng = make_engine(store, loaded_config, frozen_clock)
    res = eng.on_detection(spc_shift([20.006, 20.007, 20.004, 20.005, 20.008, 20.006,
                                      20.005, 20.007, 20.006]))
    assert res.outcome == "created"
    [rec] = recs(store)
    assert rec.decision_class == "setpoint" and rec.action == "write_setpoint"
    import json

    p = json.loads(rec.params)
    # +0.006 mm off target; lathe feed has +0.3 mm per mm/rev (speed only -2.5e-5 per rpm)
    assert p["tag_id"] == "A-LATHE1.feed_sp" and p["previous"] == 0.20
    assert abs(p["value"] - (0.20 - 0.006 / 0.3)) < 1e-6
    assert abs(p["r2r"]["expected_shift_after"]) < 0.002
    assert "re-centres" in rec.rationale and "engineers" in rec.rationale


def test_the_current_value_comes_from_the_machine_and_moves_are_limited(
        store, loaded_config, frozen_clock) -> None:
    frozen_clock.set(T0)
    with store.begin() as conn:  # the machine reports 0.17 (an earlier correction)
        write_samples(conn, [
            {"tag_id": "A-LATHE1.feed_sp", "ts": T0 - timedelta(minutes=5), "value": 0.17,
             "quality": 0}])
    corr = r2r.propose(store, equipment_id="A-LATHE1", recipe_id="R-SH20",
                       equipment_type="lathe", characteristic="P-SH20.diameter",
                       points=[19.991] * 30, centre=20.0, sigma=0.01)
    assert corr is not None and corr.current == 0.17
    # -0.009 mm wants +0.03 mm/rev; at most half the half-range (0.025) per move
    assert corr.name == "feed_sp" and abs(corr.target - 0.195) < 1e-9
    assert abs(corr.expected_after) < abs(corr.shift)
    # within noise of the target: nothing to correct
    assert r2r.propose(store, equipment_id="A-LATHE1", recipe_id="R-SH20",
                       equipment_type="lathe", characteristic="P-SH20.diameter",
                       points=[20.002] * 9, centre=20.0, sigma=0.01) is None


def test_rules_4_to_8_alone_recommend_nothing(store, loaded_config, frozen_clock) -> None:
    frozen_clock.set(T0)
    eng = make_engine(store, loaded_config, frozen_clock)
    for rule in (4, 5, 6, 7, 8):
        res = eng.on_detection(spc_shift([20.0, 20.01, 19.99], rule=rule,
                                         key=f"spc:A-LATHE1:rule{rule}"))
        assert res.outcome == "ignored", rule
    assert recs(store) == []


def test_a_shift_no_setpoint_can_correct_holds_only_when_it_makes_bad_units(
        store, loaded_config, frozen_clock) -> None:
    frozen_clock.set(T0)
    with store.begin() as conn:  # nobody knows what the lathe's setpoints do
        exec_sql(conn, "DELETE FROM meta WHERE key LIKE 'r2r.effect.R-SH20.lathe.%'")
    eng = make_engine(store, loaded_config, frozen_clock)
    # +0.015 mm, inside the spec (20 ± 0.025): no correction, nothing out of spec: alarm only
    res = eng.on_detection(spc_shift([20.015] * 9, key="spc:A-LATHE1:inspec"))
    assert res.outcome == "ignored" and recs(store) == []
    # +0.03 mm: the units are out of spec and no setpoint can bring it back: hold the lot
    res = eng.on_detection(spc_shift([20.03] * 9))
    assert res.outcome == "created"
    [rec] = recs(store)
    assert rec.decision_class == "lot_hold"


def test_learning_moves_the_effect_halfway_and_refuses_the_wrong_sign(store) -> None:
    base = dict(r2r.effects(store, "R-SH20", "lathe"))
    assert base["feed_sp"] == (0.3, "engineers")
    assert r2r.learn_effect(store, "R-SH20", "lathe", "feed_sp", -0.5) is None
    assert r2r.learn_effect(store, "R-SH20", "lathe", "feed_sp", 0.5) == 0.4
    assert r2r.effects(store, "R-SH20", "lathe")["feed_sp"] == (0.4, "learned")
    # one wild window cannot push it beyond 4× the engineers' figure
    assert r2r.learn_effect(store, "R-SH20", "lathe", "feed_sp", 50.0) == 1.2


def test_a_shift_that_follows_a_batch_also_holds_the_batch_lots(store, loaded_config,
                                                                frozen_clock) -> None:
    """Bad batch: units from B-0001 run off target on the lathe, units from B-0002 do not.
    The machine gets its correction, and B-0001's lots (L-00101, and L-00103 made from the
    same batch) a hold of their own; L-00102 (B-0002) is left alone."""
    import json

    from core.store.models import LotGenealogy, QualityMeasurement

    frozen_clock.set(T0)
    with store.session() as s:
        for lot_id, batch in (("L-00101", "B-0001"), ("L-00103", "B-0001"),
                              ("L-00102", "B-0002")):
            s.add(LotGenealogy(child_lot_id=lot_id, batch_id=batch, relation="consume",
                               quantity=100, ts=T0 - timedelta(hours=2)))
        for i in range(15):
            for lot_id, value in (("L-00102", 20.0 + (i % 3 - 1) * 0.002),
                                  ("L-00101", 20.006 + (i % 3 - 1) * 0.002)):
                s.add(QualityMeasurement(lot_id=lot_id, equipment_id="A-LATHE1",
                                         characteristic_id="P-SH20.diameter", value=value,
                                         lsl=19.95, usl=20.05, in_spec=True,
                                         ts=T0 - timedelta(minutes=60 - i)))
        s.commit()
    eng = make_engine(store, loaded_config, frozen_clock)
    eng.on_detection(spc_shift([20.006, 20.007, 20.005, 20.006, 20.006, 20.007, 20.005,
                                20.006, 20.006], sigma=0.003))
    by_class = {r.decision_class: r for r in recs(store)}
    assert set(by_class) == {"setpoint", "lot_hold"}
    hold = by_class["lot_hold"]
    assert hold.problem_key == "batch:B-0001:P-SH20.diameter"
    lots = json.loads(hold.params)["lots"]
    assert "L-00101" in lots and "L-00103" in lots and "L-00102" not in lots
    assert "B-0001" in json.loads(hold.evidence)["detection"]["summary"]
    # the same evidence again merges into the two open recommendations
    eng.on_detection(spc_shift([20.006] * 9, sigma=0.003))
    assert len(recs(store)) == 2
    # once quality used a hold of this batch as it was, the batch is not suspected again
    from core.engine.rules import suspected_batch
    from core.store.models import Hold

    det = spc_shift([20.006] * 9, sigma=0.003)
    assert suspected_batch(store, det) is not None
    with store.session() as s:
        s.add(Hold(id="NCR-1", reason="batch B-0001", status="closed",
                   disposition="use_as_is", created_by="q", created_at=T0,
                   recommendation_id=hold.id))
        s.commit()
    assert suspected_batch(store, det) is None


def test_a_run_and_a_trend_on_one_chart_make_one_correction(store, loaded_config,
                                                            frozen_clock) -> None:
    frozen_clock.set(T0)
    measured(store, [20.006 + (i % 3 - 1) * 0.001 for i in range(30)])
    eng = make_engine(store, loaded_config, frozen_clock)
    pts = [20.006, 20.007, 20.004, 20.005, 20.008, 20.006, 20.005, 20.007, 20.006]
    first = eng.on_detection(spc_shift(pts, rule=2))
    second = eng.on_detection(spc_shift(pts, rule=3, key="spc:A-LATHE1:rule3"))
    assert first.outcome == "created" and second.outcome == "merged"
    [rec] = recs(store)
    assert rec.problem_key == "r2r:A-LATHE1:P-SH20.diameter"


def test_a_run_picked_from_a_centred_process_moves_nothing(store, loaded_config,
                                                           frozen_clock) -> None:
    """Nine points above the centre line happen by chance; their mean is ~0.8σ high
    because they were chosen for it. The machine's last 30 measurements are centred:
    correcting would be tampering."""
    frozen_clock.set(T0)
    measured(store, [20.0 + (-1) ** i * 0.008 * (i % 4) / 3 for i in range(30)])
    eng = make_engine(store, loaded_config, frozen_clock)
    res = eng.on_detection(spc_shift([20.008, 20.005, 20.012, 20.004, 20.009, 20.006,
                                      20.011, 20.003, 20.007]))
    assert res.outcome == "ignored" and recs(store) == []


def test_only_measurements_since_the_last_setpoint_change_count(store, loaded_config,
                                                                frozen_clock) -> None:
    import json

    from core.store.models import Action

    frozen_clock.set(T0)
    measured(store, [20.009] * 25 + [20.0] * 5)  # shifted before the change, not after
    with store.session() as s:  # the loop wrote the feed 10 minutes ago
        s.add(Action(recommendation_id=None, kind="write_setpoint", status="done",
                     params=json.dumps({"equipment_id": "A-LATHE1", "name": "feed_sp"},
                                       sort_keys=True),
                     idempotency_key="k-feed", created_at=T0 - timedelta(minutes=11),
                     finished_at=T0 - timedelta(minutes=10)))
        s.commit()
    args = {"equipment_id": "A-LATHE1", "recipe_id": "R-SH20", "equipment_type": "lathe",
            "characteristic": "P-SH20.diameter", "points": [20.009] * 9, "centre": 20.0,
            "sigma": 0.01}
    assert r2r.propose(store, **args, at=T0) is None  # 5 points since: wait for more
    before = r2r.propose(store, **args, at=T0 - timedelta(minutes=11))
    assert before is not None and before.shift > 0.008  # before the change: 25 shifted


def test_no_hold_when_the_machine_measured_and_sorted_every_unit_of_the_lot(
        store, loaded_config, frozen_clock) -> None:
    """The lathe measures each unit of L-00101 and counts the out-of-spec ones as scrap:
    what goes on is in spec, so the shift is an alarm, not a hold (which would only stop
    good product). With a tenth of the units measured, the same shift holds the lot."""
    from core.production import PRODUCTION_COUNT, ensure_schema

    frozen_clock.set(T0)
    with store.begin() as conn:
        exec_sql(conn, "DELETE FROM meta WHERE key LIKE 'r2r.effect.R-SH20.lathe.%'")
    ensure_schema(store)
    measured(store, [20.03] * 12)
    with store.begin() as conn:
        conn.execute(PRODUCTION_COUNT.insert(), [{
            "equipment_id": "A-LATHE1", "line_id": "A", "lot_id": "L-00101",
            "ts": T0 - timedelta(minutes=5), "good": 2, "scrap": 10}])
    eng = make_engine(store, loaded_config, frozen_clock)
    res = eng.on_detection(spc_shift([20.03] * 9))
    assert res.outcome == "ignored" and recs(store) == []
    with store.begin() as conn:  # the machine made far more than it measured
        conn.execute(PRODUCTION_COUNT.insert(), [{
            "equipment_id": "A-LATHE1", "line_id": "A", "lot_id": "L-00101",
            "ts": T0 - timedelta(minutes=4), "good": 100, "scrap": 0}])
    res = eng.on_detection(spc_shift([20.03] * 9, key="spc:A-LATHE1:again"))
    assert [r.decision_class for r in recs(store)] == ["lot_hold"]


def test_a_correction_that_keeps_the_rate_beats_a_slightly_more_exact_slowdown() -> None:
    def c(name: str, cur: float, target: float, after: float) -> r2r.Correction:
        return r2r.Correction(name, cur, target, 1.0, "engineers", 1.0, after, 0.1)

    slow = c("speed_sp", 30.0, 27.5, 0.05)  # 8 % slower, almost exact
    feed = c("feed_sp", 0.2, 0.18, 0.3)  # takes out 70 % of the shift, rate unchanged
    assert r2r.rate_loss(slow) == pytest.approx(1 - 27.5 / 30) and r2r.rate_loss(feed) == 0
    assert r2r.choose([slow, feed], 1.0) is feed
    weak = c("feed_sp", 0.2, 0.19, 0.7)  # takes out only 30 %: the slowdown is needed
    assert r2r.choose([slow, weak], 1.0) is slow
    assert r2r.choose([c("feed_sp", 0.2, 0.21, 0.9)], 1.0) is None  # too little: nothing
