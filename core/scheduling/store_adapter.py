"""The bridge between the store and the solver: build the problem, save and activate plans.

Times in the problem are whole minutes since the plant epoch (``Meta['plant_epoch']``).
What goes in:

- open orders (planned / released / in progress) with their operations; a processing
  time is quantity × the routing step's cycle, on each eligible piece of equipment;
- completed operations are left out (the next one waits for their actual end),
  running or paused ones are frozen where they are;
- changeovers are per line (product → product) and apply to every machine of the line;
  the family of an operation is its product, and what a machine ran last (its latest
  started operation) is its initial family;
- maintenance windows (for one machine or the whole line) and open unplanned/planned
  downtime (assumed to last ``open_downtime_min`` more minutes from now) are unavailable;
- orders with a held lot are left out of the plan and reported as held;
- released stock covers orders in due-date order; steps it does not cover wait for a
  replenishment lead time;
- an order moves through its line in lots (the product's lot size), so consecutive
  steps overlap: a step may start when the previous one has finished its first lot;
- the weight of an order comes from its priority (1 → 3, 2 → 2, 3+ → 1).

An approved plan becomes the active one (the previous active plan is superseded) and
its items, per equipment in start order, are that equipment's dispatch list.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core.clock import ensure_utc, parse_utc
from core.scheduling.problem import Assignment, Job, Machine, Operation, Plan, Problem
from core.statuses import OPERATION_STARTED, ORDER_OPEN
from core.store.db import Store, guard
from core.store.models import (
    Changeover,
    Equipment,
    EquipmentStateInterval,
    Lot,
    MaintenanceWindow,
    MaterialBatch,
    Meta,
    Product,
    ProductionOrder,
    RoutingStep,
    Stock,
)
from core.store.models import Operation as OperationRow
from core.store.models import Plan as PlanRow
from core.store.models import PlanItem as PlanItemRow

EPOCH_KEY = "plant_epoch"
DOWN_STATES = ("down_unplanned", "down_planned")


class NoPlantEpoch(ValueError):
    """The store has no plant epoch: master data was never loaded."""


@dataclass
class PlantProblem:
    """A problem built from the store, with what is needed to map it back."""

    problem: Problem
    epoch: datetime
    held_orders: list[str] = field(default_factory=list)
    material_short: dict[str, list[str]] = field(default_factory=dict)  # order -> materials
    order_product: dict[str, str] = field(default_factory=dict)
    equipment_line: dict[str, str] = field(default_factory=dict)

    def minutes(self, ts: datetime) -> int:
        return math.floor((ensure_utc(ts) - self.epoch).total_seconds() / 60)

    def at(self, minutes: int) -> datetime:
        return self.epoch + timedelta(minutes=minutes)


def plant_epoch(session: Session) -> datetime:
    row = session.get(Meta, EPOCH_KEY)
    if row is None:
        raise NoPlantEpoch("the store has no plant epoch: load the master data first")
    return parse_utc(row.value)


def _weight(priority: int) -> int:
    return max(1, 4 - int(priority))


def build_problem(store: Store, now: datetime, open_downtime_min: int = 60,
                  replenish_lead_min: int = 480) -> PlantProblem:
    """The scheduling problem of the plant as the store has it at ``now``.

    Material: released stock is allotted to orders in due-date order; a step whose
    material the stock no longer covers cannot start before ``now`` plus
    ``replenish_lead_min`` (the store has no purchase orders to say better).
    """
    with guard(store), store.session() as s:
        epoch = plant_epoch(s)
        pp = PlantProblem(Problem([], {}), epoch)
        t_now = pp.minutes(now)
        equipment = list(s.exec(select(Equipment)))
        pp.equipment_line = {e.id: e.line_id for e in equipment}
        setups_by_line: dict[str, dict[tuple[str, str], int]] = {}
        for c in s.exec(select(Changeover)):
            setups_by_line.setdefault(c.line_id, {})[(c.from_product_id, c.to_product_id)] = (
                math.ceil(c.minutes))
        machines = {
            e.id: Machine(e.id, dict(setups_by_line.get(e.line_id, {})), [], "", e.line_id)
            for e in equipment
        }
        for w in s.exec(select(MaintenanceWindow)):
            start, end = pp.minutes(w.start), math.ceil(
                (ensure_utc(w.end) - epoch).total_seconds() / 60)
            if end <= t_now:
                continue
            targets = [w.equipment_id] if w.equipment_id else [
                e.id for e in equipment if e.line_id == w.line_id]
            for t in targets:
                if t in machines:
                    machines[t].unavailable.append((start, end))
        for iv in s.exec(select(EquipmentStateInterval).where(
                EquipmentStateInterval.state.in_(DOWN_STATES),  # type: ignore[attr-defined]
                EquipmentStateInterval.end.is_(None))):  # type: ignore[union-attr]
            if iv.equipment_id in machines:
                machines[iv.equipment_id].unavailable.append(
                    (pp.minutes(iv.start), t_now + open_downtime_min))

        orders = list(s.exec(select(ProductionOrder).where(
            ProductionOrder.status.in_(ORDER_OPEN))))  # type: ignore[attr-defined]
        order_ids = [o.id for o in orders]
        held = {lot.order_id for lot in s.exec(select(Lot).where(
            Lot.status == "held", Lot.order_id.in_(order_ids)))}  # type: ignore[attr-defined]
        steps = {r.id: r for r in s.exec(select(RoutingStep))}
        lot_sizes = {p.id: p.lot_size for p in s.exec(select(Product))}
        ops_by_order: dict[str, list[OperationRow]] = {}
        for row in s.exec(select(OperationRow).where(
                OperationRow.order_id.in_(order_ids))):  # type: ignore[attr-defined]
            ops_by_order.setdefault(row.order_id, []).append(row)
        stock: dict[str, float] = {}
        released = {b.id for b in s.exec(select(MaterialBatch).where(
            MaterialBatch.status == "released"))}
        for row in s.exec(select(Stock)):
            if row.batch_id is None or row.batch_id in released:
                stock[row.material_id] = stock.get(row.material_id, 0.0) + row.quantity
        last_started: dict[str, tuple[datetime, str]] = {}
        jobs: list[Job] = []
        frozen: dict[str, Assignment] = {}
        for o in sorted(orders, key=lambda o: (o.due_at, o.id)):
            pp.order_product[o.id] = o.product_id
            if o.id in held:
                pp.held_orders.append(o.id)
                continue
            release = pp.minutes(o.release_at)
            ops: list[Operation] = []
            for row in sorted(ops_by_order.get(o.id, []), key=lambda r: r.step):
                step = steps.get(row.routing_step_id)
                if step is None:
                    continue
                if row.actual_start is not None and row.equipment_id:
                    prev = last_started.get(row.equipment_id)
                    if prev is None or ensure_utc(row.actual_start) > prev[0]:
                        last_started[row.equipment_id] = (ensure_utc(row.actual_start),
                                                          o.product_id)
                if row.status == "complete":
                    if row.actual_end is not None:
                        release = max(release, math.ceil(
                            (ensure_utc(row.actual_end) - epoch).total_seconds() / 60))
                    continue
                minutes = max(1, math.ceil(o.quantity * step.cycle_s / 60))
                eligible = [e for e in step.eligible() if e in machines]
                if not eligible:
                    continue
                op = Operation(row.id, o.id, dict.fromkeys(eligible, minutes),
                               family=o.product_id,
                               materials=(step.material_id,) if step.material_id else ())
                if step.material_id and row.status not in OPERATION_STARTED:
                    need = o.quantity * step.qty_per_unit
                    left = stock.get(step.material_id, 0.0)
                    if need > left + 1e-9:
                        op.earliest_start = t_now + replenish_lead_min
                        pp.material_short.setdefault(o.id, []).append(step.material_id)
                    stock[step.material_id] = left - need
                ops.append(op)
                if row.status in OPERATION_STARTED:
                    m = row.equipment_id if row.equipment_id in op.options else eligible[0]
                    st = row.actual_start or row.planned_start or now
                    start = pp.minutes(st)
                    end = max(start + minutes, t_now + 1) if row.status == "paused" else (
                        start + minutes)
                    frozen[row.id] = Assignment(row.id, m, start, end, 0)
            if ops:
                due = pp.minutes(o.due_at)
                lot_size = lot_sizes.get(o.product_id, o.quantity) or o.quantity
                jobs.append(Job(o.id, ops, release=release, due=due,
                                weight=_weight(o.priority), product=o.product_id,
                                transfer=min(1.0, lot_size / max(1, o.quantity))))
        for eq, (_, product) in last_started.items():
            machines[eq].initial_family = product
    pp.problem = Problem(jobs, machines, frozen=frozen, now=t_now, name="plant")
    return pp


# ---------------------------------------------------------------- plans in the store


def plan_metrics(pp: PlantProblem, plan: Plan, extra: dict | None = None) -> dict:
    p = pp.problem
    late = {j: t for j, t in plan.tardiness(p).items() if t > 0}
    out = {
        "solver": plan.solver, "status": plan.status,
        "solve_seconds": round(plan.solve_seconds, 3),
        "weighted_tardiness_min": plan.weighted_tardiness(p),
        "late_orders": sorted(late), "makespan_at": pp.at(plan.makespan()).isoformat()
        if plan.assignments else None,
        "changeover_min": plan.total_setup(), "held_orders": list(pp.held_orders),
        "material_short": pp.material_short,
        "operations": len(plan.assignments),
    }
    out.update(extra or {})
    return out


def save_plan(store: Store, pp: PlantProblem, plan: Plan, *, status: str = "proposed",
              objective: str = "", reason: str = "", extra: dict | None = None,
              created_at: datetime | None = None) -> str:
    """Write the plan and its items; returns the new plan id."""
    plan_id = f"PL-{uuid.uuid4().hex[:10]}"
    created = ensure_utc(created_at) if created_at else pp.at(pp.problem.now)
    with guard(store), store.session() as s:
        s.add(PlanRow(id=plan_id, created_at=created, status="proposed", objective=objective,
                      reason=reason, metrics=json.dumps(plan_metrics(pp, plan, extra))))
        s.flush()
        for seq in plan.by_machine().values():
            for i, a in enumerate(seq):
                s.add(PlanItemRow(plan_id=plan_id, seq=i, operation_id=a.op_id,
                                  equipment_id=a.machine, start=pp.at(a.start),
                                  end=pp.at(a.end), setup_min=float(a.setup)))
        s.commit()
    if status == "active":
        activate_plan(store, plan_id)
    return plan_id


def activate_plan(store: Store, plan_id: str) -> None:
    """Make a plan the active one: the previous active plan is superseded and each
    planned operation takes its equipment and planned times from the new plan."""
    with guard(store), store.session() as s:
        row = s.get(PlanRow, plan_id)
        if row is None:
            raise KeyError(plan_id)
        if row.status not in ("proposed", "active"):
            raise ValueError(f"plan {plan_id} is {row.status}; only a proposed plan can be "
                             "made active")
        active = s.exec(select(PlanRow).where(PlanRow.status == "active")).all()
        based_on = json.loads(row.metrics or "{}").get("previous_plan")
        if row.status == "proposed" and based_on and active and all(
                a.id != based_on for a in active):
            # Approving it would silently undo whatever the newer active plan changed.
            raise ValueError(f"plan {plan_id} was proposed against plan {based_on}, but "
                             f"{active[0].id} is active now: re-plan again")
        for other in active:
            if other.id != plan_id:
                other.status = "superseded"
                s.add(other)
        row.status = "active"
        s.add(row)
        items = s.exec(select(PlanItemRow).where(PlanItemRow.plan_id == plan_id)).all()
        ops = {o.id: o for o in s.exec(select(OperationRow).where(
            OperationRow.id.in_([i.operation_id for i in items])))}  # type: ignore[attr-defined]
        for it in items:
            op = ops.get(it.operation_id)
            if op is None or op.status not in ("planned", "ready"):
                continue
            op.equipment_id = it.equipment_id
            op.planned_start = it.start
            op.planned_end = it.end
            s.add(op)
        s.commit()


def reject_plan(store: Store, plan_id: str) -> None:
    with guard(store), store.session() as s:
        row = s.get(PlanRow, plan_id)
        if row is None:
            raise KeyError(plan_id)
        if row.status == "proposed":
            row.status = "rejected"
            s.add(row)
            s.commit()


def active_plan_row(store: Store) -> PlanRow | None:
    with guard(store), store.session() as s:
        return s.exec(select(PlanRow).where(PlanRow.status == "active")
                      .order_by(PlanRow.created_at.desc())).first()  # type: ignore[attr-defined]


def load_plan(store: Store, pp: PlantProblem, plan_id: str) -> Plan:
    """A stored plan as a solver plan (items for operations no longer open are dropped)."""
    with guard(store), store.session() as s:
        items = s.exec(select(PlanItemRow).where(PlanItemRow.plan_id == plan_id)).all()
    asg = {}
    for it in items:
        if it.operation_id in pp.problem.ops:
            asg[it.operation_id] = Assignment(it.operation_id, it.equipment_id,
                                              pp.minutes(it.start), pp.minutes(it.end),
                                              round(it.setup_min))
    return Plan(asg, solver="store", status="stored")


def plan_items(store: Store, plan_id: str) -> list[dict]:
    """Every item of a plan with order and product, in equipment then start order."""
    with guard(store), store.session() as s:
        rows = s.exec(
            select(PlanItemRow, OperationRow, ProductionOrder)
            .join(OperationRow, OperationRow.id == PlanItemRow.operation_id)
            .join(ProductionOrder, ProductionOrder.id == OperationRow.order_id)
            .where(PlanItemRow.plan_id == plan_id)
            .order_by(PlanItemRow.equipment_id, PlanItemRow.start, PlanItemRow.seq)
        ).all()
    return [
        {"equipment_id": it.equipment_id, "seq": it.seq, "operation_id": it.operation_id,
         "order_id": op.order_id, "product_id": po.product_id, "step": op.step,
         "start": ensure_utc(it.start).isoformat(), "end": ensure_utc(it.end).isoformat(),
         "setup_min": it.setup_min, "due_at": ensure_utc(po.due_at).isoformat(),
         "operation_status": op.status}
        for it, op, po in rows
    ]


def dispatch_list(store: Store, equipment_id: str) -> list[dict]:
    """The equipment's work in start order, from the active plan (empty if none)."""
    row = active_plan_row(store)
    if row is None:
        return []
    return [i for i in plan_items(store, row.id) if i["equipment_id"] == equipment_id]
