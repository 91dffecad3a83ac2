"""Re-planning after a plant event: the API the closed loop calls.

An event (equipment down, lot held, batch short) changes the problem; the plan in force
is the reference. Stability comes first: operations already started stay put, and the
first attempt pins every operation the event did not touch and frees only the affected
ones and their successors. A second attempt, warm-started from the first, frees all
not-started operations but charges every minute an unaffected operation moves, so it
only reshuffles the plan when that buys real tardiness. If the solver has nothing in
its budget, the dispatching heuristic answers.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from core.scheduling.compact import left_shift
from core.scheduling.cpsat import SolveOptions, solve
from core.scheduling.dispatch import dispatch
from core.scheduling.feasibility import violations
from core.scheduling.problem import Assignment, Objective, Plan, Problem


@dataclass(frozen=True)
class EquipmentDown:
    """``machine`` cannot work in [start, start + duration)."""

    machine: str
    start: int
    duration: int

    def describe(self) -> str:
        return f"{self.machine} down from {self.start} for {self.duration}"


@dataclass(frozen=True)
class LotHeld:
    """The order's remaining work waits until ``until``, or leaves the plan if None."""

    job_id: str
    until: int | None = None

    def describe(self) -> str:
        tail = f"until {self.until}" if self.until is not None else "until released"
        return f"lot of {self.job_id} held {tail}"


@dataclass(frozen=True)
class BatchShort:
    """``material`` is not available before ``available_at``."""

    material: str
    available_at: int

    def describe(self) -> str:
        return f"{self.material} short until {self.available_at}"


Event = EquipmentDown | LotHeld | BatchShort


@dataclass
class OrderChange:
    job_id: str
    old_end: int | None
    new_end: int | None
    due: int | None
    old_tardiness: int
    new_tardiness: int
    moved_ops: int


@dataclass
class Proposal:
    """A proposed plan and what it changes against the plan in force."""

    events: list[Event]
    problem: Problem  # the problem with the events applied
    previous: Plan
    plan: Plan
    moved: list[OrderChange]
    at_risk: list[OrderChange]  # late in the proposal (newly or still)
    held: list[str]
    tardiness_before: int
    tardiness_after: int
    strategy: str
    affected_ops: list[str] = field(default_factory=list)
    solve_seconds: float = 0.0

    @property
    def tardiness_delta(self) -> int:
        return self.tardiness_after - self.tardiness_before

    def summary(self) -> str:
        ev = "; ".join(e.describe() for e in self.events)
        return (
            f"{ev}: {len(self.moved)} orders move, {len(self.at_risk)} at risk, weighted "
            f"tardiness {self.tardiness_before} -> {self.tardiness_after} "
            f"({self.tardiness_delta:+d}), {self.strategy}"
        )


def apply_events(problem: Problem, previous: Plan, events: list[Event],
                 now: int | None = None,
                 freeze_by_plan: bool = True) -> tuple[Problem, list[str]]:
    """A copy of the problem with the events applied and started operations frozen.

    Operations of the previous plan whose changeover or run began before ``now`` are
    frozen; one running on equipment that goes down mid-way is held through the
    downtime (its end moves). With ``freeze_by_plan`` False only the problem's own
    frozen operations count as started (the store knows what really started; a planned
    start in the past that did not happen is re-planned from ``now``).
    Returns the new problem and the ids of jobs taken out of the plan (held lots).
    """
    p = copy.deepcopy(problem)
    p.now = problem.now if now is None else now
    for op_id, a in previous.assignments.items():
        if (freeze_by_plan and op_id in p.ops and op_id not in p.frozen
                and a.start - a.setup < p.now):
            p.frozen[op_id] = a
    held: list[str] = []
    for ev in events:
        if isinstance(ev, EquipmentDown):
            if ev.machine not in p.machines:
                raise ValueError(f"unknown equipment {ev.machine!r}")
            if ev.duration <= 0:
                raise ValueError("downtime duration must be positive")
            end = ev.start + ev.duration
            p.machines[ev.machine].unavailable.append((ev.start, end))
            for op_id, a in list(p.frozen.items()):
                if a.machine == ev.machine and a.start < ev.start < a.end:
                    p.frozen[op_id] = Assignment(op_id, a.machine, a.start,
                                                 a.end + ev.duration, a.setup)
        elif isinstance(ev, LotHeld):
            job = next((j for j in p.jobs if j.id == ev.job_id), None)
            if job is None:
                raise ValueError(f"unknown order {ev.job_id!r}")
            if ev.until is None:
                job.operations = [o for o in job.operations if o.id in p.frozen]
                held.append(job.id)
            else:
                job.release = max(job.release, ev.until)
        elif isinstance(ev, BatchShort):
            p.material_ready[ev.material] = max(p.material_ready.get(ev.material, 0),
                                                ev.available_at)
        else:  # pragma: no cover - the type union is closed
            raise TypeError(f"unknown event {ev!r}")
    p.jobs = [j for j in p.jobs if j.operations]
    p.precedences = [(a, b) for a, b in p.precedences if a in _op_ids(p) and b in _op_ids(p)]
    p.reindex()
    return p, held


