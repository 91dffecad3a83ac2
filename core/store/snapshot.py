"""A read model of the plant right now, from the store: what `loopline status` shows.

One function, ``plant_status``, returns plain JSON-ready data so the CLI, the TUI and
scripts show the same thing. Equipment state is the latest state interval; a machine
without one (nothing recorded yet) or whose last interval is closed is ``unknown``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.clock import ensure_utc
from core.statuses import LOT_OPEN, ORDER_OPEN, REC_PENDING
from core.store.db import Store, guard
from core.store.models import (
    Area,
    Equipment,
    EquipmentStateInterval,
    Hold,
    HoldLot,
    Line,
    Lot,
    Meta,
    ProductionOrder,
    Recommendation,
    Site,
)


def _iso(ts: datetime | None) -> str | None:
    return ensure_utc(ts).isoformat() if ts else None


def plant_status(store: Store, now: datetime) -> dict[str, Any]:
    """Lines, equipment states, open orders and lots, open holds, pending recommendations."""
    now = ensure_utc(now)
    with guard(store), store.session() as s:
        site = s.exec(select(Site)).scalars().first()
        meta = {m.key: m.value for m in s.exec(select(Meta)).scalars()}
        areas = {a.id: a.name for a in s.exec(select(Area)).scalars()}
        lines = s.exec(select(Line).order_by(Line.position)).scalars().all()
        equipment = s.exec(
            select(Equipment).order_by(Equipment.line_id, Equipment.position)
        ).scalars().all()
        latest = (select(EquipmentStateInterval.equipment_id,
                         func.max(EquipmentStateInterval.start).label("start"))
                  .group_by(EquipmentStateInterval.equipment_id).subquery())
        states = {
            r.equipment_id: r
            for r in s.exec(select(EquipmentStateInterval).join(
                latest,
                (EquipmentStateInterval.equipment_id == latest.c.equipment_id)
                & (EquipmentStateInterval.start == latest.c.start),
            )).scalars()
        }
        orders = s.exec(select(ProductionOrder)
                        .where(ProductionOrder.status.in_(ORDER_OPEN))
                        .order_by(ProductionOrder.due_at, ProductionOrder.id)).scalars().all()
        lots = s.exec(select(Lot).where(Lot.status.in_(LOT_OPEN))
                      .order_by(Lot.id)).scalars().all()
        holds = s.exec(select(Hold).where(Hold.status == "open")
                       .order_by(Hold.created_at)).scalars().all()
        hold_lots: dict[str, list[str]] = {}
        for hl in s.exec(select(HoldLot)).scalars():
            hold_lots.setdefault(hl.hold_id, []).append(hl.lot_id)
        recs = s.exec(select(Recommendation)
                      .where(Recommendation.status.in_(REC_PENDING))
                      .order_by(Recommendation.created_at)).scalars().all()

    lots_per_order = Counter(lot.order_id for lot in lots)
    eq_out = []
    for e in equipment:
        st = states.get(e.id)
        current = st is not None and st.end is None
        eq_out.append({
            "id": e.id, "line_id": e.line_id, "name": e.name, "type": e.type,
            "state": st.state if current else "unknown",
            "reason_code": (st.reason_code or None) if current else None,
            "since": _iso(st.start) if current else None,
        })
    return {
        "now": now.isoformat(),
        "store": store.where,
        "schema_version": int(meta["schema_version"]) if "schema_version" in meta else None,
        "plant_epoch": meta.get("plant_epoch"),
        "site": {"id": site.id, "name": site.name} if site else None,
        "lines": [{"id": ln.id, "name": ln.name, "area": areas.get(ln.area_id, ln.area_id),
                   "driver": ln.driver,
                   "equipment": [e.id for e in equipment if e.line_id == ln.id],
                   "states": dict(Counter(e["state"] for e in eq_out
                                          if e["line_id"] == ln.id)),
                   "open_orders": sum(o.line_id == ln.id for o in orders)}
                  for ln in lines],
        "equipment": eq_out,
        "orders": [{"id": o.id, "product_id": o.product_id, "line_id": o.line_id,
                    "quantity": o.quantity, "status": o.status, "priority": o.priority,
                    "customer": o.customer, "release_at": _iso(o.release_at),
                    "due_at": _iso(o.due_at), "late": ensure_utc(o.due_at) < now,
                    "open_lots": lots_per_order.get(o.id, 0)} for o in orders],
        "lots": [{"id": lot.id, "order_id": lot.order_id, "product_id": lot.product_id,
                  "quantity": lot.quantity, "status": lot.status,
                  "equipment_id": lot.equipment_id} for lot in lots],
        "holds": [{"id": h.id, "reason": h.reason, "lots": sorted(hold_lots.get(h.id, [])),
                   "created_by": h.created_by, "created_at": _iso(h.created_at)}
                  for h in holds],
        "recommendations": [{"id": r.id, "decision_class": r.decision_class,
                             "target": r.target, "action": r.action, "status": r.status,
                             "confidence": r.confidence, "required_role": r.required_role,
                             "created_at": _iso(r.created_at),
                             "expires_at": _iso(r.expires_at)} for r in recs],
        "counts": {
            "lines": len(lines), "equipment": len(equipment), "open_orders": len(orders),
            "open_lots": len(lots), "lots_by_status": dict(Counter(lot.status for lot in lots)),
            "open_holds": len(holds), "pending_recommendations": len(recs),
        },
    }
