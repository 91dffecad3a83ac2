"""Read models: what the console and `loopline status` show, read from the store in one go.

Plain frozen dataclasses so a UI thread can hold them without touching the database,
and a snapshot is cheap to compare with the previous one (tables update changed cells).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select

from core import history
from core.clock import ensure_utc
from core.genealogy import consumed_quantity
from core.statuses import LOT_OPEN, ORDER_OPEN, REC_DONE, REC_PENDING, WO_OPEN
from core.store.models import (
    Action,
    Alarm,
    Decision,
    Equipment,
    EquipmentStateInterval,
    Hold,
    HoldLot,
    Line,
    Lot,
    LotGenealogy,
    MaterialBatch,
    Operation,
    Plan,
    PlanItem,
    ProductionOrder,
    QualityMeasurement,
    Recommendation,
    Site,
    TagMeta,
    WorkOrder,
)

# the queue shows open recommendations and the last decided ones, so a result (executed,
# failed with its reason, rejected) appears in place of the row that was approved
RECENT_DONE_RECS = 20
RECENT_CLOSED_ROWS = 10  # released holds and finished work orders still listed
# decided or lapsed recommendations the queue keeps showing, with their state
REC_SHOWN_DONE = (*REC_DONE, "expired", "superseded", "undone")
RELEASE_WORDS = {"proposed": "release asked", "withheld": "release asked (withheld)",
                 "approved": "signed, queued", "executing": "signed, releasing",
                 "executed": "released", "failed": "release failed",
                 "rejected": "release rejected", "expired": "release request expired",
                 "superseded": "release asked again", "undone": "release undone"}


def release_words(rec_id: str, disposition: str, status: str) -> str:
    """A hold's release in the words of its row: ``release asked (scrap) · REC-…``."""
    return f"{RELEASE_WORDS.get(status, status)} ({disposition}) · {rec_id}"
SPARK_POINTS = 40


def _t(model: Any) -> Any:
    return model.__table__


@dataclass(frozen=True)
class EquipmentView:
    id: str
    name: str
    type: str
    line_id: str
    state: str = "unknown"
    state_reason: str = ""
    state_since: datetime | None = None
    lot_id: str | None = None
    order_id: str | None = None
    key_signal: str | None = None
    key_unit: str = ""
    key_values: tuple[float, ...] = ()
    last_sample_at: datetime | None = None  # newest sample of the key tag, any quality

    @property
    def key_value(self) -> float | None:
        return self.key_values[-1] if self.key_values else None


@dataclass(frozen=True)
class LineView:
    id: str
    name: str
    driver: str
    equipment: tuple[EquipmentView, ...]


@dataclass(frozen=True)
class OrderView:
    id: str
    product_id: str
    line_id: str | None
    quantity: int
    status: str
    priority: int
    customer: str
    release_at: datetime
    due_at: datetime
    lots: int
    lots_done: int


@dataclass(frozen=True)
class LotView:
    id: str
    order_id: str
    product_id: str
    quantity: int
    status: str
    equipment_id: str | None


@dataclass(frozen=True)
class HoldView:
    id: str
    reason: str
    status: str
    disposition: str | None
    created_at: datetime
    lots: tuple[str, ...]
    release: str = ""  # its latest release request in words: "release asked (scrap) · REC-…"
    release_status: str = ""  # that request's status ("" when none was asked)

    @property
    def release_open(self) -> bool:
        """A release is asked for or under way (another disposition would duplicate it)."""
        return self.release_status in ("proposed", "withheld", "approved", "executing",
                                       "executed")


@dataclass(frozen=True)
class RecommendationView:
    id: str
    decision_class: str
    target: str
    action: str
    rationale: str
    status: str
    confidence: float | None
    expected_impact: str
    required_role: str
    created_at: datetime | None
    expires_at: datetime | None
    impact_score: float = 0.0
    action_status: str = ""  # the outbox row: pending | running | done | failed
    action_result: str = ""  # its result message (the reason when it failed)

    @property
    def outcome(self) -> str:
        """What happened after the decision, in words, for the row's result column."""
        if self.status == "failed":
            return f"failed: {self.action_result}" if self.action_result else "failed"
        if self.status == "executed":
            return "executed"
        if self.action_status == "pending":
            return "queued"
        return self.action_status or ""


