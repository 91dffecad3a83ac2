"""Measurements shared by `loopline plan bench` and bench/bench_scheduling.py."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from core.scheduling import jssp
from core.scheduling.cpsat import SolveOptions
from core.scheduling.dispatch import dispatch
from core.scheduling.feasibility import violations
from core.scheduling.planner import make_plan
from core.scheduling.problem import Objective
from core.scheduling.replan import EquipmentDown, apply_events, replan
from core.scheduling.synthetic import plant_problem


@dataclass
class JsspResult:
    name: str
    size: str
    optimum: int | None
    makespan: int
    gap_pct: float | None
    status: str
    seconds: float
    heuristic_makespan: int
    heuristic_gap_pct: float | None
    heuristic_seconds: float
    feasible: bool

    def as_dict(self) -> dict:
        return asdict(self)


def run_jssp(
    names: list[str],
    time_limit: float = 10.0,
    workers: int | None = None,
    progress: Callable[[JsspResult], None] | None = None,
) -> list[JsspResult]:
    """Solve each instance; unknown names raise KeyError before any solving starts."""
    insts = [jssp.load(n) for n in names]
    out = []
    for inst in insts:
        problem, heur, plan = jssp.solve_instance(inst, time_limit=time_limit, workers=workers)
        best = inst.best_known
        res = JsspResult(
            inst.name, inst.size, best, plan.makespan(), jssp.gap(plan.makespan(), best),
            plan.status, plan.solve_seconds, heur.makespan(),
            jssp.gap(heur.makespan(), best), heur.solve_seconds,
            not violations(problem, plan) and not violations(problem, heur),
        )
        out.append(res)
        if progress is not None:
            progress(res)
    return out


def mean_gap(results: list[JsspResult], heuristic: bool = False) -> float | None:
    gaps = [r.heuristic_gap_pct if heuristic else r.gap_pct for r in results]
    vals = [g for g in gaps if g is not None]
    return statistics.fmean(vals) if vals else None


@dataclass
class ReplanRun:
    machine: str
    at: int
    seconds: float
    heuristic_seconds: float
    tardiness_before: int
    tardiness_after: int
    heuristic_tardiness_after: int
    moved_orders: int
    affected_ops: int
    unaffected_moved: int
    strategy: str
    feasible: bool


def run_replan(
    n_orders: int = 50,
    n_machines: int = 20,
    runs: int = 7,
    time_limit: float = 1.0,
    base_time_limit: float = 10.0,
    seed: int = 0,
    workers: int | None = None,
) -> tuple[dict, list[ReplanRun]]:
    """Breakdowns of different machines at different times on one plant-like problem;
    each answered by ``replan`` and, as the baseline, by the heuristic alone."""
    problem = plant_problem(n_orders=n_orders, n_machines=n_machines, seed=seed)
    t0 = time.perf_counter()
    base = make_plan(problem, SolveOptions(Objective.WEIGHTED_TARDINESS,
                                           time_limit=base_time_limit, workers=workers))
    base_info = {
        "orders": n_orders, "machines": n_machines, "operations": len(problem.ops),
        "base_seconds": time.perf_counter() - t0, "base_tardiness":
        base.weighted_tardiness(problem), "base_status": base.status,
        "base_heuristic_tardiness": dispatch(problem).weighted_tardiness(problem),
    }
    seqs = base.by_machine()
    machines = sorted(seqs, key=lambda k: (-len(seqs[k]), k))
    out = []
    for i in range(runs):
        m = machines[i % len(machines)]
        seq = seqs[m]
        a = seq[(len(seq) * (i + 1)) // (runs + 2)]
        at = a.start
        ev = EquipmentDown(m, at, 120)
        prop = replan(problem, base, [ev], now=at, time_limit=time_limit, workers=workers)
        h0 = time.perf_counter()
        new, _ = apply_events(problem, base, [ev], now=at)
        heur = dispatch(new)
        h_sec = time.perf_counter() - h0
        affected = set(prop.affected_ops)
        unaffected_moved = sum(
            1 for o, b in base.assignments.items()
            if o not in affected and o in prop.plan.assignments
            and (prop.plan.assignments[o].start, prop.plan.assignments[o].machine)
            != (b.start, b.machine)
        )
        out.append(ReplanRun(
            m, at, prop.solve_seconds, h_sec, prop.tardiness_before, prop.tardiness_after,
            heur.weighted_tardiness(new), len(prop.moved), len(affected), unaffected_moved,
            prop.strategy, not violations(new, prop.plan) and not violations(new, heur),
        ))
    return base_info, out
