"""Maintenance adapter: predictive work orders in a window; completion; cancellation (undo)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from core import audit
from core.clock import Clock, parse_utc
from core.engine.executors.base import ActionFailed, ActionView, key_id, resolve
from core.engine.executors.plant import PlantCommands
from core.store.db import Store, guard
from core.store.models import Equipment, WorkOrder

WO = WorkOrder.__table__  # type: ignore[attr-defined]
EQ = Equipment.__table__  # type: ignore[attr-defined]


class MaintenanceAdapter:
    kinds = ("create_work_order", "complete_work_order", "cancel_work_order")

    def __init__(self, store: Store, clock: Clock, plant: PlantCommands) -> None:
        self.store, self.clock, self.plant = store, clock, plant

    def execute(self, action: ActionView) -> dict[str, Any]:
        if action.kind == "create_work_order":
            return self._create(action)
        if action.kind == "complete_work_order":
            return self._complete(action)
        return self._cancel(action)

    def _create(self, a: ActionView) -> dict[str, Any]:
        p = a.params
        wo_id = key_id("WO-", a.idempotency_key)
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            if conn.execute(select(WO.c.id).where(WO.c.id == wo_id)).first():
                return {"work_order_id": wo_id, "already_done": True}
            eq = p.get("equipment_id")
            if not conn.execute(select(EQ.c.id).where(EQ.c.id == eq)).first():
                raise ActionFailed(f"unknown equipment {eq!r}")
            ws = parse_utc(p["window_start"]) if p.get("window_start") else None
            we = parse_utc(p["window_end"]) if p.get("window_end") else None
            conn.execute(insert(WO).values(
                id=wo_id, kind=str(p.get("kind", "predictive")), equipment_id=eq,
                fault_mode=str(p.get("fault_mode", "")),
                description=str(p.get("description", ""))[:500],
                priority=int(p.get("priority", 2)),
                status="scheduled" if p.get("window_id") else "open",
                window_id=p.get("window_id"), window_start=ws, window_end=we,
                created_at=now, recommendation_id=a.recommendation_id))
            audit.append(conn, "system:outbox", "work_order.created", "work_order", wo_id,
                         {"equipment_id": eq, "window_id": p.get("window_id"),
                          "action_id": a.id}, ts=now)
        return {"work_order_id": wo_id, "window_id": p.get("window_id"), "already_done": False}

    def _complete(self, a: ActionView) -> dict[str, Any]:
        wo_id = str(a.params.get("work_order_id") or "")
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            wo = conn.execute(select(WO).where(WO.c.id == wo_id)).first()
            if wo is None:
                raise ActionFailed(f"no work order {wo_id!r}")
            if wo.status == "cancelled":
                raise ActionFailed(f"work order {wo_id} was cancelled")
            done = wo.status == "done"
            if not done:
                conn.execute(update(WO).where(WO.c.id == wo_id).values(
                    status="done", completed_at=now))
                audit.append(conn, "system:outbox", "work_order.completed", "work_order",
                             wo_id, {"action_id": a.id}, ts=now)
        resolve(self.plant.complete_work_order(wo.equipment_id, wo_id, wo.fault_mode,
                                               a.idempotency_key))
        return {"work_order_id": wo_id, "already_done": done}

    def _cancel(self, a: ActionView) -> dict[str, Any]:
        wo_id = str(a.params.get("work_order_id") or "")
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            wo = conn.execute(select(WO).where(WO.c.id == wo_id)).first()
            if wo is None:
                raise ActionFailed(f"no work order {wo_id!r}")
            if wo.status == "done":
                raise ActionFailed(f"work order {wo_id} is already done; it cannot be undone")
            if wo.status != "cancelled":
                conn.execute(update(WO).where(WO.c.id == wo_id).values(status="cancelled"))
                audit.append(conn, "system:outbox", "work_order.cancelled", "work_order",
                             wo_id, {"action_id": a.id}, ts=now)
        return {"work_order_id": wo_id, "status": "cancelled"}
