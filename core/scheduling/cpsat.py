"""CP-SAT model of the scheduling problem.

Interval variables per operation; one optional interval per eligible machine when there
is a choice. Machines without changeovers get a plain ``AddNoOverlap`` (for a pure job
shop this is exactly the classic disjunctive model). Machines with changeovers also get
a circuit over their operations: an arc i→j fixes the changeover before j and keeps j
after i; the interval that enters ``NoOverlap`` then spans setup + processing so neither
crosses a maintenance window or downtime. Circuits cost n² literals per machine, which
stays small at the plant's scale (tens of operations per machine) and propagates far
better than pairwise big-M disjunctions.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from core.scheduling.problem import Assignment, Objective, Plan, Problem

PRIMARY_SCALE = 100  # primary objective vs the stability terms


def default_workers() -> int:
    """One search worker per core, at least 2 so CP-SAT keeps a portfolio, at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


@dataclass
class SolveOptions:
    objective: Objective = Objective.WEIGHTED_TARDINESS
    time_limit: float = 10.0
    workers: int | None = None
    seed: int = 0
    # Stability: cost per time unit an operation moves from ``previous`` (per op, in
    # 1/PRIMARY_SCALE of the primary objective unit) and per machine change.
    stability_weight: int = 0
    machine_change_cost: int = 0
    log: bool = False
    fast_presolve: bool | None = None  # None: on when the model has changeover circuits


_STATUS = {
    cp_model.OPTIMAL: "optimal",
    cp_model.FEASIBLE: "feasible",
    cp_model.INFEASIBLE: "infeasible",
    cp_model.MODEL_INVALID: "invalid",
    cp_model.UNKNOWN: "unknown",
}


