"""CP-SAT and the dispatching heuristic on problems whose right answer is known."""

from __future__ import annotations

import itertools
import random

import pytest

from core.scheduling import (
    Assignment,
    Job,
    Machine,
    Objective,
    Operation,
    Problem,
    SolveOptions,
    dispatch,
    solve,
    violations,
)
from core.scheduling.planner import make_plan
from core.scheduling.synthetic import plant_problem

OPTS = {"time_limit": 5.0, "workers": 2}


def _single_machine(seed: int, n: int = 6) -> Problem:
    rng = random.Random(seed)
    fams = ["A", "B", "C"]
    setups = {(a, b): rng.randrange(2, 9) for a in fams for b in fams if a != b}
    m = Machine("M", setups=setups, unavailable=[(30, 38)], initial_family="A")
    jobs = [
        Job(f"J{i}", [Operation(f"J{i}.0", f"J{i}", {"M": rng.randrange(3, 12)},
                                family=rng.choice(fams))],
            release=rng.randrange(0, 20), due=rng.randrange(10, 50), weight=rng.randrange(1, 4))
        for i in range(n)
    ]
    return Problem(jobs, {"M": m})


def _brute_force_weighted_tardiness(p: Problem) -> int:
    """Best over all sequences, each run as early as possible (optimal for a regular
    objective once the sequence is fixed)."""
    m = p.machines["M"]
    best = None
    for perm in itertools.permutations(p.jobs):
        t, fam, total = 0, m.initial_family, 0
        for job in perm:
            op = job.operations[0]
            d = op.options["M"]
            s = m.setup(fam, op.family)
            t = max(t, job.release)
            while any(t < e and b < t + s + d for b, e in m.unavailable):
                t = next(e for b, e in m.unavailable if t < e and b < t + s + d)
            t += s + d
            fam = op.family
            total += job.weight * max(0, t - job.due)
        best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weighted_tardiness_matches_brute_force_with_setups_window_and_releases(
    seed: int,
) -> None:
    p = _single_machine(seed)
    heur = dispatch(p)
    plan = solve(p, SolveOptions(Objective.WEIGHTED_TARDINESS, **OPTS), hint=heur)
    assert violations(p, heur) == []
    assert violations(p, plan) == []
    assert plan.status == "optimal"
    expected = _brute_force_weighted_tardiness(p)
    assert plan.weighted_tardiness(p) == expected
    assert heur.weighted_tardiness(p) >= expected


def test_changeover_objective_groups_families() -> None:
    m = Machine("M", setups={("A", "B"): 10, ("B", "A"): 10}, initial_family="A")
    jobs = [Job(f"J{i}", [Operation(f"J{i}.0", f"J{i}", {"M": 5}, family="AB"[i % 2])])
            for i in range(6)]
    p = Problem(jobs, {"M": m})
    plan = make_plan(p, SolveOptions(Objective.CHANGEOVER, **OPTS))
    assert violations(p, plan) == []
    assert plan.total_setup() == 10  # A A A then one changeover, B B B
    seq = [p.ops[a.op_id].family for a in plan.by_machine()["M"]]
    assert seq == ["A", "A", "A", "B", "B", "B"]


def test_alternative_machines_are_both_used_for_makespan() -> None:
    ms = {"M1": Machine("M1"), "M2": Machine("M2")}
    jobs = [Job(f"J{i}", [Operation(f"J{i}.0", f"J{i}", {"M1": 10, "M2": 10})])
            for i in range(4)]
    p = Problem(jobs, ms)
    plan = make_plan(p, SolveOptions(Objective.MAKESPAN, **OPTS))
    assert violations(p, plan) == []
    assert plan.makespan() == 20
    assert {a.machine for a in plan.assignments.values()} == {"M1", "M2"}


