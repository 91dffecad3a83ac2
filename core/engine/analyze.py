"""Analyze: join a detection with its production context and say what it means in words.

A shift lead decides in seconds only if the rationale reads like a colleague wrote it:
"bearing temperature rising 2.1 °C/h over 6 h; vibration RMS 40 % above this recipe's
baseline". The context (order, lot, batch, recipe, operator, shift, last work order,
neighbouring equipment) is read from the store; ids the detection already carries win
over what the store infers. Model contributions arrive as plain dicts in
``ml.explain``'s shape (core never imports ml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlmodel import Session, col, select

from core.clock import ensure_utc
from core.engine.detection import DetectionLike, context_of, evidence_of, input_quality
from core.store.db import Store, guard
from core.store.models import (
    Equipment,
    Lot,
    LotGenealogy,
    Operation,
    ProductionOrder,
    Shift,
    WorkOrder,
)

NAMES = {
    "bearing_temp": "bearing temperature", "vibration_rms": "vibration RMS",
    "motor_current": "motor current", "cycle_time": "cycle time", "zone_temp": "zone temperature",
    "quality_value": "quality measurement", "speed_sp": "spindle speed setpoint",
    "feed_sp": "feed setpoint", "temp_sp": "temperature setpoint",
    "pressure_sp": "pressure setpoint", "hours_since_maint": "hours since maintenance",
    "scrap_count": "scrap count", "recipe_id": "recipe", "batch_id": "material batch",
    "shift_id": "shift", "operator_id": "operator", "cycles_since_maint": "cycles since "
    "maintenance",
}


def signal_words(signal: str) -> str:
    """'A-LATHE1.bearing_temp' or 'bearing_temp' -> 'bearing temperature'."""
    base = signal.rsplit(".", 1)[-1]
    return NAMES.get(base, base.replace("_", " "))


def _num(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def _unit(u: str | None) -> str:
    if not u:
        return ""
    return u if u.startswith("%") else f" {u}"


def _hours(h: float) -> str:
    return f"{_num(h)} h" if h >= 1 else f"{_num(h * 60)} min"


def phrase_slope(signal: str, slope_per_h: float, window_h: float | None = None,
                 unit: str | None = None) -> str:
    """'bearing temperature rising 2.1 °C/h over 6 h'."""
    trend = "rising" if slope_per_h > 0 else "falling" if slope_per_h < 0 else "flat"
    u = f" {unit}/h" if unit else "/h"
    over = f" over {_hours(window_h)}" if window_h else ""
    if trend == "flat":
        return f"{signal_words(signal)} flat{over}"
    return f"{signal_words(signal)} {trend} {_num(abs(slope_per_h), 2)}{u}{over}"


def phrase_ratio(signal: str, value: float, baseline: float,
                 reference: str = "this recipe's baseline", unit: str | None = None) -> str:
    """'vibration RMS 40 % above this recipe's baseline' (absolute difference at baseline 0)."""
    if baseline == 0:
        diff = value - baseline
        side = "above" if diff >= 0 else "below"
        return f"{signal_words(signal)} {_num(abs(diff))}{_unit(unit)} {side} {reference}"
    pct = (value - baseline) / abs(baseline) * 100
    side = "above" if pct >= 0 else "below"
    return f"{signal_words(signal)} {abs(pct):.0f} % {side} {reference}"


def phrase_contribution(item: dict[str, Any]) -> str:
    """One ``ml.explain`` contribution in words (trend, vs baseline, or a context value)."""
    who = str(item.get("signal") or item.get("context") or "?")
    stat = str(item.get("feature", ""))
    value = item.get("value")
    base = item.get("baseline")
    unit = item.get("unit")
    window = item.get("window")
    window_h = _window_hours(window) if window else None
    if isinstance(value, (int, float)) and "context" in item:
        normal = (f" (normal {_num(float(base))}{_unit(unit)})"
                  if isinstance(base, (int, float)) else "")
        return f"{signal_words(who)} {_num(float(value))}{_unit(unit)}{normal}"
    if isinstance(value, (int, float)):
        if stat.startswith("slope"):
            u = unit[:-2] if isinstance(unit, str) and unit.endswith("/h") else unit
            return phrase_slope(who, float(value), window_h, u)
        if stat.startswith("dbase"):
            return phrase_ratio(who, float(value), 0.0, unit=unit)
        if isinstance(base, (int, float)):
            words = item.get("statistic") or ""
            head = f"{signal_words(who)} {words}".strip()
            rendered = phrase_ratio(who, float(value), float(base), "normal", unit)
            return rendered.replace(signal_words(who), head, 1) + (
                f" over {_hours(window_h)}" if window_h else "")
        return f"{signal_words(who)} = {_num(float(value))}{_unit(unit)}"
    if value is None:
        c = item.get("contribution")
        how = ("raises" if float(c) > 0 else "lowers") if isinstance(c, (int, float)) else "moves"
        stat_word = {"slope": "trend", "dbase": "change vs recipe baseline", "std":
                     "variability", "rms": "RMS", "max": "peak"}.get(
            str(item.get("statistic") or ""), str(item.get("statistic") or ""))
        over = f" over {_hours(window_h)}" if window_h else ""
        return f"{signal_words(who)} {stat_word}{over} {how} the score".replace("  ", " ")
    return f"{signal_words(who)} is {value}"


