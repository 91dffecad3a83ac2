"""Re-planning after an event: feasible, stable, and honest about what changed."""

from __future__ import annotations

import pytest

from core.scheduling import Objective, Plan, Problem, SolveOptions, violations
from core.scheduling.planner import make_plan
from core.scheduling.replan import (
    BatchShort,
    EquipmentDown,
    LotHeld,
    affected_operations,
    apply_events,
    replan,
)
from core.scheduling.synthetic import plant_problem


@pytest.fixture(scope="module")
def base() -> tuple[Problem, Plan]:
    p = plant_problem(n_orders=16, n_machines=8, stages=2, seed=7)
    plan = make_plan(p, SolveOptions(Objective.WEIGHTED_TARDINESS, time_limit=2.0, workers=2))
    assert violations(p, plan) == []
    return p, plan


def _busiest(plan: Plan) -> str:
    seqs = plan.by_machine()
    return max(sorted(seqs), key=lambda k: len(seqs[k]))


def _running_at(plan: Plan, machine: str, t: int) -> str | None:
    return next((a.op_id for a in plan.by_machine()[machine] if a.start < t < a.end), None)


def test_breakdown_keeps_unaffected_operations_in_place(base: tuple[Problem, Plan]) -> None:
    p, plan = base
    m = _busiest(plan)
    seq = plan.by_machine()[m]
    t = seq[len(seq) // 3].start + 1  # in the middle of an operation: it is running
    running = _running_at(plan, m, t)
    assert running is not None
    ev = EquipmentDown(m, t, 90)
    # A high stability weight: nothing the event did not touch may move.
    prop = replan(p, plan, [ev], now=t, time_limit=3.0, stability_weight=10_000, workers=2)
    new = prop.problem
    assert violations(new, prop.plan) == []
    # The running operation is paused through the downtime, not moved.
    assert prop.plan.assignments[running].start == plan.assignments[running].start
    assert prop.plan.assignments[running].end == plan.assignments[running].end + 90
    # Started operations stay put.
    for o, a in plan.assignments.items():
        if a.start - a.setup < t:
            assert (prop.plan.assignments[o].start, prop.plan.assignments[o].machine) == (
                a.start, a.machine)
    affected = set(prop.affected_ops)
    assert affected, "the downtime must hit something"
    for o, a in plan.assignments.items():
        if o not in affected:
            assert (prop.plan.assignments[o].machine, prop.plan.assignments[o].start) == (
                a.machine, a.start), o
    # Nothing runs on the machine while it is down (setups included).
    for a in prop.plan.by_machine()[m]:
        if a.op_id != running:
            assert a.end <= t or a.start - a.setup >= t + 90
    # The proposal names the orders that move and the change in tardiness.
    moved_jobs = {c.job_id for c in prop.moved}
    assert moved_jobs == {p.job_of[o].id for o in affected
                          if (prop.plan.assignments[o].machine, prop.plan.assignments[o].start)
                          != (plan.assignments[o].machine, plan.assignments[o].start)}
    assert prop.tardiness_before == plan.weighted_tardiness(p)
    assert prop.tardiness_after == prop.plan.weighted_tardiness(new)
    assert prop.tardiness_delta == prop.tardiness_after - prop.tardiness_before
    assert {c.job_id for c in prop.at_risk} == {
        j for j, tard in prop.plan.tardiness(new).items() if tard > 0}


def test_default_stability_moves_few_unaffected_operations(base: tuple[Problem, Plan]) -> None:
    p, plan = base
    m = _busiest(plan)
    t = plan.by_machine()[m][1].start
    prop = replan(p, plan, [EquipmentDown(m, t, 120)], now=t, time_limit=2.0, workers=2)
    assert violations(prop.problem, prop.plan) == []
    affected = set(prop.affected_ops)
    unaffected = [o for o in plan.assignments if o not in affected]
    moved = [o for o in unaffected
             if prop.plan.assignments[o].start != plan.assignments[o].start]
    assert len(moved) <= len(unaffected) // 2


def test_affected_operations_include_job_successors(base: tuple[Problem, Plan]) -> None:
    p, plan = base
    m = _busiest(plan)
    first = plan.by_machine()[m][-1]
    ev = EquipmentDown(m, first.start - first.setup, first.end - first.start + first.setup)
    new, held = apply_events(p, plan, [ev], now=0)
    assert held == []
    affected = affected_operations(new, plan)
    assert first.op_id in affected
    job = p.job_of[first.op_id]
    idx = [o.id for o in job.operations].index(first.op_id)
    assert {o.id for o in job.operations[idx:]} <= affected


def test_held_lot_leaves_the_plan_and_others_stay_feasible(base: tuple[Problem, Plan]) -> None:
    p, plan = base
    job = p.jobs[3]
    prop = replan(p, plan, [LotHeld(job.id)], now=0, time_limit=1.0, workers=2)
    assert prop.held == [job.id]
    assert job.id in prop.plan.unscheduled
    assert all(o.id not in prop.plan.assignments for o in job.operations)
    assert violations(prop.problem, prop.plan) == []
    # The comparison leaves the held order out on both sides.
    held_wt = job.weight * plan.tardiness(p).get(job.id, 0)
    assert prop.tardiness_before == plan.weighted_tardiness(p) - held_wt
    assert prop.tardiness_after == prop.plan.weighted_tardiness(prop.problem)
    others = {o.id for j in p.jobs if j.id != job.id for o in j.operations}
    assert others <= set(prop.plan.assignments)


def test_lot_held_until_and_batch_short_delay_what_they_touch(base: tuple[Problem, Plan]) -> None:
    p, plan = base
    job = p.jobs[0]
    prop = replan(p, plan, [LotHeld(job.id, until=500)], now=0, time_limit=1.0, workers=2)
    assert violations(prop.problem, prop.plan) == []
    assert min(prop.plan.assignments[o.id].start for o in job.operations) >= 500
    prop = replan(p, plan, [BatchShort("RAW", 300)], now=0, time_limit=1.0, workers=2)
    assert violations(prop.problem, prop.plan) == []
    for j in p.jobs:
        a = prop.plan.assignments[j.operations[0].id]
        assert a.start - a.setup >= 300  # every first step consumes RAW


def test_bad_events_are_refused(base: tuple[Problem, Plan]) -> None:
    p, plan = base
    with pytest.raises(ValueError, match="unknown equipment"):
        replan(p, plan, [EquipmentDown("NOPE", 0, 10)])
    with pytest.raises(ValueError, match="unknown order"):
        replan(p, plan, [LotHeld("NOPE")])
    with pytest.raises(ValueError, match="positive"):
        replan(p, plan, [EquipmentDown(_busiest(plan), 0, 0)])


def test_right_shift_repair_keeps_machine_sequences(base: tuple[Problem, Plan]) -> None:
    from core.scheduling.compact import left_shift

    p, plan = base
    m = _busiest(plan)
    t = plan.by_machine()[m][0].end
    new, _ = apply_events(p, plan, [EquipmentDown(m, t, 200)], now=t)
    repaired = left_shift(new, plan, repair=True)
    assert violations(new, repaired) == []
    before = {k: [a.op_id for a in seq] for k, seq in plan.by_machine().items()}
    after = {k: [a.op_id for a in seq] for k, seq in repaired.by_machine().items()}
    assert after == before
    # Nothing moves earlier than it was planned: a repair only pushes work back.
    assert all(repaired.assignments[o].start >= a.start for o, a in plan.assignments.items())


@pytest.mark.parametrize("seed", [11, 12])
def test_every_proposal_is_feasible_for_random_events(seed: int) -> None:
    import random

    rng = random.Random(seed)
    p = plant_problem(n_orders=10, n_machines=6, stages=2, seed=seed)
    plan = make_plan(p, SolveOptions(Objective.WEIGHTED_TARDINESS, time_limit=1.0, workers=2))
    for _ in range(3):
        m = rng.choice(sorted(p.machines))
        t = rng.randrange(0, max(1, plan.makespan()))
        events = [EquipmentDown(m, t, rng.randrange(30, 240))]
        if rng.random() < 0.5:
            events.append(BatchShort("RAW", t + rng.randrange(0, 120)))
        prop = replan(p, plan, events, now=t, time_limit=0.5, workers=2)
        assert violations(prop.problem, prop.plan) == [], events
