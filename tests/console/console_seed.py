"""A fixed, busy plant for the console tests: states, samples, counts, a plan, recommendations
and alarms, all timed from the frozen clock so snapshots never move."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from core.alarms import AlarmManager
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.detect.events import Detection
from core.production import PRODUCTION_COUNT, ensure_schema
from core.store.db import Store
from core.store.models import (
    EquipmentStateInterval,
    LotGenealogy,
    Operation,
    Plan,
    PlanItem,
    Recommendation,
)
from core.store.sample_writer import write_samples

PINS = {"olga": "1111", "sam": "2222", "maya": "3333", "quinn": "4444", "tom": "5555",
        "ada": "9999"}

RECS = [
    # id, class, target, action, params, rationale, impact, role, impact score, conf
    ("R-0001", "work_order", "A-LATHE1", "create_work_order",
     {"equipment_id": "A-LATHE1", "fault_mode": "bearing", "kind": "predictive"},
     "bearing temperature rising 2.1 °C/h with vibration up 40 %: replace the bearing in "
     "the next window", "avoids ~6 h unplanned downtime", "maintenance", 0.9, 0.82),
    ("R-0002", "lot_hold", "L-00101", "hold_lots",
     {"lots": ["L-00101"], "reason": "diameter drifting above centre line"},
     "9 diameter points in a row above the centre line on A-GRIND1 (Nelson rule 2)",
     "keeps ~100 suspect parts from shipping", "quality", 0.7, 0.9),
    ("R-0003", "setpoint", "B-MOLD1.temp_sp", "write_setpoint",
     {"tag": "B-MOLD1.temp_sp", "value": 236.0, "previous": 240.0},
     "predicted scrap risk 0.70 driven by zone temperature 6.5 °C above baseline",
     "scrap 7 % → 3 %", "shift_lead", 0.5, 0.7),
]


def seed(store: Store, cfg: LoadedConfig, clock: FrozenClock) -> AlarmManager:
    """Fill the store; returns an AlarmManager holding the seeded alarms."""
    now = clock.now()
    _states_samples_counts(store, now)
    _plan(store, now)
    _recommendations(store, now)
    with store.begin() as c:
        c.execute(insert(LotGenealogy.__table__).values(
            child_lot_id="L-00101", batch_id="B-0001", relation="consume", quantity=100.0,
            ts=now - timedelta(minutes=30)))
    return _alarms(store, cfg, clock)


def _states_samples_counts(store: Store, now: datetime) -> None:
    states = {"A-LATHE1": ("running", ""), "A-MILL1": ("running", ""),
              "A-GRIND1": ("idle", "starved"), "B-MOLD1": ("down_unplanned", "heater"),
              "B-MOLD2": ("setup", "changeover")}
    day = now.replace(hour=0)
    ensure_schema(store)
    with store.begin() as c:
        for eq, (state, why) in states.items():
            c.execute(insert(EquipmentStateInterval.__table__).values(
                equipment_id=eq, state="running", reason_code="", start=day,
                end=now - timedelta(minutes=45)))
            c.execute(insert(EquipmentStateInterval.__table__).values(
                equipment_id=eq, state=state, reason_code=why,
                start=now - timedelta(minutes=45)))
            c.execute(insert(PRODUCTION_COUNT).values(
                equipment_id=eq, line_id=eq[0], ts=now - timedelta(minutes=50),
                good=100 + len(eq), scrap=len(eq) % 4))
        rows = []
        for i in range(40):
            ts = now - timedelta(seconds=5 * (40 - i))
            rows.append({"tag_id": "A-LATHE1.vibration_rms", "ts": ts,
                         "value": 2.0 + (i % 7) / 10, "quality": 0})
            rows.append({"tag_id": "A-LATHE1.bearing_temp", "ts": ts,
                         "value": 70.0 + i / 4, "quality": 0})
        write_samples(c, rows)


def _plan(store: Store, now: datetime) -> None:
    op = Operation.__table__
    with store.begin() as c:
        ops = c.execute(select(op.c.id, op.c.equipment_id).where(op.c.equipment_id.is_not(None))
                        .order_by(op.c.order_id, op.c.step)).all()
        c.execute(insert(Plan.__table__).values(id="PLAN-0001", created_at=now, status="active",
                                                objective="weighted_tardiness",
                                                reason="initial plan"))
        at: dict[str, datetime] = defaultdict(lambda: now - timedelta(minutes=30))
        seq: dict[str, int] = defaultdict(int)
        items = []
        for i, o in enumerate(ops[:60]):
            start = at[o.equipment_id]
            end = start + timedelta(minutes=50 + (i % 5) * 10)
            items.append({"plan_id": "PLAN-0001", "seq": seq[o.equipment_id],
                          "operation_id": o.id, "equipment_id": o.equipment_id,
                          "start": start, "end": end, "setup_min": 5.0})
            at[o.equipment_id] = end + timedelta(minutes=10)
            seq[o.equipment_id] += 1
        c.execute(insert(PlanItem.__table__), items)


def _recommendations(store: Store, now: datetime) -> None:
    with store.begin() as c:
        for rid, cls, target, action, params, why, impact, role, score, conf in RECS:
            ev = {"impact": {"score": score}, "signals": [{"signal": "bearing_temp",
                                                           "slope_per_h": 2.1}]}
            if cls == "setpoint":
                ev["model"] = "scrap_risk"
                ev["score"] = 0.7
                ev["contributions"] = [{"signal": "zone_temp", "feature": "dbase_1h",
                                        "value": 6.5, "baseline": 0.0, "unit": "°C",
                                        "contribution": 0.8, "direction": "raises"}]
            c.execute(insert(Recommendation.__table__).values(
                id=rid, decision_class=cls, target=target, action=action,
                params=json.dumps(params, sort_keys=True), rationale=why,
                evidence=json.dumps(ev, sort_keys=True), confidence=conf,
                expected_impact=impact, required_role=role, status="proposed",
                problem_key=f"{cls}:{target}", created_at=now - timedelta(minutes=5),
                expires_at=now + timedelta(hours=2)))


def _alarms(store: Store, cfg: LoadedConfig, clock: FrozenClock) -> AlarmManager:
    mgr = AlarmManager.from_config(store, cfg, clock)
    now = clock.now()
    for key, eq, tag, prio, summary in (
        ("limit:A-LATHE1.bearing_temp:hi", "A-LATHE1", "A-LATHE1.bearing_temp", "high",
         "bearing temperature above 80 °C"),
        ("limit:B-MOLD1.zone_temp:hi", "B-MOLD1", "B-MOLD1.zone_temp", "medium",
         "zone temperature above limit"),
    ):
        mgr.on_detection(Detection(kind="limit", detector_id="limits", problem_key=key,
                                   priority=prio, onset=now - timedelta(minutes=3),
                                   summary=summary, equipment_id=eq, line_id=eq[0],
                                   tag_id=tag, value=81.0))
    return mgr
