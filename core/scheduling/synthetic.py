"""Seeded plant-like problems for tests and benchmarks (not the default plant).

A flexible flow shop: ``stages`` stages of parallel machines, each operation eligible on
two or three machines of its stage, product families with sequence-dependent
changeovers, releases, due dates, weights and one maintenance window per machine.
"""

from __future__ import annotations

import random

from core.scheduling.problem import Job, Machine, Operation, Problem


def plant_problem(
    n_orders: int = 50,
    n_machines: int = 20,
    stages: int = 4,
    families: int = 4,
    seed: int = 0,
    windows: bool = True,
) -> Problem:
    """Times in minutes; due dates are tight enough that some orders are late."""
    rng = random.Random(seed)
    per_stage = max(1, n_machines // stages)
    fams = [f"F{i}" for i in range(families)]
    machines: dict[str, Machine] = {}
    for s in range(stages):
        for k in range(per_stage):
            mid = f"S{s}M{k}"
            setups = {
                (a, b): rng.randrange(10, 61, 5) for a in fams for b in fams if a != b
            }
            unavailable = []
            if windows:
                t = rng.randrange(240, 1200, 30)
                unavailable.append((t, t + 60))
            machines[mid] = Machine(mid, setups, unavailable, initial_family=rng.choice(fams),
                                    line=f"S{s}")
    jobs = []
    load = 0
    for j in range(n_orders):
        fam = rng.choice(fams)
        ops = []
        for s in range(stages):
            base = rng.randrange(20, 91, 5)
            k = rng.randint(2, min(3, per_stage))
            elig = rng.sample(range(per_stage), k)
            options = {f"S{s}M{e}": base + rng.randrange(0, 16, 5) for e in elig}
            ops.append(Operation(f"O{j:03d}.{s}", f"O{j:03d}", options, family=fam,
                                 materials=("RAW",) if s == 0 else ()))
            load += base
        release = rng.randrange(0, 240, 15)
        jobs.append(Job(f"O{j:03d}", ops, release=release, due=0,
                        weight=rng.choice([1, 1, 2, 3]), product=fam))
    # Due dates spread over the average machine load, so some orders end up late.
    span = load / max(1, n_machines) * 1.5
    for job in jobs:
        work = sum(min(o.options.values()) for o in job.operations)
        job.due = job.release + work + rng.randrange(0, int(span) + 1, 15)
    return Problem(jobs, machines, name=f"plant-{n_orders}x{n_machines}-s{seed}")
