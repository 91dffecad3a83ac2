"""Recommendation rules: from an analysed detection to one concrete, parameterised action.

Each rule reads what it needs from the store (genealogy, maintenance windows, recipe
limits, stock) and returns a ``Proposal`` with an expected impact in one common unit so
proposals for different problems can be ranked against each other:
``impact_score`` ≈ cost avoided in "unit equivalents" (one good unit = 1, one hour of
unplanned downtime = ``DOWNTIME_H``), already weighted by the confidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core.clock import ensure_utc, parse_utc
from core.engine import r2r
from core.engine.analyze import Analysis, signal_words
from core.engine.detection import DetectionLike, context_of, evidence_of, values_of
from core.statuses import WO_OPEN
from core.store.db import Store, guard
from core.store.models import (
    Equipment,
    Hold,
    HoldLot,
    Lot,
    LotGenealogy,
    MaintenanceWindow,
    QualityCharacteristic,
    QualityMeasurement,
    RecipeSetpoint,
    Recommendation,
    Stock,
    StockLocation,
    WorkOrder,
)

DOWNTIME_H = 100.0  # unit equivalents per hour of unplanned downtime
SCRAP_UNIT = 1.0
PRIORITY_CONFIDENCE = {"low": 0.4, "medium": 0.6, "high": 0.8, "critical": 0.9}
SHIFT_RULES = r2r.SHIFT_RULES
WEAR_SIGNALS = ("vibration_rms", "bearing_temp", "motor_current")
# which failure mode a signal points at (the twin's and maintenance's fault vocabulary)
FAULT_OF_SIGNAL = {"vibration_rms": "bearing", "bearing_temp": "bearing",
                   "motor_current": "tool", "zone_temp": "heater", "pressure": "clog",
                   "flow": "clog"}
ASSUMED_WARNING_H = 8.0  # a wear fault's shortest warning when no detector predicts the failure
SAFETY_H = 1.0  # a job planned before a predicted failure starts at least this much earlier
JOB_H = 1.0  # what a planned maintenance job stops the machine for (plan cost, shown)
TTL_S = {"lot_hold": 4 * 3600, "lot_release": 8 * 3600, "work_order": 8 * 3600,
         "setpoint": 3600, "replan": 1800, "replenish": 2 * 3600, "retrain": 24 * 3600,
         "command": 3600}

# action kinds per decision class (the outbox's vocabulary)
ACTION_OF = {"lot_hold": "hold_lots", "lot_release": "release_lots",
             "work_order": "create_work_order", "setpoint": "write_setpoint",
             "replan": "activate_plan", "replenish": "replenish",
             "retrain": "retrain_model", "command": "send_command"}
# what a drifted model costs: small against a failure, never zero (it is ranked last,
# but it is shown) — a model scoring on inputs it never saw misses the next failure
RETRAIN_IMPACT = 0.05 * DOWNTIME_H


@dataclass
class Proposal:
    decision_class: str
    target: str
    params: dict[str, Any]
    expected_impact: str
    impact_score: float
    confidence: float
    note: str = ""  # extra rationale from the rule
    ttl_s: float = 3600.0
    extra_evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return ACTION_OF[self.decision_class]

    def same_action(self, decision_class: str, target: str, action: str) -> bool:
        return (self.decision_class, self.target, self.action) == (decision_class, target,
                                                                   action)


Replanner = Callable[[str, datetime, timedelta, datetime], tuple[str, dict[str, Any]]]
"""(equipment_id, down_start, expected_duration, now) -> (proposed plan id, summary)."""


@dataclass
class RuleContext:
    store: Store
    now: datetime
    replanner: Replanner | None = None


def confidence_of(det: DetectionLike) -> float:
    ev = evidence_of(det)
    if isinstance(ev.get("confidence"), (int, float)):
        return max(0.0, min(1.0, float(ev["confidence"])))
    score = ev.get("score")
    if score is None and det.kind == "ml_score":
        score = det.value  # core.detect puts the model's score in the detection's value
    if isinstance(score, (int, float)) and 0 <= float(score) <= 1:
        return float(score)
    return PRIORITY_CONFIDENCE.get(det.priority, 0.6)


def decision_class_for(det: DetectionLike) -> str | None:
    """Which kind of action answers this detection (None: alarm only, nothing to do)."""
    ev = evidence_of(det)
    forced = ev.get("action")
    if isinstance(forced, str) and forced in ACTION_OF:
        return forced
    tag = (det.tag_id or "").rsplit(".", 1)[-1]
    model = str(ev.get("model") or det.detector_id or "").lower()
    if det.kind == "spc":
        # A run or a trend (rules 2, 3) says the mean moved: re-centre it (run-to-run),
        # and hold the lots (with their batch's downstream lots) only when no setpoint
        # can. A lone point beyond 3σ (rule 1) on a machine that measures every unit is
        # already scrapped there; it and rules 4–8 (alternation, clusters,
        # stratification, mixture) point at causes to investigate: an alarm, not a
        # reason to stop product. Evidence without a rule number is treated as a shift.
        rule = _rule_number(ev.get("rule"))
        if rule is None:
            return "lot_hold"
        return "setpoint" if rule in SHIFT_RULES else None
    if det.kind == "limit":
        if tag in WEAR_SIGNALS:
            return "work_order"
        return "setpoint" if "setpoint" in ev else None
    if det.kind == "deviation":
        # a signal off its setpoint or its recipe baseline on the side wear drives it
        # (core.detect.deviation names the fault mode): maintenance's work order; a
        # deviation that names no wear is an alarm for the operator
        fault = ev.get("fault_mode")
        known = set(FAULT_OF_SIGNAL.values())  # what a maintenance work order can fix
        return "work_order" if isinstance(fault, str) and fault in known else None
    if det.kind == "ml_score":
        if any(w in model for w in ("fail", "rul", "anomaly", "wear")):
            return "work_order"
        if "scrap" in model or "quality" in model:
            return "setpoint" if "setpoint" in ev else "lot_hold"
        return None
    if det.kind == "state":
        problem = str(ev.get("problem") or ev.get("state") or "down_unplanned")
        return "replan" if problem == "down_unplanned" else None
    if det.kind == "material":
        return "replenish"
    if det.kind == "model_drift":
        return "retrain"
    return None  # stale / bad data: fix the data, not the plant


# ---------------------------------------------------------------- genealogy


def downstream_lots(session: Session, lot_id: str | None, batch_id: str | None) -> list[str]:
    """Lots sharing the batch, plus every lot made from them (split/merge children)."""
    found: list[str] = [lot_id] if lot_id else []
    if batch_id:
        rows = session.exec(select(LotGenealogy.child_lot_id).where(
            LotGenealogy.batch_id == batch_id).order_by(col(LotGenealogy.ts))).all()
        found += [r for r in rows if r not in found]
    frontier = list(found)
    while frontier:
        children = session.exec(select(LotGenealogy.child_lot_id).where(
            col(LotGenealogy.parent_lot_id).in_(frontier))).all()
        frontier = [c for c in children if c not in found]
        found += frontier
    return found


def open_holds_of(session: Session, lot_ids: list[str]) -> set[str]:
    rows = session.exec(select(HoldLot.lot_id).join(Hold, col(Hold.id) == col(HoldLot.hold_id))
                        .where(col(HoldLot.lot_id).in_(lot_ids), Hold.status == "open")).all()
    return set(rows)


def rule_lot_hold(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    ctx = an.context
    lot_id, batch_id = ctx.get("lot_id"), ctx.get("batch_id")
    if not lot_id and not batch_id:
        return None
    with guard(rc.store), rc.store.session() as s:
        lots = downstream_lots(s, lot_id, batch_id)
        already = open_holds_of(s, lots)
        rows = {lot.id: lot for lot in s.exec(select(Lot).where(col(Lot.id).in_(lots))).all()}
    to_hold = [x for x in lots if x in rows and x not in already
               and rows[x].status not in ("scrapped",)]
    if not to_hold:
        return None
    qty = sum(rows[x].quantity for x in to_hold)
    conf = confidence_of(det)
    downstream = [x for x in to_hold if x != lot_id]
    why = (f"batch {batch_id} also went into {', '.join(downstream)}" if downstream and batch_id
           else "")
    return Proposal(
        "lot_hold", lot_id or batch_id or to_hold[0],
        {"lots": to_hold, "batch_id": batch_id, "origin_lot": lot_id,
         "reason": det.summary or f"{det.detector_id} on {det.equipment_id}",
         "characteristic": evidence_of(det).get("characteristic")},
        f"keeps {qty} units in {len(to_hold)} lot(s) from shipping until a quality "
        "engineer dispositions them",
        round(qty * SCRAP_UNIT * conf, 2), conf, why, TTL_S["lot_hold"])


# ---------------------------------------------------------------- maintenance


def next_window(session: Session, line_id: str, equipment_id: str,
                now: datetime) -> MaintenanceWindow | None:
    return session.exec(select(MaintenanceWindow).where(
        MaintenanceWindow.line_id == line_id,
        (col(MaintenanceWindow.equipment_id).is_(None))
        | (MaintenanceWindow.equipment_id == equipment_id),
        col(MaintenanceWindow.end) > now).order_by(col(MaintenanceWindow.start))).first()


def fault_mode_of(det: DetectionLike) -> str:
    """The failure mode a detection points at: stated, from its signal, or from the model's
    strongest signal contribution."""
    ev = evidence_of(det)
    if ev.get("fault_mode"):
        return str(ev["fault_mode"])
    signal = (det.tag_id or "").rsplit(".", 1)[-1]
    if signal in FAULT_OF_SIGNAL:
        return FAULT_OF_SIGNAL[signal]
    contribs = ev.get("contributions")
    names: list[str] = []
    if isinstance(contribs, dict):
        names = [str(k).split("__")[0] for k, _ in
                 sorted(contribs.items(), key=lambda kv: -abs(float(kv[1])))]
    elif isinstance(contribs, list):
        names = [str(c.get("signal", "")) for c in sorted(
            (c for c in contribs if isinstance(c, dict)),
            key=lambda c: -abs(float(c.get("contribution", 0.0) or 0.0)))]
    for n in names:
        if n in FAULT_OF_SIGNAL:
            return FAULT_OF_SIGNAL[n]
    return signal or det.kind


def rule_work_order(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    eq_id = an.context.get("equipment_id")
    line_id = an.context.get("line_id")
    if not eq_id or not line_id:
        return None
    ev = evidence_of(det)
    predicted = _when(ev.get("predicted_failure_at"))
    fault = fault_mode_of(det)
    with guard(rc.store), rc.store.session() as s:
        win = next_window(s, line_id, eq_id, rc.now)
        open_wo = s.exec(select(WorkOrder).where(
            WorkOrder.equipment_id == eq_id, WorkOrder.fault_mode == fault,
            col(WorkOrder.status).in_(WO_OPEN))).first()
    if open_wo is not None:  # already planned: a second WO for the same fault helps nobody
        return None
    downtime_h = float(ev.get("expected_downtime_h", 4.0))
    conf = confidence_of(det)
    source = "detector"
    if predicted is None:
        # no detector said when: assume the shortest warning a wear fault gives (the
        # P-F interval) from the detection's onset, so the job is planned before it
        predicted = ensure_utc(det.onset) + timedelta(hours=ASSUMED_WARNING_H)
        source = f"assumed: {ASSUMED_WARNING_H:g} h after the first sign"
    latest = predicted - timedelta(hours=SAFETY_H)
    params: dict[str, Any] = {
        "equipment_id": eq_id, "kind": "predictive", "fault_mode": fault,
        "description": f"inspect {signal_words(fault)} on {eq_id}: {det.summary}".strip(": "),
        "priority": 2, "predicted_failure_source": source, "expected_downtime_h": downtime_h,
        # a detector's prediction is the learner's outcome window; an assumed one is not
        ("predicted_failure_at" if source == "detector" else "assumed_failure_at"):
            predicted.isoformat(),
        "latest_start": latest.isoformat(), "job_h": JOB_H,
    }
    lost = f"about {JOB_H:g} h of output on {eq_id} (the job stops it during production)"
    if win is not None and ensure_utc(win.start) <= latest:
        params.update(window_id=win.id, window_start=win.start.isoformat(),
                      window_end=win.end.isoformat())
        note = (f"do it in maintenance window {win.id} {win.start:%a %H:%M}–{win.end:%H:%M} "
                f"UTC, before the predicted failure ({predicted:%a %H:%M} UTC, {source}): "
                "the line is stopped then anyway, no output is lost")
    else:
        params["priority"] = 1
        why = (f"the next window ({win.start:%a %H:%M} UTC) comes after the predicted failure"
               if win is not None else "no maintenance window ahead on this line")
        note = (f"{why} ({predicted:%a %H:%M} UTC, {source}): stop at the next lot change, "
                f"before {latest:%a %H:%M} UTC; costs {lost}, against {downtime_h:g} h "
                "of breakdown")
    if det.kind == "limit" and det.priority in ("high", "critical") and params["priority"] != 1 \
            and source != "detector":
        params["priority"] = 1
        for k in ("window_id", "window_start", "window_end"):
            params.pop(k, None)
        note = ("the signal is already beyond its alarm limit: do not wait for the window, "
                f"stop at the next lot change; costs {lost}")
    return Proposal("work_order", eq_id, params,
                    f"avoids about {downtime_h:g} h of unplanned downtime on {eq_id}",
                    round(downtime_h * DOWNTIME_H * conf, 2), conf, note, TTL_S["work_order"])


# ---------------------------------------------------------------- setpoints


def rule_setpoint(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    ev = evidence_of(det)
    sp = ev.get("setpoint")
    eq_id, recipe_id, eq_type = (an.context.get("equipment_id"), an.context.get("recipe_id"),
                                 an.context.get("equipment_type"))
    if sp is None and det.kind == "spc" and eq_id and recipe_id and eq_type:
        return _spc_correction(rc, det, an, str(eq_id), str(recipe_id), str(eq_type))
    if not isinstance(sp, dict) or not sp.get("name") or not (eq_id and recipe_id and eq_type):
        return None
    with guard(rc.store), rc.store.session() as s:
        row = s.get(RecipeSetpoint, f"{recipe_id}.{eq_type}.{sp['name']}")
    if row is None:
        return None
    current = float(sp["current"]) if isinstance(sp.get("current"), (int, float)) else row.value
    if isinstance(sp.get("target"), (int, float)):
        want = float(sp["target"])
    elif isinstance(sp.get("delta"), (int, float)):
        want = current + float(sp["delta"])
    else:
        want = row.value  # back to the recipe's own value
    value = min(max(want, row.lo), row.hi)
    if value == current:
        return None
    note = (f"{signal_words(row.name)} {current:g} → {value:g} {row.unit} "
            f"(recipe range {row.lo:g}–{row.hi:g})")
    if value != want:
        note += f"; asked for {want:g}, clamped to the recipe limit"
    scrap = float(ev.get("expected_scrap_units", 10.0))
    conf = confidence_of(det)
    return Proposal(
        "setpoint", f"{eq_id}.{row.name}",
        {"tag_id": f"{eq_id}.{row.name}", "equipment_id": eq_id, "name": row.name,
         "recipe_id": recipe_id, "equipment_type": eq_type, "value": value,
         "previous": current, "lo": row.lo, "hi": row.hi, "unit": row.unit},
        f"about {scrap:g} fewer scrap units over the next lots", round(scrap * conf, 2),
        conf, note, TTL_S["setpoint"])


def _spc_correction(rc: RuleContext, det: DetectionLike, an: Analysis, eq_id: str,
                    recipe_id: str, eq_type: str) -> Proposal | None:
    """Run-to-run: the setpoint move that puts the characteristic back on target."""
    ev, vals = evidence_of(det), values_of(det)
    pts = [float(p[1]) for p in ev.get("points", []) if isinstance(p, (list, tuple))
           and len(p) == 2 and isinstance(p[1], (int, float))]
    sigma = vals.get("sigma") if isinstance(vals.get("sigma"), (int, float)) else None
    centre = vals.get("centre") if isinstance(vals.get("centre"), (int, float)) else None
    char = ev.get("characteristic")
    corr = r2r.propose(rc.store, equipment_id=eq_id, recipe_id=recipe_id,
                       equipment_type=eq_type, characteristic=char if isinstance(char, str)
                       else None, points=pts, centre=centre, sigma=sigma, at=det.onset)
    if corr is None:
        return None
    with guard(rc.store), rc.store.session() as s:
        row = s.get(RecipeSetpoint, f"{recipe_id}.{eq_type}.{corr.name}")
        ch = s.get(QualityCharacteristic, char) if isinstance(char, str) else None
        lot = s.get(Lot, an.context.get("lot_id") or "")
    if row is None:
        return None
    scrap_now = scrap_after = 0.0
    if ch is not None:
        scrap_now = r2r.out_of_spec_share(ch.target + corr.shift, corr.sigma, ch.lsl, ch.usl)
        scrap_after = r2r.out_of_spec_share(ch.target + corr.expected_after, corr.sigma,
                                            ch.lsl, ch.usl)
    units = float(lot.quantity) if lot is not None else 100.0
    saved = max(0.0, (scrap_now - scrap_after) * units)
    conf = confidence_of(det)
    note = (f"{signal_words(row.name)} {corr.current:g} → {corr.target:g} {row.unit} re-centres "
            f"{ch.name if ch else 'the characteristic'} (off target by {corr.shift:+.3g}, "
            f"expected {corr.expected_after:+.3g} after; effect {corr.effect:.3g} per "
            f"{row.unit or 'unit'} from the {corr.source}'s figure; recipe range "
            f"{row.lo:g}–{row.hi:g})")
    loss = r2r.rate_loss(corr)
    note += (f"; slows the machine by {100 * loss:.0f} %: no setpoint that keeps the rate "
             "corrects enough" if loss > 0 else "; keeps the machine's rate")
    return Proposal(
        "setpoint", f"{eq_id}.{row.name}",
        {"tag_id": f"{eq_id}.{row.name}", "equipment_id": eq_id, "name": row.name,
         "recipe_id": recipe_id, "equipment_type": eq_type, "value": corr.target,
         "previous": corr.current, "lo": row.lo, "hi": row.hi, "unit": row.unit,
         "characteristic": char, "r2r": corr.as_evidence()},
        f"about {saved:.0f} fewer scrap units per lot (out of spec {100 * scrap_now:.1f} % → "
        f"{100 * scrap_after:.1f} %)", round(saved * conf + 1.0, 2), conf, note,
        TTL_S["setpoint"], extra_evidence={"r2r": corr.as_evidence()})


# ---------------------------------------------------------------- re-plan


def rule_replan(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    eq_id = an.context.get("equipment_id")
    if not eq_id or rc.replanner is None:
        return None
    ev = evidence_of(det)
    hours = float(ev.get("expected_downtime_h", 1.0))
    plan_id, summary = rc.replanner(eq_id, ensure_utc(det.onset), timedelta(hours=hours),
                                    rc.now)
    moved = summary.get("moved_orders", []) or []
    before = summary.get("weighted_tardiness_before")
    after = summary.get("weighted_tardiness_after")
    saved = (float(before) - float(after)) if isinstance(before, (int, float)) and isinstance(
        after, (int, float)) else 0.0
    conf = confidence_of(det)
    late_before = sum(1 for c in moved if (c.get("old_tardiness_min") or 0) > 0)
    late_after = len(summary.get("at_risk", []) or [])
    note = f"{len(moved)} order(s) move; strategy {summary.get('strategy', '?')}"
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        note += (f"; due-date risk: {late_before} order(s) late in the plan in force → "
                 f"{late_after} late with the breakdown re-planned (weighted tardiness "
                 f"{before:g} → {after:g} min, the plan's objective); {hours:g} h of "
                 f"output lost on {eq_id}")
    return Proposal(
        "replan", an.context.get("line_id") or eq_id,
        {"plan_id": plan_id, "equipment_id": eq_id, "down_hours": hours,
         "summary": _jsonable(summary)},
        f"re-plans around {hours:g} h of downtime on {eq_id}",
        round(max(saved, 0.0) / 60 + hours * DOWNTIME_H * 0.5 * conf, 2), conf, note,
        TTL_S["replan"])


# ---------------------------------------------------------------- material


def rule_replenish(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    ev = evidence_of(det)
    vals = values_of(det)
    material = ev.get("material_id") or _material_from_key(det.problem_key)
    line_id = an.context.get("line_id")
    if not material or not line_id:
        return None
    with guard(rc.store), rc.store.session() as s:
        dest = f"{line_id}-LS" if s.get(StockLocation, f"{line_id}-LS") else None
        if dest is None:
            return None
        sources = s.exec(select(Stock).where(Stock.material_id == material,
                                             Stock.location_id != dest,
                                             col(Stock.quantity) > 0)
                         .order_by(col(Stock.quantity).desc())).all()
    if not sources:
        return None
    src = sources[0]
    want = float(ev.get("shortage_qty") or vals.get("shortfall") or src.quantity)
    qty = min(want, src.quantity)
    hours = float(ev.get("expected_downtime_h", 2.0))
    conf = confidence_of(det)
    return Proposal(
        "replenish", f"{dest}:{material}",
        {"material_id": material, "batch_id": src.batch_id, "from_stock": src.id,
         "from_location": src.location_id, "to_location": dest, "quantity": qty,
         "short_at": ev.get("short_at") or ev.get("runout_at")},
        f"keeps line {line_id} supplied (avoids about {hours:g} h starved)",
        round(hours * DOWNTIME_H * conf, 2), conf,
        f"move {qty:g} of {material} (batch {src.batch_id}) from {src.location_id} to {dest}",
        TTL_S["replenish"])


# ---------------------------------------------------------------- models


def rule_retrain(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    """A model whose inputs drifted away from its training data: train a challenger on
    recent history; the registry promotes it only if it beats the champion."""
    ev = evidence_of(det)
    model = str(ev.get("model") or "")
    drifted = [d for d in ev.get("drifted", []) if isinstance(d, dict) and d.get("feature")]
    if not model or not drifted:
        return None
    worst = max(float(d.get("psi") or 0.0) for d in drifted)
    conf = max(0.3, min(1.0, worst / 0.5))  # PSI 0.25 = major shift, 0.5 = certain
    names = ", ".join(f"{d['feature']} (PSI {float(d.get('psi') or 0):.2f})"
                      for d in drifted[:3])
    more = f" and {len(drifted) - 3} more" if len(drifted) > 3 else ""
    return Proposal(
        "retrain", model,
        {"model": model, "features": [str(d["feature"]) for d in drifted],
         "max_psi": round(worst, 3)},
        "a challenger trained on recent history replaces the champion only if it scores "
        "better on the same hold-out",
        round(RETRAIN_IMPACT * conf, 2), conf,
        f"retrain {model}: inputs no longer look like its training data: {names}{more}",
        TTL_S["retrain"])


RULES: dict[str, Callable[[RuleContext, DetectionLike, Analysis], Proposal | None]] = {
    "lot_hold": rule_lot_hold, "work_order": rule_work_order, "setpoint": rule_setpoint,
    "replan": rule_replan, "replenish": rule_replenish, "retrain": rule_retrain,
}


def propose(rc: RuleContext, det: DetectionLike, an: Analysis) -> Proposal | None:
    cls = decision_class_for(det)
    rule = RULES.get(cls) if cls else None
    prop = rule(rc, det, an) if rule else None
    if prop is None and cls == "setpoint" and det.kind == "spc" and \
            _making_nonconforming(rc, det) and not every_unit_sorted(rc.store, det):
        return rule_lot_hold(rc, det, an)  # it moved, makes bad units, no setpoint helps
    return prop


def every_unit_sorted(store: Store, det: DetectionLike, coverage: float = 0.9) -> bool:
    """Does the evidence say the lot is in spec? A machine that measures (nearly) every
    unit it makes of the lot, and counts the ones outside the spec as scrap, has already
    taken the nonconforming units out: what goes on is measured in spec, and a hold
    would only stop good product (and make the line change over to the next lot and
    back). The shift still shows as an alarm."""
    from sqlalchemy import func
    from sqlalchemy.exc import OperationalError

    from core.production import PRODUCTION_COUNT as PC

    ctx = context_of(det)
    char = evidence_of(det).get("characteristic")
    lot, eq = ctx.lot_id, ctx.equipment_id or det.equipment_id
    if not lot or not eq or not isinstance(char, str):
        return False
    qm = QualityMeasurement.__table__  # type: ignore[attr-defined]
    try:  # (no guard: a store without production counts is an answer, not an error)
        with store.engine.connect() as conn:
            measured = conn.execute(sa_select(func.count()).select_from(qm).where(
                qm.c.lot_id == lot, qm.c.equipment_id == eq,
                qm.c.characteristic_id == char)).scalar() or 0
            made = conn.execute(sa_select(func.sum(PC.c.good + PC.c.scrap)).where(
                PC.c.lot_id == lot, PC.c.equipment_id == eq)).scalar() or 0
    except OperationalError:  # no production counts kept: nothing says the lot is sorted
        return False
    return made > 0 and measured >= coverage * made


def _making_nonconforming(rc: RuleContext, det: DetectionLike) -> bool:
    """A shift no setpoint can correct is worth stopping product for only when it makes
    units outside the spec (a machine that measures every unit scraps those already; a
    lot is held because more of the same may follow). Evidence without points is taken
    as such (a person or another system sent it)."""
    ev = evidence_of(det)
    pts = [p[1] for p in ev.get("points", []) if isinstance(p, (list, tuple)) and len(p) == 2
           and isinstance(p[1], (int, float))]
    char = ev.get("characteristic")
    if not pts or not isinstance(char, str):
        return True
    with guard(rc.store), rc.store.session() as s:
        ch = s.get(QualityCharacteristic, char)
    if ch is None:
        return True
    return sum(1 for v in pts if not ch.lsl <= v <= ch.usl) >= 2


def suspected_batch(store: Store, det: DetectionLike,
                    min_points: int = 12) -> dict[str, Any] | None:
    """Does a quality shift follow a material batch? Units made from the detection's
    batch on this machine sit off target while units from other batches do not: the
    batch, not the process, is the cause, and its lots (downstream too) want a hold
    even when a setpoint can re-centre the machine.
    """
    ev, vals = evidence_of(det), values_of(det)
    ctx = context_of(det)  # the ids the detection carries: no analysis needed here
    batch, eq = ctx.batch_id, ctx.equipment_id or det.equipment_id
    char = ev.get("characteristic")
    sigma = vals.get("sigma")
    if det.kind != "spc" or not batch or not eq or not isinstance(char, str) or \
            not isinstance(sigma, (int, float)) or sigma <= 0:
        return None
    qm = QualityMeasurement.__table__  # type: ignore[attr-defined]
    gen = LotGenealogy.__table__  # type: ignore[attr-defined]
    hold_t = Hold.__table__  # type: ignore[attr-defined]
    rec_t = Recommendation.__table__  # type: ignore[attr-defined]
    with guard(store), store.engine.connect() as conn:
        # quality already inspected this batch's lots for this characteristic and used
        # them as they were: the evidence says its lots are in spec — no new hold
        cleared = conn.execute(sa_select(hold_t.c.id).join(
            rec_t, rec_t.c.id == hold_t.c.recommendation_id).where(
            rec_t.c.problem_key == f"batch:{batch}:{char}",
            hold_t.c.disposition == "use_as_is").limit(1)).first()
        if cleared is not None:
            return None
        ch = conn.execute(sa_select(QualityCharacteristic.__table__.c.target).where(  # type: ignore[attr-defined]
            QualityCharacteristic.__table__.c.id == char)).first()  # type: ignore[attr-defined]
        rows = conn.execute(
            sa_select(qm.c.value, gen.c.batch_id).join(gen, gen.c.child_lot_id == qm.c.lot_id)
            .where(qm.c.equipment_id == eq, qm.c.characteristic_id == char,
                   gen.c.relation == "consume")
            .order_by(qm.c.ts.desc()).limit(400)).all()
    if ch is None:
        return None
    mine = [r.value for r in rows if r.batch_id == batch]
    other = [r.value for r in rows if r.batch_id != batch]
    if len(mine) < min_points or len(other) < min_points:
        return None
    off_mine = sum(mine) / len(mine) - ch.target
    off_other = sum(other) / len(other) - ch.target
    if abs(off_mine) < 1.0 * sigma or abs(off_other) > 0.5 * sigma or \
            abs(off_mine) < 2 * abs(off_other):
        return None
    return {"batch_id": batch, "offset": round(off_mine, 6), "other_offset": round(off_other, 6),
            "units": len(mine), "other_units": len(other), "sigma": sigma}


def _rule_number(rule: Any) -> int | None:
    """Nelson rule as a number (core.detect gives an int; older evidence a sentence)."""
    if isinstance(rule, int):
        return rule
    if isinstance(rule, str):
        digits = "".join(ch if ch.isdigit() else " " for ch in rule).split()
        return int(digits[0]) if digits else None
    return None


def scheduler_replanner(store: Store) -> Replanner:
    """The real scheduler behind the Replanner interface (proposes; activation on approval)."""
    from core.scheduling.service import Down, propose_replan  # heavy (ortools): load lazily

    def run(equipment_id: str, start: datetime, duration: timedelta,
            now: datetime) -> tuple[str, dict[str, Any]]:
        from core.scheduling.service import proposal_summary
        from core.scheduling.store_adapter import build_problem
        pid, prop = propose_replan(store, [Down(equipment_id, start, duration)], now)
        return pid, proposal_summary(build_problem(store, now), prop)

    return run


def _material_from_key(key: str) -> str | None:
    """core.detect keys material problems 'material:<line>:<material>'."""
    parts = key.split(":")
    return parts[2] if len(parts) == 3 and parts[0] == "material" else None


def _when(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return ensure_utc(v)
    if isinstance(v, str) and v:
        try:
            return parse_utc(v)
        except ValueError:
            return None
    return None


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def equipment_line(session: Session, equipment_id: str) -> str | None:
    eq = session.get(Equipment, equipment_id)
    return eq.line_id if eq else None
