"""One call for a full plan: the heuristic first, CP-SAT warm-started from it, the
heuristic again if the solver has nothing better within its time limit."""

from __future__ import annotations

from core.scheduling.compact import left_shift
from core.scheduling.cpsat import SolveOptions, solve
from core.scheduling.dispatch import dispatch
from core.scheduling.feasibility import violations
from core.scheduling.problem import Plan, Problem


def make_plan(problem: Problem, options: SolveOptions | None = None) -> Plan:
    opt = options or SolveOptions()
    heur = dispatch(problem, opt.objective)
    if opt.time_limit <= 0:
        return heur
    plan = solve(problem, opt, hint=heur)
    if not plan.assignments or violations(problem, plan):
        heur.solve_seconds += plan.solve_seconds
        return heur
    if plan.score(problem, opt.objective) > heur.score(problem, opt.objective):
        heur.solve_seconds += plan.solve_seconds
        return heur
    shifted = left_shift(problem, plan)
    if violations(problem, shifted) or shifted.score(problem, opt.objective) > plan.score(
        problem, opt.objective
    ):
        return plan
    shifted.objective = float(shifted.score(problem, opt.objective))
    return shifted