def _window_hours(window: str) -> float | None:
    w = window.strip().lower()
    try:
        if w.endswith("h"):
            return float(w[:-1])
        if w.endswith("min"):
            return float(w[:-3]) / 60
        if w.endswith("m"):
            return float(w[:-1]) / 60
        if w.endswith("d"):
            return float(w[:-1]) * 24
    except ValueError:
        return None
    return None


def phrase_signal(item: dict[str, Any]) -> str | None:
    """A detector's signal evidence: slope and/or value vs baseline."""
    sig = str(item.get("signal") or item.get("tag_id") or "")
    if not sig:
        return None
    unit = item.get("unit")
    parts: list[str] = []
    if isinstance(item.get("slope_per_h"), (int, float)):
        parts.append(phrase_slope(sig, float(item["slope_per_h"]), item.get("window_h"), unit))
    if isinstance(item.get("value"), (int, float)) and isinstance(item.get("baseline"),
                                                                  (int, float)):
        parts.append(phrase_ratio(sig, float(item["value"]), float(item["baseline"]),
                                  str(item.get("reference", "this recipe's baseline")), unit))
    elif isinstance(item.get("value"), (int, float)) and isinstance(item.get("limit"),
                                                                    (int, float)):
        parts.append(f"{signal_words(sig)} {_num(float(item['value']))}{_unit(unit)} "
                     f"beyond its limit {_num(float(item['limit']))}{_unit(unit)}")
    return "; ".join(parts) if parts else None


def phrase_evidence(evidence: dict[str, Any], top: int = 3) -> list[str]:
    """Everything in the evidence a person should read, most telling first."""
    out: list[str] = []
    for item in evidence.get("signals", []) or []:
        if isinstance(item, dict) and (s := phrase_signal(item)):
            out.append(s)
    contribs = contribution_items(evidence.get("contributions"))
    contribs.sort(key=lambda c: -abs(float(c.get("contribution", 0.0) or 0.0)))
    for c in contribs[:top]:
        out.append(phrase_contribution(c))
    if isinstance(evidence.get("score"), (int, float)):
        model = evidence.get("model", "model")
        thr = evidence.get("threshold")
        tail = f" (threshold {_num(float(thr))})" if isinstance(thr, (int, float)) else ""
        out.append(f"{model} score {float(evidence['score']):.2f}{tail}")
    rule = evidence.get("rule_text") or evidence.get("rule")
    if isinstance(rule, str):
        out.append(rule)
    return out


def contribution_items(raw: Any) -> list[dict[str, Any]]:
    """``ml.explain`` items, or a ``{feature_name: contribution}`` map (as core.detect emits:
    'bearing_temp__slope_6h' → signal bearing_temp, feature slope_6h, window 6h)."""
    if isinstance(raw, dict):
        items = []
        for name, c in raw.items():
            head, _, tail = str(name).partition("__")
            if head == "ctx" or not tail:
                items.append({"context": tail or head, "contribution": c})
                continue
            stat, _, window = tail.partition("_")
            items.append({"signal": head, "feature": tail, "statistic": stat,
                          "window": window or None, "contribution": c})
        return items
    return [c for c in raw or [] if isinstance(c, dict)]


# ---------------------------------------------------------------- context


@dataclass
class Analysis:
    """A detection, its context and its meaning in words."""

    context: dict[str, Any]
    findings: list[str]
    quality: str  # good | uncertain | bad: of the detection's inputs
    neighbours: list[str] = field(default_factory=list)

    @property
    def rationale(self) -> str:
        return "; ".join(self.findings)


def shift_at(session: Session, at: datetime) -> Shift | None:
    """The shift whose HH:MM span covers ``at`` (plant times are UTC here; spans may wrap)."""
    t = ensure_utc(at).time()
    for sh in session.exec(select(Shift)).all():
        start, end = time.fromisoformat(sh.start), time.fromisoformat(sh.end)
        inside = start <= t < end if start < end else (t >= start or t < end)
        if inside:
            return sh
    return None


