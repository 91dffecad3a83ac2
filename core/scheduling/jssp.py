"""Classic job-shop benchmark instances (Fisher–Thompson, Lawrence, ABZ, ORB).

They validate the solver against known optima; see data/README.md for the source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from core.scheduling.cpsat import SolveOptions, solve
from core.scheduling.dispatch import dispatch
from core.scheduling.problem import Job, Machine, Objective, Operation, Plan, Problem

DEFAULT_BENCH = ["ft10", "ft20", *(f"la{i:02d}" for i in range(1, 21))]


@dataclass(frozen=True)
class Instance:
    name: str
    durations: list[list[int]]
    machines: list[list[int]]
    optimum: int | None
    lower_bound: int | None
    upper_bound: int | None

    @property
    def best_known(self) -> int | None:
        return self.optimum if self.optimum is not None else self.upper_bound

    @property
    def size(self) -> str:
        return f"{len(self.durations)}x{len(self.durations[0]) if self.durations else 0}"


@cache
def _raw() -> dict[str, dict]:
    text = resources.files("core.scheduling").joinpath("data/jssp_instances.json").read_text()
    return json.loads(text)


def names() -> list[str]:
    return list(_raw())


def load(name: str) -> Instance:
    raw = _raw()
    if name not in raw:
        raise KeyError(name)
    d = raw[name]
    return Instance(
        name, d["durations"], d["machines"], d.get("optimum"), d.get("lower_bound"),
        d.get("upper_bound"),
    )


def to_problem(inst: Instance) -> Problem:
    n_machines = 1 + max(m for row in inst.machines for m in row)
    machines = {f"M{k}": Machine(f"M{k}") for k in range(n_machines)}
    jobs = []
    for j, (drow, mrow) in enumerate(zip(inst.durations, inst.machines, strict=True)):
        ops = [
            Operation(f"J{j}.{i}", f"J{j}", {f"M{mk}": d})
            for i, (d, mk) in enumerate(zip(drow, mrow, strict=True))
        ]
        jobs.append(Job(f"J{j}", ops))
    return Problem(jobs, machines, name=inst.name)


def gap(makespan: int | float | None, best: int | None) -> float | None:
    """Relative gap to the best known makespan, in percent."""
    if makespan is None or not best:
        return None
    return 100.0 * (makespan - best) / best


def solve_instance(
    inst: Instance, time_limit: float = 10.0, workers: int | None = None, seed: int = 0
) -> tuple[Problem, Plan, Plan]:
    """(problem, heuristic plan, CP-SAT plan) for one instance, minimising makespan.

    The CP-SAT model here is the classic disjunctive one: every operation has a single
    machine and there are no changeovers, so each machine is one ``AddNoOverlap``.
    """
    problem = to_problem(inst)
    heur = dispatch(problem, Objective.MAKESPAN)
    opts = SolveOptions(Objective.MAKESPAN, time_limit=time_limit, workers=workers, seed=seed)
    plan = solve(problem, opts, hint=heur)
    if not plan.assignments:
        plan = heur
    return problem, heur, plan