def solve(
    problem: Problem,
    options: SolveOptions | None = None,
    hint: Plan | None = None,
    previous: Plan | None = None,
    fixed: dict[str, Assignment] | None = None,
) -> Plan:
    """Best plan found within the time limit.

    ``hint`` warm-starts the search (typically the dispatching plan). ``previous`` is
    the plan in force: moving its operations costs ``stability_weight``. ``fixed``
    pins operations to machine and start (re-plan's first, cheapest attempt). Returns a
    plan with status ``infeasible`` or ``unknown`` and no assignments when CP-SAT has
    nothing to offer; the caller decides on the fallback.
    """
    opt = options or SolveOptions()
    fixed = fixed or {}
    t0 = time.perf_counter()
    m = cp_model.CpModel()
    H = problem.horizon()
    ops = problem.ops
    frozen = problem.frozen

    start: dict[str, cp_model.IntVar] = {}
    end: dict[str, cp_model.IntVar] = {}
    setup: dict[str, cp_model.IntVar] = {}
    lits: dict[str, dict[str, cp_model.IntVar | int]] = {}
    by_machine: dict[str, list[tuple[str, cp_model.IntervalVar, cp_model.IntVar | int]]] = {
        k: [] for k in problem.machines
    }
    ext_vars: dict[str, list[cp_model.IntVar]] = {}
    setup_machines = {k for k, mc in problem.machines.items() if mc.has_setups}

    for o, op in ops.items():
        if o in frozen:
            a = frozen[o]
            start[o] = m.new_constant(a.start)
            end[o] = m.new_constant(a.end)
            choices = {a.machine: a.end - a.start}
            lo = a.start
        else:
            lo = problem.earliest(o)
            start[o] = m.new_int_var(lo, H, f"s_{o}")
            end[o] = m.new_int_var(lo, H, f"e_{o}")
            choices = op.options
            if o in fixed:
                f = fixed[o]
                choices = {f.machine: op.options[f.machine]}
                m.add(start[o] == f.start)
        needs_setup = any(k in setup_machines for k in choices)
        if needs_setup:
            if o in frozen:
                setup[o] = m.new_constant(frozen[o].setup)
            else:
                max_s = max(
                    [0, *(v for k in choices for v in problem.machines[k].setups.values())]
                )
                setup[o] = m.new_int_var(0, max_s, f"su_{o}")
                # The changeover itself also waits for the releases.
                m.add(start[o] - setup[o] >= lo)
        lits[o] = {}
        for k, d in choices.items():
            lit: cp_model.IntVar | int
            if len(choices) == 1:
                lit = 1
                m.add(end[o] == start[o] + d)
            else:
                lit = m.new_bool_var(f"x_{o}_{k}")
                m.add(end[o] == start[o] + d).only_enforce_if(lit)
            lits[o][k] = lit
            if k in setup_machines:
                s_var = setup[o]
                ext = m.new_int_var(0, H, f"es_{o}_{k}")
                ext_vars.setdefault(o, []).append(ext)
                if isinstance(lit, int):
                    m.add(ext == start[o] - s_var)
                    itv = m.new_interval_var(ext, s_var + d, end[o], f"i_{o}_{k}")
                else:
                    m.add(ext == start[o] - s_var).only_enforce_if(lit)
                    itv = m.new_optional_interval_var(ext, s_var + d, end[o], lit, f"i_{o}_{k}")
            else:
                if o in setup and not isinstance(lit, int):
                    m.add(setup[o] == 0).only_enforce_if(lit)
                elif o in setup:
                    m.add(setup[o] == 0)
                if isinstance(lit, int):
                    itv = m.new_interval_var(start[o], d, end[o], f"i_{o}_{k}")
                else:
                    itv = m.new_optional_interval_var(start[o], d, end[o], lit, f"i_{o}_{k}")
            by_machine[k].append((o, itv, lit))
        if len(choices) > 1:
            m.add_exactly_one(lits[o].values())

    def lot_time(o: str) -> cp_model.LinearExprT:
        if o in frozen:
            return problem.lot_time(o, ops[o].options[frozen[o].machine])
        return sum(
            (lit * problem.lot_time(o, ops[o].options[k]) for k, lit in lits[o].items()), 0
        )

    for o, ps in problem.predecessors().items():
        for p in ps:
            if o in frozen and p in frozen:
                continue
            if problem.overlaps(p, o):
                # Lot streaming: o starts once p's first transfer lot is done, and
                # finishes its last lot after p's last one.
                m.add(start[o] >= start[p] + lot_time(p))
                m.add(end[o] >= end[p] + lot_time(o))
            else:
                m.add(start[o] >= end[p])

    arcs_by_machine: dict[str, list[tuple[int, int, cp_model.IntVar]]] = {}
    for k, items in by_machine.items():
        mc = problem.machines[k]
        intervals = [itv for _, itv, _ in items]
        busy = [(frozen[o].start, frozen[o].end) for o, _, _ in items if o in frozen]
        for s, e in _uncovered(mc.unavailable, busy):
            intervals.append(m.new_fixed_size_interval_var(s, e - s, f"down_{k}_{s}"))
        if len(intervals) > 1:
            m.add_no_overlap(intervals)
        if k in setup_machines and items:
            arcs_by_machine[k] = _circuit(m, problem, k, items, start, end, setup, fixed)

    # Objective.
    job_end: dict[str, cp_model.IntVar] = {}
    for job in problem.jobs:
        if job.operations:
            job_end[job.id] = end[job.operations[-1].id]
    tard: dict[str, cp_model.IntVar] = {}
    cmax = m.new_int_var(0, H, "cmax")
    for e in end.values():
        m.add(cmax >= e)
    if opt.objective is Objective.MAKESPAN:
        primary: cp_model.LinearExprT = cmax
    elif opt.objective is Objective.CHANGEOVER:
        primary = sum(setup.values()) if setup else 0
    else:
        for job in problem.jobs:
            if job.due is not None and job.id in job_end:
                t = m.new_int_var(0, H, f"t_{job.id}")
                m.add(t >= job_end[job.id] - job.due)
                tard[job.id] = t
        primary = sum(j.weight * tard[j.id] for j in problem.jobs if j.id in tard)
    secondary: list[cp_model.LinearExprT] = []
    deviations: dict[str, cp_model.IntVar] = {}
    if previous is not None and (opt.stability_weight or opt.machine_change_cost):
        for o, a in previous.assignments.items():
            if o not in ops or o in frozen or o in fixed:
                continue
            if opt.stability_weight:
                dev = m.new_int_var(0, H, f"d_{o}")
                m.add_abs_equality(dev, start[o] - a.start)
                deviations[o] = dev
                secondary.append(opt.stability_weight * dev)
            if opt.machine_change_cost and a.machine in lits[o] and len(lits[o]) > 1:
                lit = lits[o][a.machine]
                secondary.append(opt.machine_change_cost * (1 - lit))
    if secondary:
        m.minimize(PRIMARY_SCALE * primary + sum(secondary))
    else:
        m.minimize(primary)

    if hint is not None:
        _add_hint(m, problem, hint, start, end, setup, lits, arcs_by_machine, tard, cmax)
        for o, exts in ext_vars.items():
            a = hint.assignments.get(o)
            if a is not None and o not in frozen:
                for ext in exts:
                    m.add_hint(ext, a.start - a.setup)
        for o, dev in deviations.items():
            a = hint.assignments.get(o)
            if a is not None and previous is not None:
                m.add_hint(dev, abs(a.start - previous.assignments[o].start))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, float(opt.time_limit))
    solver.parameters.num_workers = opt.workers or default_workers()
    solver.parameters.random_seed = opt.seed
    solver.parameters.log_search_progress = opt.log
    fast = opt.fast_presolve if opt.fast_presolve is not None else bool(arcs_by_machine)
    if fast:
        # Probing the n² circuit literals costs most of a one-second budget; a re-plan
        # starts from a full hint and gains more from search than from presolve.
        solver.parameters.cp_model_probing_level = 0
        solver.parameters.symmetry_level = 0
    status = solver.solve(m)
    name = _STATUS.get(status, "unknown")
    plan = Plan({}, solver="cp-sat", status=name)
    plan.solve_seconds = time.perf_counter() - t0
    plan.search_seconds = solver.wall_time
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return plan
    for o in ops:
        machine = next(
            k for k, lit in lits[o].items() if isinstance(lit, int) or solver.boolean_value(lit)
        )
        su = solver.value(setup[o]) if o in setup else 0
        if o in frozen:
            plan.assignments[o] = frozen[o]
        else:
            plan.assignments[o] = Assignment(
                o, machine, solver.value(start[o]), solver.value(end[o]), su
            )
    plan.objective = float(plan.score(problem, opt.objective))
    # With stability / tie-break terms mixed in, the bound says nothing exact about the
    # primary objective, so it is only reported for the pure one.
    plan.bound = None if secondary else float(solver.best_objective_bound)
    return plan