def gather_context(store: Store, det: DetectionLike) -> dict[str, Any]:
    """Order, lot, batch, recipe, operator, shift, last WO and neighbours of a detection."""
    c = context_of(det)
    ctx: dict[str, Any] = {
        "equipment_id": det.equipment_id or c.equipment_id, "line_id": det.line_id or c.line_id,
        "order_id": c.order_id, "operation_id": c.operation_id, "lot_id": c.lot_id,
        "recipe_id": c.recipe_id, "batch_id": c.batch_id, "shift_id": c.shift_id,
        "operator_id": c.operator_id, "tag_id": det.tag_id,
    }
    with guard(store), store.session() as s:
        eq = s.get(Equipment, ctx["equipment_id"]) if ctx["equipment_id"] else None
        if eq is not None:
            ctx["line_id"] = ctx["line_id"] or eq.line_id
            ctx["equipment_type"] = eq.type
            ctx["equipment_name"] = eq.name
        if ctx["lot_id"] is None and eq is not None:  # the lot on the machine now
            lot = s.exec(select(Lot).where(Lot.equipment_id == eq.id,
                                           col(Lot.status).in_(("wip", "held")))).first()
            ctx["lot_id"] = lot.id if lot else None
        if ctx["lot_id"] and ctx["order_id"] is None:
            lot = s.get(Lot, ctx["lot_id"])
            ctx["order_id"] = lot.order_id if lot else None
        if ctx["order_id"] is None and eq is not None:  # the running operation's order
            op = s.exec(select(Operation).where(Operation.equipment_id == eq.id,
                                                Operation.status == "running")).first()
            if op:
                ctx["order_id"], ctx["operation_id"] = op.order_id, op.id
        if ctx["order_id"] and ctx["recipe_id"] is None:
            order = s.get(ProductionOrder, ctx["order_id"])
            ctx["recipe_id"] = order.recipe_id if order else None
        if ctx["lot_id"] and ctx["batch_id"] is None:
            edge = s.exec(select(LotGenealogy).where(
                LotGenealogy.child_lot_id == ctx["lot_id"],
                col(LotGenealogy.batch_id).is_not(None)).order_by(
                col(LotGenealogy.ts).desc())).first()
            ctx["batch_id"] = edge.batch_id if edge else None
        if ctx["shift_id"] is None:
            sh = shift_at(s, det.onset)
            ctx["shift_id"] = sh.id if sh else None
        if eq is not None:
            wo = s.exec(select(WorkOrder).where(WorkOrder.equipment_id == eq.id).order_by(
                col(WorkOrder.created_at).desc())).first()
            ctx["last_work_order"] = ({"id": wo.id, "kind": wo.kind, "status": wo.status,
                                       "created_at": wo.created_at.isoformat(),
                                       "completed_at": wo.completed_at.isoformat()
                                       if wo.completed_at else None} if wo else None)
            if wo and wo.completed_at:
                ctx["hours_since_maintenance"] = round(
                    (ensure_utc(det.onset) - wo.completed_at).total_seconds() / 3600, 1)
            line_eq = s.exec(select(Equipment).where(Equipment.line_id == eq.line_id)
                             .order_by(col(Equipment.position))).all()
            ctx["upstream"] = [e.id for e in line_eq if e.position == eq.position - 1]
            ctx["downstream"] = [e.id for e in line_eq if e.position == eq.position + 1]
            ctx["neighbours"] = [e.id for e in line_eq if e.id != eq.id]
    return ctx


def analyze(store: Store, det: DetectionLike) -> Analysis:
    """Context from the store plus the detection's evidence in plain words."""
    ctx = gather_context(store, det)
    ev = evidence_of(det)
    findings = phrase_evidence(ev)
    if det.summary and det.summary not in findings:
        findings = [det.summary, *findings]
    where = [f"on {ctx.get('equipment_name') or ctx['equipment_id']}"
             if ctx.get("equipment_id") else None,
             f"lot {ctx['lot_id']}" if ctx.get("lot_id") else None,
             f"recipe {ctx['recipe_id']}" if ctx.get("recipe_id") else None,
             f"batch {ctx['batch_id']}" if ctx.get("batch_id") else None]
    context_words = ", ".join(w for w in where if w)
    if context_words:
        findings = [*findings, context_words]
    wo = ctx.get("last_work_order")
    if wo and ctx.get("hours_since_maintenance") is not None:
        findings.append(f"last maintenance {ctx['hours_since_maintenance']} h ago ({wo['id']})")
    return Analysis(ctx, findings, input_quality(det), list(ctx.get("neighbours", [])))