def _op_ids(p: Problem) -> set[str]:
    return {o.id for j in p.jobs for o in j.operations}


def affected_operations(problem: Problem, previous: Plan) -> set[str]:
    """Not-started operations whose previous slot breaks the new problem, plus every
    operation after them in their jobs (they may have to shift too)."""
    direct: set[str] = set()
    asg = previous.assignments
    busy: dict[str, list[tuple[int, int, str]]] = {}
    for op_id, a in problem.frozen.items():
        busy.setdefault(a.machine, []).append((a.start, a.end, op_id))
    for op_id in problem.ops:
        if op_id in problem.frozen:
            continue
        a = asg.get(op_id)
        if a is None:
            direct.add(op_id)  # new operation: nowhere to keep it
            continue
        lo = a.start - a.setup
        if lo < problem.earliest(op_id):
            direct.add(op_id)
            continue
        if any(lo < e and s < a.end for s, e in problem.machines[a.machine].unavailable):
            direct.add(op_id)
            continue
        if any(lo < e and s < a.end for s, e, _ in busy.get(a.machine, [])):
            direct.add(op_id)
            continue
    preds = problem.predecessors()
    for op_id in problem.ops:
        if op_id in problem.frozen or op_id not in asg:
            continue
        for p in preds[op_id]:
            a = asg[op_id]
            if p in problem.frozen and a.machine in problem.ops[op_id].options and (
                problem.min_start(p, problem.frozen[p], op_id, a.machine) > a.start
            ):
                direct.add(op_id)
    succ = problem.successors()
    out = set()
    stack = list(direct)
    while stack:
        o = stack.pop()
        if o in out or o in problem.frozen:
            continue
        out.add(o)
        stack.extend(succ[o])
    return out


def replan(
    problem: Problem,
    previous: Plan,
    events: list[Event],
    now: int | None = None,
    objective: Objective = Objective.WEIGHTED_TARDINESS,
    time_limit: float = 1.0,
    stability_weight: int = 20,
    workers: int | None = None,
    freeze_by_plan: bool = True,
) -> Proposal:
    """Propose a plan for ``problem`` after ``events``; ``previous`` is the plan in force.

    ``stability_weight`` is what one time unit of moving an unaffected operation costs,
    in 1/100 of a unit of the objective (20: moving an operation by 5 minutes weighs as
    much as one minute of weighted tardiness; a change of machine counts as 30 minutes).
    Candidates are the right-shift repair of the previous plan, CP-SAT with unaffected
    operations pinned, and CP-SAT with everything not started free; the best on that
    penalised objective is proposed.
    """
    t0 = time.perf_counter()
    new, held = apply_events(problem, previous, events, now, freeze_by_plan)
    affected = affected_operations(new, previous)
    prev_in_new = {o: a for o, a in previous.assignments.items()
                   if o in new.ops and o not in new.frozen}
    fixed = {o: a for o, a in prev_in_new.items() if o not in affected}
    deadline = t0 + 0.9 * time_limit  # the rest is for building models and answers

    def budget(share: float) -> float:
        return max(0.05, (deadline - time.perf_counter()) * share)

    base = SolveOptions(objective, workers=workers, fast_presolve=True)
    stab = _with(base, 0.0)
    stab.stability_weight = stability_weight
    stab.machine_change_cost = stability_weight * 30
    stab_prev = Plan({o: a for o, a in prev_in_new.items() if o not in affected})
    heur = dispatch(new, objective)
    # 0. Right-shift repair: every machine keeps its sequence, times follow the event.
    repaired = _repair(new, previous, heur)
    # Candidates are (plan, strategy); the best on the stage-2 objective wins.
    candidates: list[tuple[Plan, str]] = []
    if repaired is not None:
        candidates.append((repaired, "right-shift repair"))
    # 1. Pin what the event did not touch; place only the affected operations (first
    # by the heuristic, then by CP-SAT).
    pinned_hint = _pinned_hint(new, fixed, heur)
    if pinned_hint is not heur:
        candidates.append((pinned_hint, "affected operations only (dispatched)"))
    limit1 = budget(0.4)
    first = solve(new, _with(base, limit1), hint=pinned_hint, fixed=fixed)
    # Building the model and reading the answer cost time outside CP-SAT's own limit;
    # the second, larger model costs more of it: reserve for that so the whole call
    # keeps its budget.
    overhead = max(0.0, first.solve_seconds - first.search_seconds)
    deadline -= 2.5 * overhead + 0.2
    if first.assignments:
        candidates.append((first, "affected operations only"))
    # 2. Free everything not started, charging unaffected moves; warm-start from the
    # best so far (or the heuristic, which ignores stability, if it scores better).
    if time.perf_counter() < deadline - 0.1:
        opts = _with(stab, budget(1.0))
        pool = [c[0] for c in candidates] + [heur]
        hint = min(pool, key=lambda pl: _penalised(new, pl, stab_prev, stab))
        second = solve(new, opts, hint=hint, previous=stab_prev)
        if second.assignments:
            candidates.append((second, "widened"))
    candidates = [(pl, st) for pl, st in candidates if not violations(new, pl)]
    if candidates:
        best, strategy = min(candidates, key=lambda c: _penalised(new, c[0], stab_prev, stab))
        moved_unaffected = sum(
            1 for o, a in stab_prev.assignments.items()
            if (best.assignments[o].start, best.assignments[o].machine) != (a.start, a.machine)
        )
        if moved_unaffected:
            strategy += f": {moved_unaffected} unaffected operations moved"
    else:  # never hand out an infeasible plan; the heuristic is always feasible
        best, strategy = heur, "heuristic (no solver plan in time)"
    best.unscheduled = list(held)
    best.solve_seconds = time.perf_counter() - t0
    return _proposal(problem, new, previous, best, events, held, strategy, affected)


