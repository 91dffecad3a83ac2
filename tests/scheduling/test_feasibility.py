"""The checker every other test relies on must catch each kind of broken rule."""

from __future__ import annotations

from dataclasses import replace

from core.scheduling import Assignment, Job, Machine, Operation, Plan, Problem, violations


def _problem() -> Problem:
    m1 = Machine("M1", setups={("A", "B"): 5}, unavailable=[(100, 110)], initial_family="A")
    m2 = Machine("M2")
    jobs = [
        Job("J1", [Operation("J1.1", "J1", {"M1": 10}, family="A"),
                   Operation("J1.2", "J1", {"M2": 10, "M1": 12}, family="A")]),
        Job("J2", [Operation("J2.1", "J2", {"M1": 10}, family="B", materials=("RAW",))],
            release=3),
    ]
    return Problem(jobs, {"M1": m1, "M2": m2}, material_ready={"RAW": 12})


def _good() -> Plan:
    return Plan({
        "J1.1": Assignment("J1.1", "M1", 0, 10),
        "J1.2": Assignment("J1.2", "M2", 10, 20),
        "J2.1": Assignment("J2.1", "M1", 17, 27, setup=5),
    })


def _with(plan: Plan, **changes: Assignment) -> Plan:
    return Plan({**plan.assignments, **changes})


def test_a_correct_plan_has_no_violations() -> None:
    assert violations(_problem(), _good()) == []


def test_each_broken_rule_is_reported() -> None:
    p, good = _problem(), _good()
    a = good.assignments
    cases = {
        "not scheduled": Plan({k: v for k, v in a.items() if k != "J1.2"}),
        "not eligible": _with(good, **{"J1.1": replace(a["J1.1"], machine="M2")}),
        "needs 10": _with(good, **{"J1.2": replace(a["J1.2"], end=18)}),
        "before J1.1 allows": _with(good, **{"J1.2": Assignment("J1.2", "M2", 5, 15)}),
        "changeover": _with(good, **{"J2.1": replace(a["J2.1"], setup=0)}),
        "overlaps": _with(good, **{"J2.1": Assignment("J2.1", "M1", 12, 22, setup=5)}),
        "unavailable": _with(good, **{"J2.1": Assignment("J2.1", "M1", 96, 106, setup=5)}),
    }
    # The release case: material arrives at 12, the changeover may not start before it.
    cases["release"] = _with(good, **{
        "J1.1": Assignment("J1.1", "M1", 0, 10),
        "J2.1": Assignment("J2.1", "M1", 16, 26, setup=5),
    })
    for needle, plan in cases.items():
        bad = violations(p, plan)
        if needle == "release":
            assert any("release" in v for v in bad), bad
        else:
            assert any(needle in v for v in bad), (needle, bad)


def test_setup_counts_towards_overlap_and_windows() -> None:
    p, good = _problem(), _good()
    after = _with(good, **{"J2.1": Assignment("J2.1", "M1", 115, 125, setup=5)})
    assert violations(p, after) == []
    # Processing starts after the window, but the changeover would run inside it.
    crossing = _with(good, **{"J2.1": Assignment("J2.1", "M1", 109, 119, setup=5)})
    assert any("unavailable" in v for v in violations(p, crossing))


def test_frozen_operation_must_not_move() -> None:
    p = _problem()
    p.frozen["J1.1"] = Assignment("J1.1", "M1", 0, 10)
    moved = _with(_good(), **{"J1.1": Assignment("J1.1", "M1", 1, 11)})
    assert any("started operation was moved" in v for v in violations(p, moved))


def test_unscheduled_jobs_are_allowed_only_when_declared() -> None:
    p, good = _problem(), _good()
    without = Plan({k: v for k, v in good.assignments.items() if k != "J2.1"})
    assert violations(p, without)
    without.unscheduled = ["J2"]
    assert violations(p, without) == []
