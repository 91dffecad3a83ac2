"""Read models: what the console and `loopline status` show, read from the store in one go.

Plain frozen dataclasses so a UI thread can hold them without touching the database,
and a snapshot is cheap to compare with the previous one (tables update changed cells).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, select

from core.store.models import (
    Alarm,
    Equipment,
    EquipmentStateInterval,
    Hold,
    HoldLot,
    Line,
    Lot,
    ProductionOrder,
    Recommendation,
    Sample,
    Site,
    TagMeta,
    WorkOrder,
)

OPEN_ORDER_STATES = ("planned", "released", "in_progress")
OPEN_LOT_STATES = ("planned", "wip", "held")
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
        st = _t(Sample)
        spark: dict[str, tuple[float, ...]] = {}
        for eq_id, tag in keys.items():
            vals = c.execute(
                select(st.c.value)
                .where(st.c.tag_id == tag.id, st.c.quality == 0, st.c.value.is_not(None))
                .order_by(st.c.ts.desc())
                .limit(spark_points)
            ).scalars().all()
            spark[eq_id] = tuple(reversed([float(v) for v in vals]))

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
                select(po).where(po.c.status.in_(OPEN_ORDER_STATES)).order_by(po.c.due_at)
            )
        )
        lots = tuple(
            LotView(r.id, r.order_id, r.product_id, r.quantity, r.status, r.equipment_id)
            for r in c.execute(
                select(lot_t).where(lot_t.c.status.in_(OPEN_LOT_STATES)).order_by(lot_t.c.id)
            )
        )
        hl = _t(HoldLot)
        held: dict[str, list[str]] = defaultdict(list)
        for r in c.execute(select(hl)):
            held[r.hold_id].append(r.lot_id)
        ht = _t(Hold)
        holds = tuple(
            HoldView(r.id, r.reason, r.status, r.disposition, r.created_at,
                     tuple(sorted(held[r.id])))
            for r in c.execute(
                select(ht).where(ht.c.status == "open").order_by(ht.c.created_at.desc())
            )
        )
        rt = _t(Recommendation)
        recs = tuple(
            RecommendationView(
                r.id, r.decision_class, r.target, r.action, r.rationale, r.status,
                r.confidence, str(r.expected_impact or ""), r.required_role,
                r.created_at, r.expires_at,
            )
            for r in c.execute(
                select(rt).where(rt.c.status.in_(("proposed", "approved", "executing")))
                .order_by(rt.c.created_at.desc())
            )
        )
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
        wos = tuple(
            WorkOrderView(r.id, r.kind, r.equipment_id, r.fault_mode, r.status,
                          r.window_start, r.created_at)
            for r in c.execute(
                select(wt).where(wt.c.status.in_(("open", "scheduled", "in_progress")))
                .order_by(wt.c.created_at)
            )
        )
    counts = {
        "lines": len(line_views),
        "equipment": sum(len(ln.equipment) for ln in line_views),
        "open_orders": len(orders),
        "open_lots": len(lots),
        "open_holds": len(holds),
        "pending_recommendations": sum(1 for r in recs if r.status == "proposed"),
        "active_alarms": sum(1 for a in alarms if a.state == "active"),
        "open_work_orders": len(wos),
    }
    return PlantSnapshot(site, line_views, orders, lots, holds, recs, alarms, wos, counts)


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
    tm, st, et = _t(TagMeta), _t(Sample), _t(Equipment)
    with engine.connect() as c:
        e = c.execute(select(et).where(et.c.id == equipment_id)).first()
        if e is None:
            raise KeyError(equipment_id)
        tags = []
        for t in c.execute(select(tm).where(tm.c.equipment_id == equipment_id)
                           .order_by(tm.c.kind, tm.c.name)):
            rows = c.execute(
                select(st.c.ts, st.c.value, st.c.text_value, st.c.quality)
                .where(st.c.tag_id == t.id).order_by(st.c.ts.desc()).limit(points)
            ).all()
            last = rows[0] if rows else None
            recent = tuple(float(r.value) for r in reversed(rows)
                           if r.quality == 0 and r.value is not None)
            value = None
            if last is not None:
                value = last.value if last.value is not None else last.text_value
            tags.append(TagView(t.id, t.name, t.kind, t.unit, t.hi, value,
                                last.quality if last else None, last.ts if last else None,
                                recent))
    return EquipmentDetail(e.id, e.name, e.type, e.line_id, tuple(tags))
