"""Setup-aware dispatching heuristic: an answer in milliseconds.

It is the fallback when the solver finds nothing in its time limit and the warm start
(hint) the solver begins from. A Giffler–Thompson style generator keeps schedules
active: among ready operations it takes those that could start before the earliest
possible completion, and picks one by a rule that fits the objective —
ATCS (apparent tardiness cost with setups) for weighted tardiness, most work remaining
for makespan, smallest changeover then earliest due date for changeover time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from core.scheduling.problem import Assignment, Machine, Objective, Plan, Problem

ATC_K1 = 2.0  # look-ahead on slack, in mean processing times
ATC_K2 = 0.5  # weight of the changeover in mean setups


@dataclass
class _MachineState:
    ready: int
    family: str
    windows: list[tuple[int, int]]


def place(machine: Machine, state: _MachineState, ready: int, family: str,
          duration: int, min_start: int = 0) -> tuple[int, int]:
    """Earliest (start, setup) on a machine: the setup begins at ``ready`` or later, the
    run at ``min_start`` or later (predecessors), neither crosses an unavailable interval."""
    setup = machine.setup(state.family, family)
    t = max(ready, state.ready, min_start - setup)
    moved = True
    while moved:
        moved = False
        for s, e in state.windows:
            if t < e and s < t + setup + duration:
                t = e
                moved = True
    return t + setup, setup


def dispatch(problem: Problem, objective: Objective = Objective.WEIGHTED_TARDINESS) -> Plan:
    """A feasible plan for ``problem`` (frozen operations kept where they are)."""
    t0 = time.perf_counter()
    preds = problem.predecessors()
    succ = problem.successors()
    states: dict[str, _MachineState] = {
        m.id: _MachineState(problem.now, m.initial_family, sorted(m.unavailable))
        for m in problem.machines.values()
    }
    asg: dict[str, Assignment] = {}
    for op_id, a in sorted(problem.frozen.items(), key=lambda kv: kv[1].start):
        asg[op_id] = a
        st = states[a.machine]
        st.ready = max(st.ready, a.end)
        st.family = problem.ops[op_id].family
    # Work remaining per job, for MWKR and ATC slack (mean duration over options).
    mean_p = {o: sum(op.options.values()) / len(op.options) for o, op in problem.ops.items()}
    remaining = {}
    for job in problem.jobs:
        acc = 0.0
        for op in reversed(job.operations):
            acc += mean_p[op.id]
            remaining[op.id] = acc
    pbar = max(1.0, sum(mean_p.values()) / max(1, len(mean_p)))
    setups = [v for m in problem.machines.values() for v in m.setups.values() if v > 0]
    sbar = max(1.0, sum(setups) / len(setups)) if setups else 1.0

    n_left = {o: sum(1 for p in preds[o] if p not in asg) for o in problem.ops}
    ready_at = {o: problem.earliest(o) for o in problem.ops}
    pending = {o for o in problem.ops if o not in asg and n_left[o] == 0}

    while pending:
        best: dict[str, tuple[int, int, int, str]] = {}  # op -> (end, start, setup, machine)
        for o in pending:
            op = problem.ops[o]
            for m, d in op.options.items():
                ms = max((problem.min_start(p, asg[p], o, m) for p in preds[o]), default=0)
                start, setup = place(problem.machines[m], states[m], ready_at[o], op.family, d,
                                     ms)
                cand = (start + d, start, setup, m)
                if o not in best or cand < best[o]:
                    best[o] = cand
        e_star = min(c[0] for c in best.values())
        conflict = [o for o in pending if best[o][1] < e_star] or [min(best, key=best.get)]
        t_now = min(best[o][1] for o in conflict)

        def priority(o: str, best: dict = best, t_now: int = t_now) -> tuple[float, ...]:
            end, start, setup, _m = best[o]
            job = problem.job_of[o]
            if objective is Objective.MAKESPAN:
                return (remaining[o], -start, -setup)
            if objective is Objective.CHANGEOVER:
                due = job.due if job.due is not None else math.inf
                return (-setup, -due, -start)
            p = end - start
            if job.due is None:
                return (0.0, remaining[o], -start)
            slack = max(0.0, job.due - remaining[o] - t_now)
            atc = (job.weight / max(1.0, p)) * math.exp(-slack / (ATC_K1 * pbar))
            atc *= math.exp(-setup / (ATC_K2 * sbar))
            return (1.0, atc, -start)

        pick = max(sorted(conflict), key=priority)
        end, start, setup, m = best[pick]
        asg[pick] = Assignment(pick, m, start, end, setup)
        states[m].ready = end
        states[m].family = problem.ops[pick].family
        pending.discard(pick)
        for s in succ[pick]:
            n_left[s] -= 1
            if n_left[s] == 0 and s not in asg:
                pending.add(s)

    if len(asg) < len(problem.ops):
        raise ValueError("precedences form a cycle: some operations can never start")
    plan = Plan(asg, solver="dispatch", status="heuristic",
                solve_seconds=time.perf_counter() - t0)
    plan.objective = float(plan.score(problem, objective))
    return plan
