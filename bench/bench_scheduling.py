"""Scheduling benchmark: JSSP gap at a time limit, and re-plan latency on a plant.

    python -m bench scheduling [--time-limit 10] [--names ft10,la01] [--runs 7] [--json]

Baselines measured in the same run: the dispatching heuristic's makespan gap beside
CP-SAT's, and the heuristic's re-plan time and tardiness beside ``replan``'s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict

from core.scheduling import jssp
from core.scheduling.benchmark import mean_gap, run_jssp, run_replan
from core.scheduling.cpsat import default_workers


def _fmt(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench scheduling", description=__doc__.splitlines()[0])
    ap.add_argument("--names", default=",".join(jssp.DEFAULT_BENCH))
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per JSSP instance")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--runs", type=int, default=7, help="re-plan runs (median reported)")
    ap.add_argument("--replan-limit", type=float, default=1.0, help="re-plan budget, seconds")
    ap.add_argument("--skip-jssp", action="store_true")
    ap.add_argument("--skip-replan", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    workers = args.workers or default_workers()
    report: dict = {"workers": workers}
    say = (lambda *a: None) if args.json else print
    if not args.skip_jssp:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
        say(f"JSSP, CP-SAT {args.time_limit:g} s per instance, {workers} workers")
        say(f"{'instance':9} {'size':6} {'opt':>5} {'cp-sat':>6} {'gap%':>6} "
            f"{'status':8} {'heur':>5} {'gap%':>6}")
        results = run_jssp(names, args.time_limit, workers, progress=lambda r: say(
            f"{r.name:9} {r.size:6} {r.optimum or '-':>5} {r.makespan:>6} "
            f"{_fmt(r.gap_pct):>6} {r.status:8} {r.heuristic_makespan:>5} "
            f"{_fmt(r.heuristic_gap_pct):>6}" + ("" if r.feasible else "  INFEASIBLE")))
        report["jssp"] = {
            "time_limit": args.time_limit,
            "instances": [r.as_dict() for r in results],
            "mean_gap_pct": mean_gap(results),
            "heuristic_mean_gap_pct": mean_gap(results, heuristic=True),
            "optimal": sum(r.status == "optimal" for r in results),
        }
        say(f"mean gap: CP-SAT {_fmt(mean_gap(results))} % "
            f"(target <= 1 %), heuristic baseline {_fmt(mean_gap(results, True))} %; "
            f"{report['jssp']['optimal']}/{len(results)} proven optimal")
    if not args.skip_replan:
        base, runs = run_replan(runs=args.runs, time_limit=args.replan_limit, workers=workers)
        med = statistics.median(r.seconds for r in runs)
        hmed = statistics.median(r.heuristic_seconds for r in runs)
        report["replan"] = {
            **base, "budget": args.replan_limit, "median_seconds": med,
            "heuristic_median_seconds": hmed, "runs": [asdict(r) for r in runs],
        }
        say(f"\nRe-plan: {base['orders']} orders x {base['machines']} machines with "
            f"changeovers, {base['operations']} operations; base plan weighted tardiness "
            f"{base['base_tardiness']} (heuristic {base['base_heuristic_tardiness']})")
        say(f"{'machine':8} {'at':>5} {'sec':>6} {'heur s':>7} {'WT before':>9} "
            f"{'WT after':>8} {'heur WT':>7} {'moved':>5} {'aff':>4} {'unaff mv':>8} strategy")
        for r in runs:
            say(f"{r.machine:8} {r.at:>5} {r.seconds:>6.3f} {r.heuristic_seconds:>7.4f} "
                f"{r.tardiness_before:>9} {r.tardiness_after:>8} {r.heuristic_tardiness_after:>7} "
                f"{r.moved_orders:>5} {r.affected_ops:>4} {r.unaffected_moved:>8} {r.strategy}"
                + ("" if r.feasible else "  INFEASIBLE"))
        say(f"median re-plan {med:.3f} s (target <= 1 s) vs heuristic alone {hmed:.4f} s")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
