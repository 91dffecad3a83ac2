"""The solver against job-shop instances with known optima."""

from __future__ import annotations

import pytest

from core.scheduling import jssp
from core.scheduling.feasibility import violations


def test_instances_are_packaged_with_known_values() -> None:
    names = jssp.names()
    for name in ["ft06", *jssp.DEFAULT_BENCH]:
        assert name in names
        inst = jssp.load(name)
        assert inst.optimum is not None
        n_machines = len(inst.machines[0])
        for drow, mrow in zip(inst.durations, inst.machines, strict=True):
            assert len(drow) == len(mrow) == n_machines
            assert sorted(mrow) == list(range(n_machines))  # each job visits each machine
    assert jssp.load("ft10").optimum == 930
    assert jssp.load("ft10").size == "10x10"


def test_unknown_instance_raises_key_error() -> None:
    with pytest.raises(KeyError):
        jssp.load("ft99")


def test_ft06_is_solved_to_its_optimum() -> None:
    inst = jssp.load("ft06")
    problem, heur, plan = jssp.solve_instance(inst, time_limit=5.0, workers=2)
    assert violations(problem, plan) == []
    assert violations(problem, heur) == []
    assert plan.makespan() == 55
    assert plan.status == "optimal"
    assert heur.makespan() >= 55  # the heuristic alone is feasible but need not be optimal
    assert jssp.gap(plan.makespan(), inst.optimum) == 0.0


@pytest.mark.parametrize("name", ["la01", "la05"])
def test_easy_lawrence_instances_reach_optimum(name: str) -> None:
    inst = jssp.load(name)
    problem, heur, plan = jssp.solve_instance(inst, time_limit=5.0, workers=2)
    assert violations(problem, plan) == []
    assert plan.makespan() == inst.optimum
    assert plan.makespan() <= heur.makespan()


def test_short_time_limit_still_returns_a_feasible_schedule_on_ft10() -> None:
    inst = jssp.load("ft10")
    problem, heur, plan = jssp.solve_instance(inst, time_limit=1.0, workers=2)
    assert violations(problem, plan) == []
    assert violations(problem, heur) == []
    assert inst.optimum <= plan.makespan() <= heur.makespan()