@dataclass(frozen=True)
class AlarmView:
    id: int
    source: str
    priority: str
    message: str
    state: str
    acked: bool
    shelved_until: datetime | None
    raised_at: datetime


@dataclass(frozen=True)
class WorkOrderView:
    id: str
    kind: str
    equipment_id: str
    fault_mode: str
    status: str
    window_start: datetime | None
    created_at: datetime
    completion: str = ""  # the completion's outbox row: pending | running | done | failed


@dataclass(frozen=True)
class PlantSnapshot:
    site_name: str
    lines: tuple[LineView, ...]
    orders: tuple[OrderView, ...]
    lots: tuple[LotView, ...]
    holds: tuple[HoldView, ...]
    recommendations: tuple[RecommendationView, ...]
    alarms: tuple[AlarmView, ...]
    work_orders: tuple[WorkOrderView, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def equipment(self, equipment_id: str) -> EquipmentView | None:
        for ln in self.lines:
            for eq in ln.equipment:
                if eq.id == equipment_id:
                    return eq
        return None

    def to_json(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, datetime):
                return v.isoformat()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [conv(x) for x in v]
            return v

        return conv(asdict(self))


def plant_snapshot(engine: Engine, *, spark_points: int = SPARK_POINTS) -> PlantSnapshot:
    """Everything the overview shows, in a handful of queries."""
    with engine.connect() as c:
        site = c.execute(select(_t(Site).c.name).limit(1)).scalar() or "plant"
        lines = c.execute(select(_t(Line)).order_by(_t(Line).c.position, _t(Line).c.id)).all()
        eqs = c.execute(
            select(_t(Equipment)).order_by(_t(Equipment).c.line_id, _t(Equipment).c.position)
        ).all()

        esi = _t(EquipmentStateInterval)
        latest = (
            select(esi.c.equipment_id, func.max(esi.c.start).label("start"))
            .group_by(esi.c.equipment_id)
            .subquery()
        )
        states = {
            r.equipment_id: r
            for r in c.execute(
                select(esi).join(
                    latest,
                    and_(esi.c.equipment_id == latest.c.equipment_id,
                         esi.c.start == latest.c.start),
                )
            )
        }
        lot_t = _t(Lot)
        wip = {
            r.equipment_id: r
            for r in c.execute(
                select(lot_t).where(lot_t.c.status.in_(("wip", "held")),
                                    lot_t.c.equipment_id.is_not(None))
            )
        }
        tm = _t(TagMeta)
        keys = {
            r.equipment_id: r
            for r in c.execute(select(tm).where(tm.c.is_key.is_(True)))
        }
        spark, last_ts = _key_signals(c, keys, spark_points)

        by_line: dict[str, list[EquipmentView]] = defaultdict(list)
        for e in eqs:
            s = states.get(e.id)
            lot = wip.get(e.id)
            key = keys.get(e.id)
            by_line[e.line_id].append(EquipmentView(
                id=e.id, name=e.name, type=e.type, line_id=e.line_id,
                state=s.state if s else "unknown",
                state_reason=(s.reason_code or "") if s else "",
                state_since=s.start if s else None,
                lot_id=lot.id if lot else None,
                order_id=lot.order_id if lot else None,
                key_signal=key.name if key else None,
                key_unit=key.unit if key else "",
                key_values=spark.get(e.id, ()),
                last_sample_at=last_ts.get(e.id),
            ))
        line_views = tuple(
            LineView(ln.id, ln.name, ln.driver, tuple(by_line.get(ln.id, ())))
            for ln in lines
        )

        po = _t(ProductionOrder)
        lot_counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in c.execute(select(lot_t.c.order_id, lot_t.c.status)):
            lot_counts[r.order_id][0] += 1
            if r.status in ("complete", "released"):
                lot_counts[r.order_id][1] += 1
        orders = tuple(
            OrderView(r.id, r.product_id, r.line_id, r.quantity, r.status, r.priority,
                      r.customer, r.release_at, r.due_at, *lot_counts[r.id])
            for r in c.execute(
                select(po).where(po.c.status.in_(ORDER_OPEN)).order_by(po.c.due_at)
            )
        )
        lots = tuple(
            LotView(r.id, r.order_id, r.product_id, r.quantity, r.status, r.equipment_id)
            for r in c.execute(
                select(lot_t).where(lot_t.c.status.in_(LOT_OPEN)).order_by(lot_t.c.id)
            )
        )
        hl = _t(HoldLot)
        held: dict[str, list[str]] = defaultdict(list)
        for r in c.execute(select(hl)):
            held[r.hold_id].append(r.lot_id)
        rt, act = _t(Recommendation), _t(Action)
        rec_rows = list(c.execute(
            select(rt).where(rt.c.status.in_(REC_PENDING)).order_by(rt.c.created_at.desc())
        ))
        rec_rows += list(c.execute(
            select(rt).where(rt.c.status.in_(REC_SHOWN_DONE))
            .order_by(rt.c.updated_at.desc(), rt.c.id).limit(RECENT_DONE_RECS)
        ))
        ht = _t(Hold)
        hold_rows = list(c.execute(
            select(ht).where(ht.c.status == "open").order_by(ht.c.created_at.desc())))
        hold_rows += list(c.execute(  # just released: the row says so for a while
            select(ht).where(ht.c.status != "open")
            .order_by(ht.c.closed_at.desc(), ht.c.id).limit(RECENT_CLOSED_ROWS)))
        hold_ids = [r.id for r in hold_rows]
        releases: dict[str, tuple[str, str]] = {}
        if hold_ids:
            for r in c.execute(select(rt).where(rt.c.decision_class == "lot_release",
                                                rt.c.target.in_(hold_ids))
                               .order_by(rt.c.created_at)):
                releases[r.target] = (release_words(
                    r.id, str(_loads(r.params).get("disposition", "?")), r.status), r.status)
        holds = tuple(
            HoldView(r.id, r.reason, r.status, r.disposition, r.created_at,
                     tuple(sorted(held[r.id])), *releases.get(r.id, ("", "")))
            for r in hold_rows
        )
        acts: dict[str, Any] = {}
        ids = [r.id for r in rec_rows]
        if ids:
            for a in c.execute(select(act).where(act.c.recommendation_id.in_(ids))
                               .order_by(act.c.id)):
                acts[a.recommendation_id] = a  # the latest action of each
        recs = tuple(sorted(
            (RecommendationView(
                r.id, r.decision_class, r.target, r.action, r.rationale, r.status,
                r.confidence, str(r.expected_impact or ""), r.required_role,
                r.created_at, r.expires_at, _impact(r.evidence),
                acts[r.id].status if r.id in acts else "",
                _result_text(acts[r.id].result) if r.id in acts else "",
            ) for r in rec_rows),
            key=lambda v: (v.status != "proposed", v.status not in REC_PENDING,
                           -v.impact_score, v.id),
        ))
        at = _t(Alarm)
        alarms = tuple(
            AlarmView(r.id, r.source, r.priority, r.message, r.state, r.acked,
                      r.shelved_until, r.raised_at)
            for r in c.execute(
                select(at).where((at.c.state == "active") | (at.c.acked.is_(False)))
                .order_by(at.c.raised_at.desc()).limit(500)
            )
        )
        wt = _t(WorkOrder)
        completions = {
            r.idempotency_key.removesuffix(":complete"): r.status
            for r in c.execute(select(act.c.idempotency_key, act.c.status)
                               .where(act.c.kind == "complete_work_order"))
        }
        wos = tuple(
            WorkOrderView(r.id, r.kind, r.equipment_id, r.fault_mode, r.status,
                          r.window_start, r.created_at, completions.get(r.id, ""))
            for r in [*c.execute(select(wt).where(wt.c.status.in_(WO_OPEN))
                                 .order_by(wt.c.created_at)),
                      *c.execute(select(wt).where(wt.c.status.not_in(WO_OPEN))  # just done
                                 .order_by(wt.c.completed_at.desc(), wt.c.id)
                                 .limit(RECENT_CLOSED_ROWS))]
        )
        failed_actions = _failed_actions(c, act)
    counts = {
        "failed_actions": failed_actions,
        "lines": len(line_views),
        "equipment": sum(len(ln.equipment) for ln in line_views),
        "open_orders": len(orders),
        "open_lots": len(lots),
        "open_holds": sum(1 for h in holds if h.status == "open"),
        "pending_recommendations": sum(1 for r in recs if r.status == "proposed"),
        "active_alarms": sum(1 for a in alarms if a.state == "active"),
        "open_work_orders": sum(1 for w in wos if w.status in WO_OPEN),
    }
    return PlantSnapshot(site, line_views, orders, lots, holds, recs, alarms, wos, counts)


def store_plant_now(engine: Engine) -> datetime | None:
    """The newest sample's time: plant time as far as the store knows it (a twin's store
    runs ahead of the wall clock; the historian's newest_ts: index seeks)."""
    with engine.connect() as c:
        ts = history.newest_ts(c)
    return ensure_utc(ts) if ts is not None else None


def plant_now(engine: Engine, wall: datetime) -> datetime:
    """``now`` for a reader of the store alone: the wall clock, or the store's newest
    sample when it is ahead (a twin's plant time) — so ages and 'today' match the data."""
    ts = store_plant_now(engine)
    return max(wall, ts) if ts is not None else wall


FAILED_ACTIONS_WINDOW = timedelta(hours=24)


def _failed_actions(c: Any, act: Any) -> int:
    """Actions that failed in the last 24 plant hours (measured back from the newest
    action, so a twin's plant time and a store read later both count the same)."""
    newest = c.execute(select(func.max(act.c.created_at))).scalar()
    if newest is None:
        return 0
    since = ensure_utc(newest) - FAILED_ACTIONS_WINDOW
    return int(c.execute(select(func.count()).select_from(act).where(
        act.c.status == "failed", act.c.created_at >= since)).scalar() or 0)


def _key_signals(c: Any, keys: dict[str, Any], points: int
                 ) -> tuple[dict[str, tuple[float, ...]], dict[str, datetime | None]]:
    """Recent good values and the newest sample time of each key tag: two scans of the
    recent rows (few, in arrival order) and the newest chunk of a tag still short of
    points. This runs every refresh beside a busy writer, so it stays plain SQL text."""
    if not keys:
        return {}, {}
    tags = {tag.id: eq_id for eq_id, tag in keys.items()}
    good = history.latest(c, list(tags), points, good_only=True)
    newest = history.latest(c, list(tags), 1)
    spark = {tags[t]: tuple(float(v) for _, v, _, _ in pts if v is not None)
             for t, pts in good.items() if pts}
    last_ts = {tags[t]: (pts[-1][0] if pts else None) for t, pts in newest.items()}
    return spark, last_ts


@dataclass(frozen=True)
class TagView:
    id: str
    name: str
    kind: str
    unit: str
    hi: float | None
    value: float | str | None
    quality: int | None
    ts: datetime | None
    recent: tuple[float, ...]


@dataclass(frozen=True)
class EquipmentDetail:
    id: str
    name: str
    type: str
    line_id: str
    tags: tuple[TagView, ...]


def equipment_detail(engine: Engine, equipment_id: str, points: int = 60) -> EquipmentDetail:
    """Each tag of one machine with its latest value and recent good values."""
    tm, et = _t(TagMeta), _t(Equipment)
    with engine.connect() as c:
        e = c.execute(select(et).where(et.c.id == equipment_id)).first()
        if e is None:
            raise KeyError(equipment_id)
        tags = []
        metas = list(c.execute(select(tm).where(tm.c.equipment_id == equipment_id)
                               .order_by(tm.c.kind, tm.c.name)))
        newest = history.latest(c, [t.id for t in metas], points)  # one scan for all tags
        for t in metas:
            rows = list(reversed(newest.get(t.id, [])))
            last = rows[0] if rows else None
            recent = tuple(float(v) for _, v, _, q in reversed(rows)
                           if q == 0 and v is not None)
            value = None
            if last is not None:
                value = last[1] if last[1] is not None else last[2]
            tags.append(TagView(t.id, t.name, t.kind, t.unit, t.hi, value,
                                last[3] if last else None, last[0] if last else None,
                                recent))
    return EquipmentDetail(e.id, e.name, e.type, e.line_id, tuple(tags))


def _impact(evidence: str | None) -> float:
    try:
        return float(json.loads(evidence or "{}").get("impact", {}).get("score", 0.0))
    except (ValueError, AttributeError, TypeError):
        return 0.0


def _result_text(result: str | None) -> str:
    """An action's result as one line: the error or message when it has one."""
    if not result:
        return ""
    try:
        data = json.loads(result)
    except ValueError:
        return result.splitlines()[0]
    if isinstance(data, dict):
        for k in ("error", "reason", "message", "detail"):
            if data.get(k):
                return str(data[k]).splitlines()[0]
        return ", ".join(f"{k}={v}" for k, v in sorted(data.items()))[:120]
    return str(data)[:120]


# ------------------------------------------------------------------ recommendation detail


@dataclass(frozen=True)
class DecisionRow:
    verdict: str
    user_id: str
    signed_name: str
    signed_at: datetime
    reason: str
    comment: str


@dataclass(frozen=True)
class RecommendationDetail:
    """Everything a person is shown before signing: what will happen and why."""

    view: RecommendationView
    params: dict[str, Any]
    evidence: dict[str, Any]
    problem_key: str
    decisions: tuple[DecisionRow, ...]


def recommendation_detail(engine: Engine, rec_id: str) -> RecommendationDetail:
    rt, act, dt = _t(Recommendation), _t(Action), _t(Decision)
    with engine.connect() as c:
        r = c.execute(select(rt).where(rt.c.id == rec_id)).first()
        if r is None:
            raise KeyError(rec_id)
        a = c.execute(select(act).where(act.c.recommendation_id == rec_id)
                      .order_by(act.c.id.desc()).limit(1)).first()
        decs = tuple(
            DecisionRow(d.verdict, d.user_id, d.signed_name, d.signed_at, d.reason, d.comment)
            for d in c.execute(select(dt).where(dt.c.recommendation_id == rec_id)
                               .order_by(dt.c.id))
        )
    view = RecommendationView(
        r.id, r.decision_class, r.target, r.action, r.rationale, r.status, r.confidence,
        str(r.expected_impact or ""), r.required_role, r.created_at, r.expires_at,
        _impact(r.evidence), a.status if a else "", _result_text(a.result) if a else "")
    return RecommendationDetail(view, _loads(r.params), _loads(r.evidence), r.problem_key, decs)


def _loads(text: str | None) -> dict[str, Any]:
    try:
        v = json.loads(text or "{}")
    except ValueError:
        return {"raw": text}
    return v if isinstance(v, dict) else {"value": v}


# ------------------------------------------------------------------ plan timeline


@dataclass(frozen=True)
class PlanBar:
    operation_id: str
    order_id: str
    equipment_id: str
    start: datetime
    end: datetime
    setup_min: float


@dataclass(frozen=True)
class PlanTimeline:
    """The active plan grouped by line, then equipment (flow order), bars by start."""

    plan_id: str | None
    created_at: datetime | None
    reason: str
    lines: tuple[tuple[str, tuple[tuple[str, tuple[PlanBar, ...]], ...]], ...]

    @property
    def bars(self) -> list[PlanBar]:
        return [b for _, eqs in self.lines for _, bs in eqs for b in bs]


def plan_timeline(engine: Engine) -> PlanTimeline:
    """The active plan, read only (computing one is the scheduler's job, not the viewer's)."""
    pt, it, op, et = _t(Plan), _t(PlanItem), _t(Operation), _t(Equipment)
    with engine.connect() as c:
        p = c.execute(select(pt).where(pt.c.status == "active")
                      .order_by(pt.c.created_at.desc()).limit(1)).first()
        eqs = c.execute(select(et.c.id, et.c.line_id)
                        .order_by(et.c.line_id, et.c.position)).all()
        if p is None:
            return PlanTimeline(None, None, "", ())
        items = c.execute(
            select(it.c.operation_id, it.c.equipment_id, it.c.start, it.c.end, it.c.setup_min,
                   op.c.order_id)
            .join(op, op.c.id == it.c.operation_id)
            .where(it.c.plan_id == p.id).order_by(it.c.equipment_id, it.c.start)
        ).all()
    by_eq: dict[str, list[PlanBar]] = defaultdict(list)
    for r in items:
        by_eq[r.equipment_id].append(PlanBar(r.operation_id, r.order_id, r.equipment_id,
                                             r.start, r.end, float(r.setup_min or 0.0)))
    by_line: dict[str, list[tuple[str, tuple[PlanBar, ...]]]] = defaultdict(list)
    for e in eqs:
        by_line[e.line_id].append((e.id, tuple(by_eq.get(e.id, ()))))
    return PlanTimeline(p.id, p.created_at, p.reason,
                        tuple((ln, tuple(v)) for ln, v in by_line.items()))


# ------------------------------------------------------------------ lot genealogy


@dataclass(frozen=True)
class GenealogyLink:
    relation: str  # consume | split | merge
    lot_id: str | None
    batch_id: str | None
    material_id: str | None
    quantity: float
    ts: datetime


@dataclass(frozen=True)
class LotDetail:
    lot: LotView
    parents: tuple[GenealogyLink, ...]  # lots and batches that went into this lot
    children: tuple[GenealogyLink, ...]  # lots made from it
    holds: tuple[HoldView, ...]
    measurements: tuple[tuple[str, float, bool, datetime], ...]  # characteristic, value, ok


def lot_detail(engine: Engine, lot_id: str, measurements: int = 20) -> LotDetail:
    """One lot with its genealogy one level up and down, holds and latest measurements."""
    lt, gt, bt = _t(Lot), _t(LotGenealogy), _t(MaterialBatch)
    hl, ht, qm = _t(HoldLot), _t(Hold), _t(QualityMeasurement)
    with engine.connect() as c:
        r = c.execute(select(lt).where(lt.c.id == lot_id)).first()
        if r is None:
            raise KeyError(lot_id)
        mat = {b.id: b.material_id for b in c.execute(select(bt.c.id, bt.c.material_id))}
        parents = tuple(
            GenealogyLink(g.relation, g.parent_lot_id, g.batch_id, mat.get(g.batch_id or ""),
                          float(g.quantity or 0.0) or (
                              consumed_quantity(c, lot_id, g.batch_id)
                              if g.relation == "consume" and g.batch_id else 0.0), g.ts)
            for g in c.execute(select(gt).where(gt.c.child_lot_id == lot_id).order_by(gt.c.id))
        )
        children = tuple(
            GenealogyLink(g.relation, g.child_lot_id, None, None, float(g.quantity or 0.0), g.ts)
            for g in c.execute(select(gt).where(gt.c.parent_lot_id == lot_id)
                               .order_by(gt.c.id))
        )
        hold_ids = [h.hold_id for h in c.execute(select(hl.c.hold_id)
                                                 .where(hl.c.lot_id == lot_id))]
        holds = tuple(
            HoldView(h.id, h.reason, h.status, h.disposition, h.created_at, (lot_id,))
            for h in c.execute(select(ht).where(ht.c.id.in_(hold_ids))
                               .order_by(ht.c.created_at))
        ) if hold_ids else ()
        meas = tuple(
            (m.characteristic_id, float(m.value), bool(m.in_spec), m.ts)
            for m in c.execute(select(qm).where(qm.c.lot_id == lot_id)
                               .order_by(qm.c.ts.desc()).limit(measurements))
        )
    return LotDetail(LotView(r.id, r.order_id, r.product_id, r.quantity, r.status,
                             r.equipment_id), parents, children, holds, meas)


# ------------------------------------------------------------------ model explanation


@dataclass(frozen=True)
class Explanation:
    """The latest model explanation behind an equipment's risk, from recommendation evidence."""

    source: str  # the recommendation it came from
    model: str
    score: float | None
    at: datetime | None
    summary: str
    contributions: tuple[dict[str, Any], ...]


def equipment_explanation(engine: Engine, equipment_id: str) -> Explanation | None:
    """Newest recommendation on this equipment whose evidence carries model contributions."""
    rt = _t(Recommendation)
    with engine.connect() as c:
        rows = c.execute(
            select(rt.c.id, rt.c.evidence, rt.c.rationale, rt.c.created_at)
            .where((rt.c.target == equipment_id) | rt.c.target.like(f"{equipment_id}.%")
                   | rt.c.evidence.like(f"%{equipment_id}%"),
                   rt.c.evidence.like("%contribution%"))
            .order_by(rt.c.created_at.desc()).limit(20)
        ).all()
    for r in rows:
        ev = _loads(r.evidence)
        contribs = ev.get("contributions") or []
        if not contribs:
            continue
        return Explanation(r.id, str(ev.get("model", "")),
                           float(ev["score"]) if isinstance(ev.get("score"), int | float)
                           else None, r.created_at, r.rationale,
                           tuple(x for x in contribs if isinstance(x, dict)))
    return None


def plant_day_start(engine: Engine, now: datetime) -> datetime:
    """Midnight of ``now``'s day in the site's time zone (OEE "today"), as UTC."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    with engine.connect() as c:
        tz_name = c.execute(select(_t(Site).c.timezone).limit(1)).scalar() or "UTC"
    try:
        tz = ZoneInfo(tz_name)
    except Exception:
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
