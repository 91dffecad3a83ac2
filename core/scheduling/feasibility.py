"""Independent check that a plan obeys every rule of its problem.

Kept apart from the solvers on purpose: the CP-SAT model and the heuristic each encode
the rules their own way, and this is the one reading they are both tested against.
"""

from __future__ import annotations

from core.scheduling.problem import Plan, Problem


def violations(problem: Problem, plan: Plan) -> list[str]:
    """Every broken rule in plain words; an empty list means the plan is feasible."""
    out: list[str] = []
    asg = plan.assignments
    # Operations of jobs the plan leaves out (e.g. a held lot) are not required.
    skipped = {
        o.id
        for j in problem.jobs
        if j.id in plan.unscheduled
        for o in j.operations
        if o.id not in asg
    }
    for op_id, op in problem.ops.items():
        if op_id in skipped:
            continue
        a = asg.get(op_id)
        if a is None:
            out.append(f"{op_id}: not scheduled")
            continue
        if a.machine not in op.options:
            out.append(f"{op_id}: machine {a.machine} is not eligible")
            continue
        if op_id not in problem.frozen and a.end - a.start != op.options[a.machine]:
            out.append(
                f"{op_id}: runs {a.end - a.start} on {a.machine}, needs {op.options[a.machine]}"
            )
        if a.setup < 0:
            out.append(f"{op_id}: negative setup")
        frozen = problem.frozen.get(op_id)
        if frozen is not None:
            if (frozen.machine, frozen.start, frozen.end) != (a.machine, a.start, a.end):
                out.append(f"{op_id}: started operation was moved")
        elif a.start - a.setup < problem.earliest(op_id):
            out.append(
                f"{op_id}: starts at {a.start - a.setup} (setup included) before its release "
                f"{problem.earliest(op_id)}"
            )
    for op_id, ps in problem.predecessors().items():
        if op_id not in asg or op_id in skipped:
            continue
        for p in ps:
            if p in skipped:
                out.append(f"{op_id}: scheduled although predecessor {p} is not")
            elif p in asg and asg[op_id].machine in problem.ops[op_id].options:
                need = problem.min_start(p, asg[p], op_id, asg[op_id].machine)
                if asg[op_id].start < need:
                    how = "lot streaming after" if problem.overlaps(p, op_id) else "ends"
                    out.append(f"{op_id}: starts at {asg[op_id].start} before {p} allows "
                               f"({how}: {need})")
    for m_id, seq in plan.by_machine().items():
        machine = problem.machines.get(m_id)
        if machine is None:
            out.append(f"unknown machine {m_id}")
            continue
        prev_family = machine.initial_family
        prev_end: int | None = None
        prev_id = ""
        for a in seq:
            if a.op_id not in problem.ops:
                out.append(f"{a.op_id}: not an operation of the problem")
                continue
            fam = problem.ops[a.op_id].family
            need = machine.setup(prev_family, fam)
            frozen = a.op_id in problem.frozen
            if a.setup < need and not frozen:
                out.append(
                    f"{a.op_id}: changeover on {m_id} from {prev_family or '-'} to {fam} "
                    f"needs {need}, plan has {a.setup}"
                )
            if prev_end is not None and a.start - a.setup < prev_end:
                out.append(
                    f"{a.op_id}: overlaps {prev_id} on {m_id} (setup included)"
                )
            if not frozen:
                for s, e in machine.unavailable:
                    if a.start - a.setup < e and s < a.end:
                        out.append(
                            f"{a.op_id}: on {m_id} during unavailable [{s}, {e})"
                        )
            prev_family, prev_end, prev_id = fam, a.end, a.op_id
    return out


def check(problem: Problem, plan: Plan) -> None:
    """Raise ValueError listing the violations, if any."""
    bad = violations(problem, plan)
    if bad:
        more = f" (+{len(bad) - 20} more)" if len(bad) > 20 else ""
        raise ValueError("infeasible plan: " + "; ".join(bad[:20]) + more)