def test_started_operations_and_extra_precedences_are_respected() -> None:
    ms = {"M1": Machine("M1"), "M2": Machine("M2")}
    jobs = [
        Job("SUB", [Operation("SUB.0", "SUB", {"M1": 10})]),
        Job("ASM", [Operation("ASM.0", "ASM", {"M2": 5})]),
        Job("X", [Operation("X.0", "X", {"M1": 4}), Operation("X.1", "X", {"M2": 4})]),
    ]
    frozen = {"X.0": Assignment("X.0", "M1", 0, 4)}
    p = Problem(jobs, ms, frozen=frozen, precedences=[("SUB.0", "ASM.0")], now=2)
    for plan in (dispatch(p), make_plan(p, SolveOptions(Objective.MAKESPAN, **OPTS))):
        assert violations(p, plan) == []
        assert plan.assignments["X.0"] == frozen["X.0"]
        assert plan.assignments["ASM.0"].start >= plan.assignments["SUB.0"].end
        assert plan.assignments["SUB.0"].start >= 4


@pytest.mark.parametrize("objective", list(Objective))
def test_heuristic_alone_is_feasible_on_plant_problems(objective: Objective) -> None:
    for seed in range(3):
        p = plant_problem(n_orders=30, n_machines=12, stages=3, seed=seed)
        plan = dispatch(p, objective)
        assert violations(p, plan) == []
        assert plan.status == "heuristic"


def test_solver_improves_on_heuristic_and_respects_windows_materials_releases() -> None:
    p = plant_problem(n_orders=12, n_machines=8, stages=2, seed=4)
    p.material_ready["RAW"] = 90
    heur = dispatch(p)
    plan = make_plan(p, SolveOptions(Objective.WEIGHTED_TARDINESS, time_limit=3.0, workers=2))
    assert violations(p, heur) == []
    assert violations(p, plan) == []
    assert plan.weighted_tardiness(p) <= heur.weighted_tardiness(p)
    for job in p.jobs:
        first = plan.assignments[job.operations[0].id]
        assert first.start - first.setup >= max(90, job.release)
    for a in plan.assignments.values():
        for s, e in p.machines[a.machine].unavailable:
            assert a.end <= s or a.start - a.setup >= e


def test_problem_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown machine"):
        Problem([Job("J", [Operation("J.0", "J", {"NOPE": 3})])], {"M": Machine("M")})
    with pytest.raises(ValueError, match="duplicate"):
        Problem([Job("J", [Operation("J.0", "J", {"M": 3}), Operation("J.0", "J", {"M": 1})])],
                {"M": Machine("M")})
    with pytest.raises(ValueError, match="no eligible"):
        Problem([Job("J", [Operation("J.0", "J", {})])], {"M": Machine("M")})


def test_overlapping_unavailable_windows_are_merged_not_infeasible() -> None:
    # Downtime reported inside a maintenance window, and a started operation caught by
    # a breakdown (its end pushed back by the downtime).
    m = Machine("M", unavailable=[(20, 40), (30, 60), (100, 110)])
    jobs = [Job(f"J{i}", [Operation(f"J{i}.0", f"J{i}", {"M": 15})]) for i in range(4)]
    frozen = {"J0.0": Assignment("J0.0", "M", 90, 115)}  # ran 90..105, paused 100..110
    p = Problem(jobs, {"M": m}, frozen=frozen, now=0)
    plan = make_plan(p, SolveOptions(Objective.MAKESPAN, **OPTS))
    assert plan.solver == "cp-sat"
    assert violations(p, plan) == []
    assert plan.makespan() == 115  # 0-15, then 60-75 and 75-90 after the merged window


def test_lot_streaming_lets_steps_overlap_and_the_checker_enforces_it() -> None:
    ms = {"M1": Machine("M1"), "M2": Machine("M2")}
    ops = [Operation("J.0", "J", {"M1": 40}), Operation("J.1", "J", {"M2": 20})]
    whole = Problem([Job("J", ops)], ms)
    streamed = Problem([Job("J", [Operation("J.0", "J", {"M1": 40}),
                                  Operation("J.1", "J", {"M2": 20})], transfer=0.25)], ms)
    opts = SolveOptions(Objective.MAKESPAN, **OPTS)
    assert make_plan(whole, opts).makespan() == 60
    for plan in (dispatch(streamed), make_plan(streamed, opts)):
        assert violations(streamed, plan) == []
        # Second step ends one lot (5) after the first: starts at 40 + 5 - 20 = 25.
        assert plan.assignments["J.1"].start == 25
        assert plan.makespan() == 45
    early = make_plan(streamed, opts)
    early.assignments["J.1"] = Assignment("J.1", "M2", 20, 40)
    assert any("lot streaming" in v for v in violations(streamed, early))
