"""The scheduling problem and its solution as plain dataclasses.

Times are integers in one unit chosen by whoever builds the problem (the store adapter
uses minutes since the plant epoch, JSSP instances their own abstract unit). Integers
because CP-SAT only reasons over integers, and so that the checker, the heuristic and the
solver agree exactly on what "overlaps" means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass
class Operation:
    """One routing step of a job; ``options`` maps each eligible machine to its duration."""

    id: str
    job_id: str
    options: dict[str, int]
    family: str = ""  # product family: what sequence-dependent setups are keyed on
    materials: tuple[str, ...] = ()  # material ids consumed when the operation starts
    earliest_start: int = 0  # own release on top of the job's (e.g. a batch arriving)

    def duration_on(self, machine: str) -> int:
        return self.options[machine]


@dataclass
class Job:
    """A production order: a chain of operations with release, due date and weight.

    ``transfer`` < 1 lets consecutive steps overlap (lot streaming): the order moves in
    transfer lots of that fraction of its quantity, so a step may start once the
    previous one has finished its first lot, and ends no earlier than one lot's worth
    after the previous step ends. 1.0 is the classic "whole order, then the next step".
    """

    id: str
    operations: list[Operation]
    release: int = 0
    due: int | None = None
    weight: int = 1
    product: str = ""
    transfer: float = 1.0


@dataclass
class Machine:
    """Equipment with its setup matrix and the intervals it cannot work in.

    ``setups[(from_family, to_family)]`` is the changeover; a missing pair means 0.
    ``initial_family`` is what is mounted before the first planned operation.
    """

    id: str
    setups: dict[tuple[str, str], int] = field(default_factory=dict)
    unavailable: list[tuple[int, int]] = field(default_factory=list)  # [start, end)
    initial_family: str = ""
    line: str = ""

    def setup(self, prev_family: str, next_family: str) -> int:
        if not prev_family or prev_family == next_family:
            return 0
        return self.setups.get((prev_family, next_family), 0)

    @property
    def has_setups(self) -> bool:
        return any(v > 0 for v in self.setups.values())


@dataclass(frozen=True)
class Assignment:
    """Where and when one operation runs; ``setup`` is the changeover right before it."""

    op_id: str
    machine: str
    start: int
    end: int
    setup: int = 0


@dataclass
class Problem:
    """Everything the solvers need. ``frozen`` operations (already started) are fixed.

    ``precedences`` adds (before, after) pairs on top of each job's own chain, e.g. an
    assembly waiting for two sub-orders. ``material_ready`` holds when each material is
    available; an operation consuming it cannot start earlier. ``now`` is the earliest
    start for anything not frozen.
    """

    jobs: list[Job]
    machines: dict[str, Machine]
    frozen: dict[str, Assignment] = field(default_factory=dict)
    precedences: list[tuple[str, str]] = field(default_factory=list)
    material_ready: dict[str, int] = field(default_factory=dict)
    now: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the lookups (and re-validate) after editing jobs or machines."""
        self.ops: dict[str, Operation] = {}
        self.job_of: dict[str, Job] = {}
        for job in self.jobs:
            for op in job.operations:
                if op.id in self.ops:
                    raise ValueError(f"duplicate operation id {op.id!r}")
                self.ops[op.id] = op
                self.job_of[op.id] = job
                for m, d in op.options.items():
                    if m not in self.machines:
                        raise ValueError(f"operation {op.id!r} names unknown machine {m!r}")
                    if d < 0:
                        raise ValueError(f"operation {op.id!r} has a negative duration on {m}")
                if not op.options:
                    raise ValueError(f"operation {op.id!r} has no eligible machine")
        for a, b in self.precedences:
            if a not in self.ops or b not in self.ops:
                raise ValueError(f"precedence ({a!r}, {b!r}) names an unknown operation")
        for op_id, asg in self.frozen.items():
            if op_id not in self.ops:
                raise ValueError(f"frozen operation {op_id!r} is not in the problem")
            if asg.machine not in self.ops[op_id].options:
                raise ValueError(f"frozen operation {op_id!r} is on ineligible {asg.machine}")

    def predecessors(self) -> dict[str, list[str]]:
        """Direct predecessors of every operation: its job chain plus extra precedences."""
        preds: dict[str, list[str]] = {op_id: [] for op_id in self.ops}
        for job in self.jobs:
            for a, b in zip(job.operations, job.operations[1:], strict=False):
                preds[b.id].append(a.id)
        for a, b in self.precedences:
            preds[b].append(a)
        return preds

    def overlaps(self, pred: str, op: str) -> bool:
        """Whether ``op`` may overlap its predecessor ``pred`` (same job, lot streaming)."""
        job = self.job_of[op]
        return job.transfer < 1.0 and self.job_of[pred] is job

    def lot_time(self, op_id: str, duration: int) -> int:
        """Time for one transfer lot of an operation that takes ``duration`` in all."""
        f = self.job_of[op_id].transfer
        return duration if f >= 1.0 else max(1, math.ceil(f * duration)) if duration else 0

    def min_start(self, pred: str, pred_asg: Assignment, op_id: str, machine: str) -> int:
        """Earliest start of ``op_id`` on ``machine`` that respects ``pred`` where it is."""
        if not self.overlaps(pred, op_id):
            return pred_asg.end
        d_pred = self.ops[pred].options.get(pred_asg.machine, pred_asg.end - pred_asg.start)
        d = self.ops[op_id].options[machine]
        return max(pred_asg.start + self.lot_time(pred, d_pred),
                   pred_asg.end + self.lot_time(op_id, d) - d)

    def successors(self) -> dict[str, list[str]]:
        succ: dict[str, list[str]] = {op_id: [] for op_id in self.ops}
        for b, ps in self.predecessors().items():
            for a in ps:
                succ[a].append(b)
        return succ

    def earliest(self, op_id: str) -> int:
        """Release from job, operation and materials; ``now`` for anything not frozen."""
        op = self.ops[op_id]
        t = max(self.job_of[op_id].release, op.earliest_start, self.now)
        for mat in op.materials:
            t = max(t, self.material_ready.get(mat, 0))
        return t

    def horizon(self) -> int:
        """An upper bound on any sensible end time (serial schedule of everything)."""
        total = max([self.now, *(j.release for j in self.jobs)])
        total = max([total, *(o.earliest_start for o in self.ops.values())])
        total = max([total, *self.material_ready.values()])
        total = max([total, *(a.end for a in self.frozen.values())])
        max_setup = max(
            [0, *(v for m in self.machines.values() for v in m.setups.values())]
        )
        for op in self.ops.values():
            total += max(op.options.values()) + max_setup
        for m in self.machines.values():
            for s, e in m.unavailable:
                total = max(total, e) + (e - s)
        return total


