"""Left-shift: every operation as early as its machine sequence allows.

The solver has no reason to start an on-time operation early (that would need a
flow-time term that competes with the real objective), so its plans can hold idle
gaps. Keeping each machine's sequence and assignment and starting everything as early
as possible changes no setup and delays nothing, so tardiness, makespan and changeover
time can only improve, and shop-floor timings look like what a planner would write.
"""

from __future__ import annotations

from core.scheduling.problem import Assignment, Plan, Problem


def left_shift(problem: Problem, plan: Plan, keep: set[str] | None = None,
               repair: bool = False) -> Plan:
    """A copy of ``plan`` with every operation not frozen or in ``keep`` moved earlier.

    With ``repair`` the same pass re-times a plan that no longer fits its problem (the
    classic right-shift after a breakdown): each machine keeps its sequence, operations
    move as early as the new constraints allow, later if they must. Operations of the
    plan that are not in the problem (a held order) are dropped.
    """
    keep = set(keep or ()) | set(problem.frozen)
    preds = problem.predecessors()
    if repair:
        plan = Plan({o: problem.frozen.get(o, a) for o, a in plan.assignments.items()
                     if o in problem.ops})
    machine_prev: dict[str, str | None] = {}
    for seq in plan.by_machine().values():
        prev = None
        for a in seq:
            machine_prev[a.op_id] = prev
            prev = a.op_id
    new: dict[str, Assignment] = {}
    for a in sorted(plan.assignments.values(), key=lambda a: (a.start, a.end, a.op_id)):
        if a.op_id in keep or a.op_id not in problem.ops:
            new[a.op_id] = a
            continue
        op = problem.ops[a.op_id]
        machine = problem.machines[a.machine]
        t = problem.earliest(a.op_id)
        min_start = 0
        for p in preds[a.op_id]:
            if p in new:
                min_start = max(min_start, problem.min_start(p, new[p], a.op_id, a.machine))
        prev = machine_prev.get(a.op_id)
        fam = machine.initial_family
        if prev is not None:
            t = max(t, new[prev].end)
            fam = problem.ops[prev].family
        setup = machine.setup(fam, op.family)
        d = a.end - a.start
        t = max(t, min_start - setup)
        moved = True
        while moved:
            moved = False
            for s, e in machine.unavailable:
                if t < e and s < t + setup + d:
                    t, moved = e, True
        start = t + setup
        if start > a.start and not repair:  # cannot happen for a feasible plan
            start, setup = a.start, a.setup
        new[a.op_id] = Assignment(a.op_id, a.machine, start, start + d, setup)
    out = Plan(new, plan.solver, plan.status, plan.objective, plan.bound, plan.solve_seconds,
               plan.search_seconds, list(plan.unscheduled))
    return out
