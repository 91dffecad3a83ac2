"""`loopline plan`: the active production plan, re-planning, and the solver benchmark.

    loopline plan [--json] [--equipment ID]    the active plan (a first one is computed
                                                and activated on a plant that has none)
    loopline plan --replan [--time-limit S]     re-plan now from the store and activate it
    loopline plan bench [--names ft10,la01] [--time-limit S] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from console.commands.common import UserError
from console.commands.output import make_console
from core.clock import WallClock
from core.scheduling import jssp
from core.scheduling.problem import Objective
from core.store import StoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show the active production plan, re-plan, or "
                       "benchmark the scheduler")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--replan", action="store_true",
                   help="compute a plan now from the store and make it active")
    p.add_argument("--time-limit", type=float, default=5.0, metavar="S",
                   help="solver time limit in seconds (default 5)")
    p.add_argument("--objective", choices=[o.value for o in Objective],
                   default=Objective.WEIGHTED_TARDINESS.value,
                   help="what the solver minimises (default: weighted tardiness)")
    p.add_argument("--equipment", metavar="ID", help="show only this equipment's dispatch list")
    p.set_defaults(func=show)
    psub = p.add_subparsers(dest="plan_cmd", metavar="ACTION")
    b = psub.add_parser("bench", help="solve job-shop benchmark instances; print makespan, "
                        "known optimum and gap")
    b.add_argument("--names", default=",".join(jssp.DEFAULT_BENCH),
                   help="comma-separated instances (default: ft10, ft20, la01-la20); "
                   "'list' prints the available ones")
    b.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="seconds per instance (default 10)")
    b.add_argument("--workers", type=int, default=None, help="CP-SAT workers (default: cores)")
    b.add_argument("--json", action="store_true", help="print JSON for scripts")
    b.set_defaults(func=bench)


def _positive(value: float, what: str) -> None:

    if not value > 0:
        raise UserError(f"{what} must be positive (got {value:g})")


# ---------------------------------------------------------------- plan


def show(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from core.scheduling import service
    from core.scheduling.store_adapter import NoPlantEpoch, plan_items

    _positive(args.time_limit, "--time-limit")
    objective = Objective(args.objective)
    _, store = open_cli_store(args)
    now = WallClock().now()
    try:
        proposal = None
        if args.replan:
            result, prop = service.plan_now(store, now, time_limit=args.time_limit,
                                            objective=objective)
            note = "re-planned now and made the new plan active"
            if prop is not None:
                proposal = prop.summary()
        else:
            result = service.current_plan(store, now, time_limit=args.time_limit,
                                          objective=objective)
            note = result.note
        from core.scheduling.store_adapter import active_plan_row

        row = active_plan_row(store)
        assert row is not None
        items = plan_items(store, row.id)
    except (StoreError, NoPlantEpoch) as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    if args.equipment:
        known = {i["equipment_id"] for i in items}
        items = [i for i in items if i["equipment_id"] == args.equipment]
        if not items and args.equipment not in known:
            raise UserError(f"no equipment {args.equipment!r} in the plan; planned: "
                            + ", ".join(sorted(known)))
    metrics = json.loads(row.metrics or "{}")
    data: dict[str, Any] = {
        "plan": {"id": row.id, "status": row.status, "created_at": row.created_at.isoformat(),
                 "objective": row.objective, "reason": row.reason, "metrics": metrics},
        "computed": result.created, "note": note, "items": items,
    }
    if proposal:
        data["replan"] = proposal
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _render_plan(data, make_console())
    return 0


def _hm(ts: str) -> str:
    return ts[5:16].replace("T", " ")


def _render_plan(data: dict[str, Any], console: Console) -> None:
    p, m = data["plan"], data["plan"]["metrics"]
    if data["note"]:
        console.print(f"[yellow]{data['note']}[/]")
    if data.get("replan"):
        console.print(data["replan"])
    late = m.get("late_orders", [])
    console.print(
        f"[bold]Plan {p['id']}[/] ({p['status']}) · created {_hm(p['created_at'])} UTC · "
        f"objective {p['objective'] or '-'} · {m.get('solver', '?')} {m.get('status', '')}"
    )
    console.print(
        f"weighted tardiness {m.get('weighted_tardiness_min', '-')} min · "
        f"{len(late)} late orders{': ' + ', '.join(late) if late else ''} · "
        f"changeovers {m.get('changeover_min', '-')} min · "
        f"held {', '.join(m.get('held_orders', [])) or 'none'}"
    )
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
              title="Dispatch lists", title_justify="left", title_style="bold")
    wide = console.width >= 100
    cols = ["equipment", "#", "order", *(["product", "step"] if wide else []), "setup",
            "start", "end", "due", *(["status"] if wide else [])]
    for col in cols:
        t.add_column(col, justify="right" if col in ("#", "step", "setup") else "left",
                     no_wrap=True)
    prev = None
    for i in data["items"]:
        late_op = i["end"] > i["due_at"]
        due = _hm(i["due_at"])
        t.add_row(
            i["equipment_id"] if i["equipment_id"] != prev else "", str(i["seq"] + 1),
            i["order_id"], *([i["product_id"], str(i["step"])] if wide else []),
            f"{i['setup_min']:.0f}" if i["setup_min"] else "", _hm(i["start"]), _hm(i["end"]),
            f"[red]{due} late[/]" if late_op else due,
            *([i["operation_status"]] if wide else []),
        )
        prev = i["equipment_id"]
    console.print(t)


# ---------------------------------------------------------------- bench


def bench(args: argparse.Namespace) -> int:
    from core.scheduling.benchmark import mean_gap, run_jssp

    if args.names.strip() == "list":
        for n in jssp.names():
            inst = jssp.load(n)
            print(f"{n:8} {inst.size:7} best known {inst.best_known}")
        return 0
    _positive(args.time_limit, "--time-limit")
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    unknown = [n for n in names if n not in jssp.names()]
    if not names or unknown:
        raise UserError(f"unknown instance(s): {', '.join(unknown) or '(none given)'}; "
                        f"available: {', '.join(jssp.names())}")
    console = make_console()
    table = None
    if not args.json:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in ("instance", "size", "best", "makespan", "gap %", "status", "s",
                    "heuristic", "gap %"):
            table.add_column(col, justify="left" if col in ("instance", "size", "status")
                             else "right", no_wrap=True)
        console.print(f"JSSP benchmark: CP-SAT {args.time_limit:g} s per instance, "
                      "dispatching heuristic as baseline", highlight=False)

    def fmt(g: float | None) -> str:
        return "-" if g is None else f"{g:.2f}"

    def progress(r: Any) -> None:
        if not args.json:
            print(f"  {r.name}: {r.makespan} (best known {r.optimum})", file=sys.stderr)

    results = run_jssp(names, args.time_limit, args.workers, progress=progress)
    if args.json:
        print(json.dumps({
            "time_limit": args.time_limit, "instances": [r.as_dict() for r in results],
            "mean_gap_pct": mean_gap(results),
            "heuristic_mean_gap_pct": mean_gap(results, heuristic=True),
        }, indent=2))
        return 0
    assert table is not None
    for r in results:
        table.add_row(r.name, r.size, str(r.optimum or "-"), str(r.makespan), fmt(r.gap_pct),
                      r.status, f"{r.seconds:.1f}", str(r.heuristic_makespan),
                      fmt(r.heuristic_gap_pct))
    console.print(table)
    console.print(f"mean gap {fmt(mean_gap(results))} % (heuristic "
                  f"{fmt(mean_gap(results, heuristic=True))} %)", highlight=False)
    return 0