class Objective(StrEnum):
    WEIGHTED_TARDINESS = "tardiness"
    MAKESPAN = "makespan"
    CHANGEOVER = "changeover"


@dataclass
class Plan:
    """A complete schedule: one assignment per operation, plus how it was obtained."""

    assignments: dict[str, Assignment]
    solver: str = ""
    status: str = ""  # optimal / feasible / heuristic / infeasible
    objective: float | None = None
    bound: float | None = None
    solve_seconds: float = 0.0  # wall time of the whole call, model building included
    search_seconds: float = 0.0  # of which the solver's own search
    unscheduled: list[str] = field(default_factory=list)  # job ids left out (e.g. held)

    def makespan(self) -> int:
        return max((a.end for a in self.assignments.values()), default=0)

    def job_end(self, problem: Problem, job_id: str) -> int | None:
        job = next(j for j in problem.jobs if j.id == job_id)
        ends = [self.assignments[o.id].end for o in job.operations if o.id in self.assignments]
        return max(ends) if ends else None

    def tardiness(self, problem: Problem) -> dict[str, int]:
        """Tardiness per job that has a due date (0 when on time)."""
        out: dict[str, int] = {}
        for job in problem.jobs:
            if job.due is None or job.id in self.unscheduled:
                continue
            end = self.job_end(problem, job.id)
            if end is not None:
                out[job.id] = max(0, end - job.due)
        return out

    def weighted_tardiness(self, problem: Problem) -> int:
        weights = {j.id: j.weight for j in problem.jobs}
        return sum(weights[j] * t for j, t in self.tardiness(problem).items())

    def total_setup(self) -> int:
        return sum(a.setup for a in self.assignments.values())

    def by_machine(self) -> dict[str, list[Assignment]]:
        """Each machine's operations in start order: its dispatch list."""
        out: dict[str, list[Assignment]] = {}
        for a in self.assignments.values():
            out.setdefault(a.machine, []).append(a)
        for lst in out.values():
            lst.sort(key=lambda a: (a.start, a.end, a.op_id))
        return out

    def score(self, problem: Problem, objective: Objective) -> int:
        if objective is Objective.MAKESPAN:
            return self.makespan()
        if objective is Objective.CHANGEOVER:
            return self.total_setup()
        return self.weighted_tardiness(problem)
