"""Scheduling adapter: make the proposed plan the active one through the scheduler's API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from core import audit
from core.clock import Clock
from core.engine.executors.base import ActionFailed, ActionView
from core.store.db import Store, guard
from core.store.models import Plan

PLAN = Plan.__table__  # type: ignore[attr-defined]


def service_activate(store: Store) -> Callable[[str], None]:
    def activate(plan_id: str) -> None:
        from core.scheduling.service import approve  # ortools: load only when used
        approve(store, plan_id)
    return activate


class SchedulingAdapter:
    kinds = ("activate_plan",)

    def __init__(self, store: Store, clock: Clock,
                 activate: Callable[[str], None] | None = None) -> None:
        self.store, self.clock = store, clock
        self.activate = activate or service_activate(store)

    def execute(self, a: ActionView) -> dict[str, Any]:
        pid = str(a.params.get("plan_id") or "")
        with guard(self.store), self.store.begin() as conn:
            row = conn.execute(select(PLAN.c.status).where(PLAN.c.id == pid)).first()
        if row is None:
            raise ActionFailed(f"no plan {pid!r}")
        if row.status == "active":
            return {"plan_id": pid, "already_done": True}
        if row.status != "proposed":
            raise ActionFailed(f"plan {pid} is {row.status}: a newer plan replaced it; "
                               "re-plan again")
        self.activate(pid)
        audit.append(self.store.engine, "system:outbox", "plan.activated", "plan", pid,
                     {"action_id": a.id}, ts=self.clock.now())
        return {"plan_id": pid, "already_done": False}
