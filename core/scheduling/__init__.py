"""Advanced planning and scheduling: orders on equipment, re-planned when the plant changes.

``problem`` holds the model, ``dispatch`` the instant heuristic, ``cpsat`` the solver,
``feasibility`` the independent checker, ``replan`` the event API the closed loop calls,
``jssp`` the benchmark instances, ``store_adapter`` the bridge to the store.
"""

from core.scheduling.cpsat import SolveOptions, solve
from core.scheduling.dispatch import dispatch
from core.scheduling.feasibility import check, violations
from core.scheduling.problem import Assignment, Job, Machine, Objective, Operation, Plan, Problem

__all__ = [
    "Assignment",
    "Job",
    "Machine",
    "Objective",
    "Operation",
    "Plan",
    "Problem",
    "SolveOptions",
    "check",
    "dispatch",
    "solve",
    "violations",
]
