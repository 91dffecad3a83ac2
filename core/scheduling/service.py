"""The scheduling API in plant terms, for the closed loop and the CLI.

``current_plan`` gives the active plan (computing and activating a first one on a fresh
plant), ``plan_now`` re-plans from the store as it is, ``propose_replan`` answers an
event with a proposed plan (saved as ``proposed``) and ``approve`` makes a proposal the
active plan, which updates every equipment's dispatch list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from core.scheduling.cpsat import SolveOptions
from core.scheduling.planner import make_plan
from core.scheduling.problem import Objective
from core.scheduling.replan import BatchShort, EquipmentDown, Event, LotHeld, Proposal, replan
from core.scheduling.store_adapter import (
    PlantProblem,
    activate_plan,
    active_plan_row,
    build_problem,
    load_plan,
    save_plan,
)
from core.store.db import Store, guard
from core.store.models import Lot


@dataclass(frozen=True)
class Down:
    """Equipment down from ``start`` for ``duration``."""

    equipment_id: str
    start: datetime
    duration: timedelta


@dataclass(frozen=True)
class Held:
    """A lot (or, if no lot has this id, an order) held until ``until`` or released."""

    lot_or_order: str
    until: datetime | None = None


@dataclass(frozen=True)
class Short:
    """A material not available before ``until``."""

    material_id: str
    until: datetime


PlantEvent = Down | Held | Short


@dataclass
class PlanResult:
    plan_id: str
    created: bool  # a new plan was computed (not just read)
    note: str = ""


def current_plan(store: Store, now: datetime, time_limit: float = 5.0,
                 objective: Objective = Objective.WEIGHTED_TARDINESS) -> PlanResult:
    """The active plan; on a plant that has none yet, compute one and activate it."""
    row = active_plan_row(store)
    if row is not None:
        return PlanResult(row.id, False)
    pp = build_problem(store, now)
    plan = make_plan(pp.problem, SolveOptions(objective, time_limit=time_limit))
    pid = save_plan(store, pp, plan, status="active", objective=objective.value,
                    reason="initial plan (no active plan existed)")
    return PlanResult(pid, True, "no active plan existed: computed an initial plan and "
                                 "made it active")


def plan_now(store: Store, now: datetime, time_limit: float = 5.0,
             objective: Objective = Objective.WEIGHTED_TARDINESS,
             activate: bool = True) -> tuple[PlanResult, Proposal | None]:
    """Re-plan from the store as it is now, stable against the active plan if any."""
    pp = build_problem(store, now)
    row = active_plan_row(store)
    if row is None:
        plan = make_plan(pp.problem, SolveOptions(objective, time_limit=time_limit))
        pid = save_plan(store, pp, plan, status="active" if activate else "proposed",
                        objective=objective.value, reason="re-plan (no active plan)")
        return PlanResult(pid, True), None
    previous = load_plan(store, pp, row.id)
    prop = replan(pp.problem, previous, [], objective=objective, time_limit=time_limit,
                  freeze_by_plan=False)
    pid = _save_proposal(store, pp, prop, objective, "manual re-plan", row.id,
                         activate=activate)
    return PlanResult(pid, True), prop


def propose_replan(store: Store, events: list[PlantEvent], now: datetime,
                   time_limit: float = 1.0,
                   objective: Objective = Objective.WEIGHTED_TARDINESS) -> tuple[str, Proposal]:
    """Answer plant events with a proposed plan (not active until approved)."""
    if not events:
        raise ValueError("no event given")
    current = current_plan(store, now, objective=objective)
    pp = build_problem(store, now)
    previous = load_plan(store, pp, current.plan_id)
    evs = to_events(store, pp, events)
    prop = replan(pp.problem, previous, evs, objective=objective, time_limit=time_limit,
                  freeze_by_plan=False)
    reason = "; ".join(e.describe() for e in evs)
    pid = _save_proposal(store, pp, prop, objective, reason, current.plan_id, activate=False)
    return pid, prop


def approve(store: Store, plan_id: str) -> None:
    """Make a proposed plan the active one; dispatch lists follow it."""
    activate_plan(store, plan_id)


def to_events(store: Store, pp: PlantProblem, events: list[PlantEvent]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        if isinstance(ev, Down):
            minutes = int(ev.duration.total_seconds() // 60)
            if minutes <= 0:
                raise ValueError("downtime must last at least a minute")
            out.append(EquipmentDown(ev.equipment_id, pp.minutes(ev.start), minutes))
        elif isinstance(ev, Held):
            with guard(store), store.session() as s:
                lot = s.exec(select(Lot).where(Lot.id == ev.lot_or_order)).first()
            order = lot.order_id if lot is not None else ev.lot_or_order
            if order in pp.held_orders:
                continue  # already held in the store: already out of the plan
            until = pp.minutes(ev.until) if ev.until is not None else None
            out.append(LotHeld(order, until))
        elif isinstance(ev, Short):
            out.append(BatchShort(ev.material_id, pp.minutes(ev.until)))
        else:  # pragma: no cover - closed union
            raise TypeError(f"unknown event {ev!r}")
    return out


def proposal_summary(pp: PlantProblem, prop: Proposal) -> dict:
    """What changes, in plant terms (ISO times), JSON-ready."""
    def iso(m: int | None) -> str | None:
        return pp.at(m).isoformat() if m is not None else None

    def change(c) -> dict:  # type: ignore[no-untyped-def]
        return {"order_id": c.job_id, "old_end": iso(c.old_end), "new_end": iso(c.new_end),
                "due": iso(c.due), "old_tardiness_min": c.old_tardiness,
                "new_tardiness_min": c.new_tardiness, "moved_operations": c.moved_ops}

    return {
        "events": [e.describe() for e in prop.events],
        "strategy": prop.strategy,
        "moved_orders": [change(c) for c in prop.moved],
        "at_risk": [change(c) for c in prop.at_risk],
        "held_orders": prop.held,
        "weighted_tardiness_before": prop.tardiness_before,
        "weighted_tardiness_after": prop.tardiness_after,
        "weighted_tardiness_delta": prop.tardiness_delta,
        "affected_operations": prop.affected_ops,
        "solve_seconds": round(prop.solve_seconds, 3),
    }


def _save_proposal(store: Store, pp: PlantProblem, prop: Proposal, objective: Objective,
                   reason: str, previous_id: str, activate: bool) -> str:
    # The proposal's problem has the events applied; times map back on the same epoch.
    pp_new = PlantProblem(prop.problem, pp.epoch, list(pp.held_orders) + list(prop.held),
                          pp.order_product, pp.equipment_line)
    extra = {"previous_plan": previous_id, "proposal": proposal_summary(pp, prop)}
    return save_plan(store, pp_new, prop.plan, status="active" if activate else "proposed",
                     objective=objective.value, reason=reason, extra=extra)
