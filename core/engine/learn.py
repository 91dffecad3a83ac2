"""Learn: measure what an executed action achieved, label it, and keep a track record.

An outcome window per decision class decides when the effect can be judged:
work order — until the predicted failure time + a margin (a failure of that equipment
inside it means the WO did not avoid it); hold — until the hold is dispositioned
(scrap/rework/return confirm the hold, use-as-is says it was not needed); setpoint —
the next N lots measured on the equipment (out-of-spec share before vs after);
replenish — a fixed horizon without the line starving; re-plan — a fixed horizon.
Outcomes are labels for retraining; rejections with their reasons count as feedback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from core import audit
from core.clock import Clock, ensure_utc, parse_utc
from core.engine import r2r
from core.events import EventBus, OutcomeEvent
from core.store.db import Store, guard
from core.store.models import (
    Action,
    Decision,
    Equipment,
    EquipmentStateInterval,
    Hold,
    Outcome,
    QualityMeasurement,
    Recommendation,
)

ACT = Action.__table__  # type: ignore[attr-defined]
REC = Recommendation.__table__  # type: ignore[attr-defined]
OUT = Outcome.__table__  # type: ignore[attr-defined]
DEC = Decision.__table__  # type: ignore[attr-defined]
ESI = EquipmentStateInterval.__table__  # type: ignore[attr-defined]
QM = QualityMeasurement.__table__  # type: ignore[attr-defined]
HOLD = Hold.__table__  # type: ignore[attr-defined]
EQ = Equipment.__table__  # type: ignore[attr-defined]
DOWNTIME_H = 100.0


@dataclass
class Windows:
    """Outcome window settings per class."""

    failure_margin_h: float = 24.0
    work_order_default_h: float = 72.0
    setpoint_lots: int = 3
    setpoint_max_h: float = 48.0
    replenish_h: float = 8.0
    replan_h: float = 8.0


@dataclass(frozen=True)
class Measured:
    action_id: int
    recommendation_id: str
    decision_class: str
    label: str  # effective | ineffective | harmful | unknown
    effect: dict[str, Any]
    window_start: datetime
    window_end: datetime


class Learner:
    def __init__(self, store: Store, clock: Clock, bus: EventBus | None = None,
                 windows: Windows | None = None) -> None:
        self.store, self.clock = store, clock
        self.bus = bus or EventBus()
        self.w = windows or Windows()

    def evaluate(self) -> list[Measured]:
        """Store an Outcome for every executed action whose window has closed."""
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            rows = conn.execute(
                select(ACT, REC.c.decision_class, REC.c.params.label("rec_params"))
                .join(REC, REC.c.id == ACT.c.recommendation_id)
                .where(ACT.c.status == "done", REC.c.status != "undone",
                       ACT.c.idempotency_key == REC.c.id + ":" + ACT.c.kind,
                       ~ACT.c.id.in_(select(OUT.c.action_id)))
                .order_by(ACT.c.id)).all()
        out: list[Measured] = []
        for r in rows:
            m = self.measure(r, now)
            if m is not None:
                self._store(m, now)
                out.append(m)
        return out

    def measure(self, act: Any, now: datetime) -> Measured | None:
        start = ensure_utc(act.finished_at or act.created_at)
        params = json.loads(act.params or "{}")
        result = json.loads(act.result or "{}")
        cls = act.decision_class
        fn = {"work_order": self._work_order, "lot_hold": self._hold,
              "setpoint": self._setpoint, "replenish": self._replenish,
              "replan": self._replan}.get(cls)
        if fn is None:
            return None
        got = fn(start, now, params, result)
        if got is None:
            return None
        label, effect, end = got
        return Measured(int(act.id), act.recommendation_id, cls, label, effect, start, end)

    # ------------------------------------------------------------ per class

    def _downs(self, equipment: list[str], start: datetime, end: datetime,
               states: tuple[str, ...] = ("down_unplanned",)) -> list[Any]:
        with guard(self.store), self.store.begin() as conn:
            return list(conn.execute(select(ESI).where(
                ESI.c.equipment_id.in_(equipment), ESI.c.state.in_(states),
                ESI.c.start >= start, ESI.c.start <= end).order_by(ESI.c.start)))

    def _work_order(self, start: datetime, now: datetime, p: dict[str, Any],
                    r: dict[str, Any]) -> tuple[str, dict[str, Any], datetime] | None:
        predicted = p.get("predicted_failure_at")
        end = (parse_utc(predicted) + timedelta(hours=self.w.failure_margin_h) if predicted
               else start + timedelta(hours=self.w.work_order_default_h))
        downs = self._downs([p["equipment_id"]], start, min(now, end))
        fault = str(p.get("fault_mode") or "")
        hits = [d for d in downs if not d.reason_code or not fault or fault in d.reason_code
                or d.reason_code in fault]
        expected_h = float(p.get("expected_downtime_h", 4.0))
        if hits:
            first = hits[0]
            stop = ensure_utc(first.end) if first.end else now
            down_h = (stop - ensure_utc(first.start)).total_seconds() / 3600
            return "ineffective", {"failure_avoided": False, "failed_at":
                                   ensure_utc(first.start).isoformat(),
                                   "reason_code": first.reason_code,
                                   "unplanned_down_h": round(down_h, 3),
                                   "downtime_avoided_h": 0.0, "impact_realised": 0.0,
                                   "work_order_id": r.get("work_order_id")}, now
        if now < end:
            return None
        return "effective", {"failure_avoided": True, "unplanned_down_h": 0.0,
                             "downtime_avoided_h": expected_h,
                             "impact_realised": expected_h * DOWNTIME_H,
                             "work_order_id": r.get("work_order_id")}, end

    def _hold(self, start: datetime, now: datetime, p: dict[str, Any],
              r: dict[str, Any]) -> tuple[str, dict[str, Any], datetime] | None:
        with guard(self.store), self.store.begin() as conn:
            hold = conn.execute(select(HOLD).where(HOLD.c.id == r.get("hold_id"))).first()
        if hold is None or hold.status != "closed" or not hold.disposition:
            return None
        confirmed = hold.disposition in ("scrap", "rework", "return_to_supplier")
        lots = r.get("lots", [])
        return ("effective" if confirmed else "ineffective",
                {"disposition": hold.disposition, "lots": lots, "hold_id": hold.id,
                 "bad_product_contained": confirmed,
                 "impact_realised": float(len(lots)) if confirmed else 0.0},
                ensure_utc(hold.closed_at or now))

    def _setpoint(self, start: datetime, now: datetime, p: dict[str, Any],
                  r: dict[str, Any]) -> tuple[str, dict[str, Any], datetime] | None:
        eq = p.get("equipment_id")
        with guard(self.store), self.store.begin() as conn:
            after = list(conn.execute(select(QM.c.lot_id, QM.c.in_spec, QM.c.ts, QM.c.value).where(
                QM.c.equipment_id == eq, QM.c.ts >= start).order_by(QM.c.ts)))
            lots: list[str] = []
            for m in after:
                if m.lot_id and m.lot_id not in lots:
                    lots.append(m.lot_id)
            enough = len(lots) > self.w.setpoint_lots  # the N-th lot is complete
            timed_out = now >= start + timedelta(hours=self.w.setpoint_max_h)
            if not enough and not timed_out:
                return None
            keep = set(lots[: self.w.setpoint_lots])
            after = [m for m in after if m.lot_id in keep] if enough else after
            end = ensure_utc(after[-1].ts) if after else now
            span = max(end - start, timedelta(minutes=1))
            before = list(conn.execute(select(QM.c.in_spec, QM.c.value).where(
                QM.c.equipment_id == eq, QM.c.ts < start, QM.c.ts >= start - span)))
        rate_b = _share_bad([m.in_spec for m in before])
        rate_a = _share_bad([m.in_spec for m in after])
        if rate_b is None or rate_a is None:
            return "unknown", {"scrap_rate_before": rate_b, "scrap_rate_after": rate_a,
                               "lots": sorted(keep) if enough else lots,
                               "impact_realised": 0.0}, end
        label = "effective" if rate_a < rate_b else "harmful" if rate_a > rate_b \
            else "ineffective"
        learned = self._learn_effect(p, [m.value for m in before], [m.value for m in after])
        return label, {"scrap_rate_before": round(rate_b, 4), "scrap_rate_after":
                       round(rate_a, 4), "measurements_after": len(after),
                       "effect_learned": learned,
                       "lots": sorted(keep) if enough else lots,
                       "impact_realised": round((rate_b - rate_a) * len(after), 3)}, end

    def _learn_effect(self, p: dict[str, Any], before: list[float], after: list[float]
                      ) -> float | None:
        """A run-to-run correction teaches the next one what the setpoint really does."""
        if "r2r" not in p or len(before) < 5 or len(after) < 5:
            return None
        try:
            delta_sp = float(p["value"]) - float(p["previous"])
        except (KeyError, TypeError, ValueError):
            return None
        if delta_sp == 0:
            return None
        observed = (sum(after) / len(after) - sum(before) / len(before)) / delta_sp
        return r2r.learn_effect(self.store, str(p.get("recipe_id")),
                                str(p.get("equipment_type")), str(p.get("name")), observed)

    def _replenish(self, start: datetime, now: datetime, p: dict[str, Any],
                   r: dict[str, Any]) -> tuple[str, dict[str, Any], datetime] | None:
        end = start + timedelta(hours=self.w.replenish_h)
        line = str(p.get("to_location", "")).removesuffix("-LS")
        with guard(self.store), self.store.begin() as conn:
            eqs = [x.id for x in conn.execute(select(EQ.c.id).where(EQ.c.line_id == line))]
        starved = self._downs(eqs, start, min(now, end), ("starved",))
        if starved:
            return "ineffective", {"starved_intervals": len(starved),
                                   "impact_realised": 0.0}, now
        if now < end:
            return None
        return "effective", {"starved_intervals": 0,
                             "impact_realised": float(p.get("quantity", 0.0))}, end

    def _replan(self, start: datetime, now: datetime, p: dict[str, Any],
                r: dict[str, Any]) -> tuple[str, dict[str, Any], datetime] | None:
        end = start + timedelta(hours=self.w.replan_h)
        if now < end:
            return None
        s = p.get("summary", {}) or {}
        before, after = s.get("weighted_tardiness_before"), s.get("weighted_tardiness_after")
        gain = (float(before) - float(after)) if isinstance(before, (int, float)) and \
            isinstance(after, (int, float)) else 0.0
        return ("effective" if gain >= 0 else "ineffective",
                {"plan_id": p.get("plan_id"), "tardiness_gain_min": gain,
                 "impact_realised": gain}, end)

    def _store(self, m: Measured, now: datetime) -> None:
        with guard(self.store), self.store.begin() as conn:
            if conn.execute(select(OUT.c.id).where(OUT.c.action_id == m.action_id)).first():
                return
            conn.execute(insert(OUT).values(
                action_id=m.action_id, window_start=m.window_start, window_end=m.window_end,
                effect=json.dumps({"class": m.decision_class,
                                   "recommendation_id": m.recommendation_id, **m.effect},
                                  default=str), label=m.label, recorded_at=now))
            audit.append(conn, "system:learn", "outcome.recorded", "action",
                         str(m.action_id), {"label": m.label, "effect": m.effect}, ts=now)
        self.bus.publish(OutcomeEvent(now, f"{m.decision_class} #{m.action_id}: {m.label}",
                                      recommendation_id=m.recommendation_id,
                                      detail=m.effect, action_id=m.action_id, label=m.label))


def _share_bad(flags: list[bool]) -> float | None:
    return (sum(1 for f in flags if not f) / len(flags)) if flags else None


def track_record(store: Store, since: datetime) -> dict[str, dict[str, Any]]:
    """Per decision class (and ``all``): how often the loop was right and listened to.

    ``precision`` = approved and effective / all judged recommendations (approved,
    rejected or expired; superseded, withheld and still-open ones are not judged yet);
    ``acceptance_rate`` = approved / (approved + rejected); ``realised_impact`` sums the
    outcomes' ``impact_realised``; ``rejection_reasons`` counts the fixed reason codes.
    """
    with guard(store), store.begin() as conn:
        recs = list(conn.execute(select(REC.c.id, REC.c.decision_class, REC.c.status).where(
            REC.c.created_at >= since)))
        ids = [r.id for r in recs]
        decisions = list(conn.execute(select(DEC.c.recommendation_id, DEC.c.verdict,
                                             DEC.c.reason, DEC.c.user_id).where(
            DEC.c.recommendation_id.in_(ids), DEC.c.verdict.in_(("approved", "rejected")))))
        outcomes = list(conn.execute(select(ACT.c.recommendation_id, OUT.c.label,
                                            OUT.c.effect).join(OUT, OUT.c.action_id == ACT.c.id)
                                     .where(ACT.c.recommendation_id.in_(ids))))
        failed = dict(conn.execute(select(ACT.c.recommendation_id, func.count()).where(
            ACT.c.recommendation_id.in_(ids), ACT.c.status == "failed")
            .group_by(ACT.c.recommendation_id)).all())
    cls_of = {r.id: r.decision_class for r in recs}
    stats: dict[str, dict[str, Any]] = {}

    def bucket(cls: str) -> dict[str, Any]:
        return stats.setdefault(cls, {
            "recommended": 0, "judged": 0, "approved": 0, "auto_approved": 0, "rejected": 0,
            "expired": 0, "executed": 0, "failed": 0, "effective": 0, "ineffective": 0,
            "harmful": 0, "realised_impact": 0.0, "rejection_reasons": {}})

    for r in recs:
        for b in (bucket(r.decision_class), bucket("all")):
            b["recommended"] += 1
            if r.status == "expired":
                b["expired"] += 1
                b["judged"] += 1
            if r.status in ("executed",):
                b["executed"] += 1
            if failed.get(r.id):
                b["failed"] += 1
    approved: set[str] = set()
    for d in decisions:
        for b in (bucket(cls_of[d.recommendation_id]), bucket("all")):
            b["judged"] += 1
            if d.verdict == "approved":
                b["approved"] += 1
                if d.user_id.startswith("system:"):
                    b["auto_approved"] += 1
            else:
                b["rejected"] += 1
                reasons = b["rejection_reasons"]
                reasons[d.reason or "other"] = reasons.get(d.reason or "other", 0) + 1
        if d.verdict == "approved":
            approved.add(d.recommendation_id)
    effective: set[str] = set()
    for o in outcomes:
        eff = json.loads(o.effect or "{}")
        for b in (bucket(cls_of[o.recommendation_id]), bucket("all")):
            if o.label in ("effective", "ineffective", "harmful"):
                b[o.label] += 1
            b["realised_impact"] += float(eff.get("impact_realised", 0.0) or 0.0)
        if o.label == "effective":
            effective.add(o.recommendation_id)
    for cls, b in stats.items():
        mine = {rid for rid, c in cls_of.items() if cls == "all" or c == cls}
        hits = len(mine & approved & effective)
        decided = b["approved"] + b["rejected"]
        b["acceptance_rate"] = round(b["approved"] / decided, 4) if decided else None
        b["precision"] = round(hits / b["judged"], 4) if b["judged"] else None
        b["realised_impact"] = round(b["realised_impact"], 3)
    return stats


def feedback(store: Store, since: datetime) -> list[dict[str, Any]]:
    """Rejections as training labels: which detector's recommendation was refused and why.

    ``false_alarm`` and ``wrong_action`` are negative labels for the detection / the rule;
    ``not_now`` and ``already_done`` say the detection was right but the timing was not.
    """
    negative = {"false_alarm": "detection", "wrong_action": "rule"}
    with guard(store), store.begin() as conn:
        rows = conn.execute(select(REC.c.id, REC.c.decision_class, REC.c.problem_key,
                                   REC.c.evidence, DEC.c.reason, DEC.c.comment,
                                   DEC.c.user_id, DEC.c.signed_at)
                            .join(DEC, DEC.c.recommendation_id == REC.c.id)
                            .where(DEC.c.verdict == "rejected", DEC.c.signed_at >= since)
                            .order_by(DEC.c.signed_at)).all()
    out = []
    for r in rows:
        det = json.loads(r.evidence or "{}").get("detection", {})
        out.append({"recommendation_id": r.id, "decision_class": r.decision_class,
                    "problem_key": r.problem_key, "detector_id": det.get("detector_id"),
                    "detection_kind": det.get("kind"), "reason": r.reason, "text": r.comment,
                    "by": r.user_id, "at": ensure_utc(r.signed_at).isoformat(),
                    "wrong": negative.get(r.reason)})
    return out