def _repair(problem: Problem, previous: Plan, heur: Plan) -> Plan | None:
    """The previous plan re-timed for the new problem (new operations appended by the
    heuristic); None when it cannot be made feasible that way."""
    shifted = left_shift(problem, previous, repair=True)
    if len(shifted.assignments) < len(problem.ops):
        keep = {o: a for o, a in shifted.assignments.items() if o not in problem.frozen}
        shifted = _pinned_hint(problem, keep, heur)
    shifted.solver, shifted.status = "repair", "heuristic"
    return None if violations(problem, shifted) else shifted


def _with(opts: SolveOptions, time_limit: float) -> SolveOptions:
    out = copy.copy(opts)
    out.time_limit = time_limit
    return out


def _penalised(problem: Problem, plan: Plan, prev: Plan, opts: SolveOptions) -> int:
    """The stage-2 objective, recomputed, so both attempts compare on the same scale."""
    dev = sum(abs(plan.assignments[o].start - a.start) for o, a in prev.assignments.items())
    changed = sum(1 for o, a in prev.assignments.items()
                  if plan.assignments[o].machine != a.machine)
    return (100 * plan.score(problem, opts.objective) + opts.stability_weight * dev
            + opts.machine_change_cost * changed)


def _pinned_hint(problem: Problem, fixed: dict[str, Assignment], heur: Plan) -> Plan:
    """The fixed part kept, the rest appended by the heuristic on a problem where the
    fixed operations count as started; a complete hint for the first attempt."""
    p = copy.copy(problem)
    p.frozen = {**problem.frozen, **{o: a for o, a in fixed.items()}}
    try:
        return _resetup(problem, dispatch(p))
    except ValueError:
        return heur


def _resetup(problem: Problem, plan: Plan) -> Plan:
    """Changeovers recomputed from each machine's sequence: an operation taken out from
    between two kept ones changes what the second needs (the gap may still hold it)."""
    out = dict(plan.assignments)
    for m, seq in plan.by_machine().items():
        machine = problem.machines[m]
        fam = machine.initial_family
        for a in seq:
            if a.op_id not in problem.frozen:
                need = machine.setup(fam, problem.ops[a.op_id].family)
                out[a.op_id] = Assignment(a.op_id, a.machine, a.start, a.end, need)
            fam = problem.ops[a.op_id].family
    return Plan(out, plan.solver, plan.status, plan.objective, plan.bound, plan.solve_seconds,
                plan.search_seconds, list(plan.unscheduled))


def _proposal(old: Problem, new: Problem, previous: Plan, plan: Plan, events: list[Event],
              held: list[str], strategy: str, affected: set[str]) -> Proposal:
    old_tard = previous.tardiness(old)
    new_tard = plan.tardiness(new)
    moved: list[OrderChange] = []
    at_risk: list[OrderChange] = []
    for job in old.jobs:
        if job.id in held:
            continue
        n_moved = 0
        for op in job.operations:
            a, b = previous.assignments.get(op.id), plan.assignments.get(op.id)
            if a is None or b is None or (a.machine, a.start) != (b.machine, b.start):
                n_moved += 1
        ch = OrderChange(
            job.id, previous.job_end(old, job.id), plan.job_end(new, job.id), job.due,
            old_tard.get(job.id, 0), new_tard.get(job.id, 0), n_moved,
        )
        if n_moved:
            moved.append(ch)
        if ch.new_tardiness > 0:
            at_risk.append(ch)
    w_old = {j.id: j.weight for j in old.jobs}
    # Held orders leave the plan, so they are left out of both sides of the comparison.
    before = sum(w_old[j] * t for j, t in old_tard.items() if j not in held)
    after = plan.weighted_tardiness(new)
    return Proposal(events, new, previous, plan, moved, at_risk, held, before, after,
                    strategy, sorted(affected), plan.solve_seconds)
