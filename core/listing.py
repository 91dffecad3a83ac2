"""Plain rows for the scripting commands: recommendations, holds, work orders, lots, alarms.

Each function returns a list of JSON-ready dicts (times as ISO-8601 UTC text), so the
CLI can print them as JSON or as a table without knowing the tables. They read the
store only, so they work while a console or a headless runtime writes to it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.clock import ensure_utc
from core.engine.recommend import impact_score, ranked
from core.statuses import LOT_OPEN, REC_OPEN, WO_OPEN
from core.store.db import Store, guard
from core.store.models import Alarm, Hold, HoldLot, Lot, Recommendation, WorkOrder

_HOLD = Hold.__table__  # type: ignore[attr-defined]
_HL = HoldLot.__table__  # type: ignore[attr-defined]
_WO = WorkOrder.__table__  # type: ignore[attr-defined]
_LOT = Lot.__table__  # type: ignore[attr-defined]
_ALARM = Alarm.__table__  # type: ignore[attr-defined]


def iso(ts: datetime | None) -> str | None:
    return ensure_utc(ts).isoformat() if ts is not None else None


def recommendations(store: Store, statuses: Sequence[str] = REC_OPEN) -> list[dict[str, Any]]:
    """Recommendations in the given statuses, ranked by expected impact (as the console)."""
    out = []
    for r in ranked(store, tuple(statuses)):
        out.append({
            "id": r.id, "decision_class": r.decision_class, "target": r.target,
            "action": r.action, "status": r.status, "confidence": r.confidence,
            "impact_score": impact_score(r), "expected_impact": r.expected_impact,
            "required_role": r.required_role, "rationale": r.rationale,
            "params": _loads(r.params), "created_at": iso(r.created_at),
            "expires_at": iso(r.expires_at), "updated_at": iso(r.updated_at),
        })
    return out


def recommendation(store: Store, rec_id: str) -> dict[str, Any] | None:
    with guard(store), store.session() as s:
        r = s.get(Recommendation, rec_id)
    if r is None:
        return None
    return {"id": r.id, "status": r.status, "decision_class": r.decision_class,
            "target": r.target, "action": r.action}


def holds(store: Store, *, include_closed: bool = False) -> list[dict[str, Any]]:
    """Holds (NCRs) newest first with their lots; open ones only unless asked."""
    q = select(_HOLD).order_by(_HOLD.c.created_at.desc(), _HOLD.c.id)
    if not include_closed:
        q = q.where(_HOLD.c.status == "open")
    with guard(store), store.engine.connect() as c:
        rows = c.execute(q).all()
        lots: dict[str, list[str]] = defaultdict(list)
        for h in c.execute(select(_HL.c.hold_id, _HL.c.lot_id)):
            lots[h.hold_id].append(h.lot_id)
    return [{"id": r.id, "status": r.status, "reason": r.reason,
             "lots": sorted(lots.get(r.id, [])), "disposition": r.disposition,
             "created_by": r.created_by, "created_at": iso(r.created_at),
             "closed_at": iso(r.closed_at), "recommendation_id": r.recommendation_id}
            for r in rows]


def work_orders(store: Store, statuses: Sequence[str] | None = WO_OPEN) -> list[dict[str, Any]]:
    """Work orders by priority then creation; ``statuses=None`` for all."""
    q = select(_WO).order_by(_WO.c.priority, _WO.c.created_at, _WO.c.id)
    if statuses is not None:
        q = q.where(_WO.c.status.in_(tuple(statuses)))
    with guard(store), store.engine.connect() as c:
        rows = c.execute(q).all()
    return [{"id": r.id, "kind": r.kind, "equipment_id": r.equipment_id,
             "fault_mode": r.fault_mode, "priority": r.priority, "status": r.status,
             "window_start": iso(r.window_start), "window_end": iso(r.window_end),
             "created_at": iso(r.created_at), "completed_at": iso(r.completed_at),
             "recommendation_id": r.recommendation_id, "description": r.description}
            for r in rows]


def lots(store: Store, statuses: Sequence[str] | None = LOT_OPEN) -> list[dict[str, Any]]:
    """Lots by id; ``statuses=None`` for all."""
    q = select(_LOT).order_by(_LOT.c.id)
    if statuses is not None:
        q = q.where(_LOT.c.status.in_(tuple(statuses)))
    with guard(store), store.engine.connect() as c:
        rows = c.execute(q).all()
    return [{"id": r.id, "order_id": r.order_id, "product_id": r.product_id,
             "quantity": r.quantity, "status": r.status, "equipment_id": r.equipment_id,
             "created_at": iso(r.created_at), "updated_at": iso(r.updated_at)}
            for r in rows]


def alarms(store: Store, *, include_normal: bool = False) -> list[dict[str, Any]]:
    """Alarms newest first: active or unacknowledged (the ISA-18.2 open set) unless asked."""
    q = select(_ALARM).order_by(_ALARM.c.raised_at.desc(), _ALARM.c.id.desc())
    if not include_normal:
        q = q.where((_ALARM.c.state == "active") | (_ALARM.c.acked.is_(False)))
    with guard(store), store.engine.connect() as c:
        rows = c.execute(q).all()
    return [{"id": r.id, "source": r.source, "detector_id": r.detector_id,
             "priority": r.priority, "message": r.message, "state": r.state,
             "acked": bool(r.acked), "acked_by": r.acked_by, "shelved_until":
             iso(r.shelved_until), "suppressed": bool(r.suppressed), "value": r.value,
             "raised_at": iso(r.raised_at), "cleared_at": iso(r.cleared_at)}
            for r in rows]


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return text