def _uncovered(
    windows: list[tuple[int, int]], busy: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Unavailable windows merged where they overlap (two fixed intervals in one
    NoOverlap would make the model infeasible), minus the parts taken by started
    operations: a machine that breaks down mid-operation holds that operation (its end
    already pushed back) through the downtime, and the two must not clash."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(w for w in windows if w[1] > w[0]):
        if merged and s <= merged[-1][1]:  # overlapping windows (downtime in maintenance)
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    out: list[tuple[int, int]] = []
    for s, e in merged:
        parts = [(s, e)]
        for bs, be in busy:
            nxt = []
            for ps, pe in parts:
                if be <= ps or pe <= bs:
                    nxt.append((ps, pe))
                    continue
                if ps < bs:
                    nxt.append((ps, bs))
                if be < pe:
                    nxt.append((be, pe))
            parts = nxt
        out.extend(p for p in parts if p[1] > p[0])
    return out


def _circuit(
    m: cp_model.CpModel,
    problem: Problem,
    k: str,
    items: list[tuple[str, cp_model.IntervalVar, cp_model.IntVar | int]],
    start: dict[str, cp_model.IntVar],
    end: dict[str, cp_model.IntVar],
    setup: dict[str, cp_model.IntVar],
    fixed: dict[str, Assignment],
) -> list[tuple[int, int, cp_model.IntVar]]:
    """Sequence of a machine with changeovers as a circuit through a depot node 0.

    Operations pinned in time (started, or fixed by a re-plan) keep their order, so
    between two of them only the arc to the next pinned one can exist; dropping the
    others keeps a re-plan's model small enough to solve in well under a second.
    """
    mc = problem.machines[k]
    pinned = {o: problem.frozen[o].start for o, _, _ in items if o in problem.frozen}
    pinned.update({o: fixed[o].start for o, _, _ in items if o in fixed and fixed[o].machine == k})
    chain = sorted(pinned, key=lambda o: (pinned[o], o))
    next_pinned = dict(itertools.pairwise(chain))
    first_pinned = chain[0] if chain else None
    last_pinned = chain[-1] if chain else None
    arcs: list[tuple[int, int, cp_model.IntVar]] = []
    node = {o: i + 1 for i, (o, _, _) in enumerate(items)}
    fam = {o: problem.ops[o].family for o, _, _ in items}
    empty = m.new_bool_var(f"empty_{k}")
    arcs.append((0, 0, empty))
    for _o, _itv, lit in items:
        if isinstance(lit, int):
            m.add(empty == 0)
        else:
            m.add_implication(empty, ~lit)
            arcs.append((node[_o], node[_o], ~lit))
    for o, _, _ in items:
        if o not in pinned or o == first_pinned:
            first = m.new_bool_var(f"f_{k}_{o}")
            arcs.append((0, node[o], first))
            if o not in problem.frozen:
                m.add(setup[o] == mc.setup(mc.initial_family, fam[o])).only_enforce_if(first)
        if o not in pinned or o == last_pinned:
            last = m.new_bool_var(f"l_{k}_{o}")
            arcs.append((node[o], 0, last))
    for i, _, _ in items:
        for j, _, _ in items:
            if i == j or (i in pinned and j in pinned and next_pinned.get(i) != j):
                continue
            lit = m.new_bool_var(f"a_{k}_{i}_{j}")
            arcs.append((node[i], node[j], lit))
            if j not in problem.frozen:
                m.add(setup[j] == mc.setup(fam[i], fam[j])).only_enforce_if(lit)
                m.add(start[j] - setup[j] >= end[i]).only_enforce_if(lit)
            else:
                m.add(start[j] >= end[i]).only_enforce_if(lit)
    m.add_circuit(arcs)
    return arcs


def _add_hint(
    m: cp_model.CpModel,
    problem: Problem,
    hint: Plan,
    start: dict[str, cp_model.IntVar],
    end: dict[str, cp_model.IntVar],
    setup: dict[str, cp_model.IntVar],
    lits: dict[str, dict[str, cp_model.IntVar | int]],
    arcs_by_machine: dict[str, list[tuple[int, int, cp_model.IntVar]]],
    tard: dict[str, cp_model.IntVar],
    cmax: cp_model.IntVar,
) -> None:
    """Hint every decision of a known-feasible plan, arcs included, so CP-SAT can take
    it as its first solution instead of repairing a partial one."""
    asg = hint.assignments
    for o, a in asg.items():
        if o not in start or o in problem.frozen:
            continue
        m.add_hint(start[o], a.start)
        m.add_hint(end[o], a.end)
        if o in setup:
            m.add_hint(setup[o], a.setup)
        for k, lit in lits[o].items():
            if not isinstance(lit, int):
                m.add_hint(lit, k == a.machine)
    seqs = hint.by_machine()
    for k, arcs in arcs_by_machine.items():
        order = [a.op_id for a in seqs.get(k, [])]
        items = [o for o in problem.ops if k in lits.get(o, {})]
        node = {o: i + 1 for i, o in enumerate(items)}
        chain = [0, *(node[o] for o in order if o in node), 0]
        used = set(itertools.pairwise(chain))
        present = {node[o] for o in order if o in node}
        for i, j, lit in arcs:
            if i == j == 0:
                m.add_hint(lit, not present)
            elif i != j:
                m.add_hint(lit, (i, j) in used)
    for j, t in tard.items():
        job = next(x for x in problem.jobs if x.id == j)
        e = hint.job_end(problem, j)
        if e is not None and job.due is not None:
            m.add_hint(t, max(0, e - job.due))
    m.add_hint(cmax, hint.makespan())
