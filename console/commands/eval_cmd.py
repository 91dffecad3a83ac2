"""`loopline eval`: the closed loop's A/B on the twin — KPIs off and on, side by side."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from console.commands.common import UserError
from console.commands.output import make_console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="A/B of the closed loop on the twin: the same seed and "
                       "faults with the loop off and on; KPIs side by side")
    p.add_argument("--days", type=float, default=7.0, help="simulated days per arm (default 7)")
    p.add_argument("--seed", type=int, default=42, help="twin seed, the same for both arms")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run the A/B on N seeds (seed, seed+1, ...) and report each KPI's "
                   "mean paired difference with its 95 %% t-interval")
    p.add_argument("--scenario", default="default", metavar="NAME",
                   help="plant scenario from data/scenarios/ (default, loaded) or a path "
                   "to a scenario .toml")
    p.add_argument("--report", metavar="FILE.html", default=None,
                   help="also write the result as an HTML report with charts")
    p.add_argument("--speed", type=float, default=1800.0,
                   help="twin speed, 1..3600 (default 1800: 7 days in ~6 min per arm)")
    p.add_argument("--start", metavar="ISO", default="2026-01-05T06:00:00Z",
                   help="twin start time, the same for both arms")
    p.add_argument("--inject", action="append", default=[], metavar="KIND:EQUIPMENT@T[~F]",
                   help="extra fault for both arms, e.g. bearing:A-LATHE1@20h")
    p.add_argument("--faults-per-day", type=float, help="random fault rate of the plant "
                   "(default: [simulator] random_faults_per_day)")
    p.add_argument("--workdir", metavar="DIR", default=None,
                   help="where the arms' stores and truth logs go (default: data/eval)")
    p.add_argument("--ml", action="store_true", help="also run the ML scoring jobs")
    p.add_argument("--models", metavar="DIR", default=None,
                   help="with --ml: a model registry (e.g. data/models after `loopline "
                   "train` on another seed's history) copied into each arm")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=eval_cmd)


def eval_cmd(args: argparse.Namespace) -> int:
    from core.config import load_config
    from runtime.evaluation import EvalOptions, evaluate
    from runtime.host import RuntimeError_
    from sim.args import SimUsageError, parse_inject

    if not 1 <= args.speed <= 3600:
        raise UserError(f"--speed {args.speed:g} is out of range 1..3600")
    if not 0 < args.days <= 60:
        raise UserError(f"--days {args.days:g}: give a number of days between 0 and 60")
    if not 1 <= args.seeds <= 50:
        raise UserError(f"--seeds {args.seeds}: give a number of seeds between 1 and 50")
    if args.report and not args.report.lower().endswith((".html", ".htm")):
        raise UserError(f"--report {args.report}: the report is HTML; name it FILE.html")
    try:
        for spec in args.inject:
            parse_inject(spec)
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    except SimUsageError as e:
        raise UserError(str(e)) from None
    except ValueError:
        raise UserError(f"bad --start {args.start!r}: use ISO-8601, e.g. "
                        "2026-01-05T06:00:00Z") from None
    models = Path(args.models) if args.models else None
    if models is not None and not (models / "manifest.json").is_file():
        raise UserError(f"--models {models}: no model registry there (manifest.json); "
                        "train one with `loopline train`")
    if models is not None and not args.ml:
        raise UserError("--models needs --ml (the models only score when ML runs)")
    loaded = load_config(args.config)
    from runtime.scenarios import ScenarioError, find_scenario, load_scenario
    try:
        load_scenario(find_scenario(args.scenario, loaded.base_dir))
    except ScenarioError as e:
        raise UserError(str(e)) from None
    workdir = Path(args.workdir) if args.workdir else loaded.resolve("data/eval")
    opts = EvalOptions(days=args.days, seed=args.seed, speed=args.speed, start=start,
                       inject=list(args.inject), faults_per_day=args.faults_per_day,
                       workdir=workdir, ml=args.ml, models=models, scenario=args.scenario,
                       seeds=args.seeds)
    progress = _progress() if sys.stderr.isatty() and not args.json else None
    try:
        res = asyncio.run(evaluate(loaded, opts, log=progress))
    except RuntimeError_ as e:
        raise UserError(str(e)) from None
    if args.report:
        from runtime.eval_report import write_report
        write_report(res, Path(args.report))
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        _print_table(res)
        if args.report:
            print(f"report written to {args.report}")
    return 0


def _progress() -> Any:
    last: dict[str, str] = {}

    def log(arm: str, now: datetime, stats: dict[str, Any]) -> None:
        stamp = now.strftime("%Y-%m-%d %H:%M")
        if last.get(arm) != stamp[:13]:
            last[arm] = stamp[:13]
            print(f"\r  loop {arm:3}  plant {stamp}  samples {stats.get('samples', 0):,}",
                  end="", file=sys.stderr, flush=True)

    return log


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "pct":
        return f"{100 * v:.1f} %"
    if kind == "int":
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def _diff(v: float | None, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "pct":
        return f"{100 * v:+.1f} pts"
    return f"{v:+,.2f}" if kind == "num" else f"{v:+,.1f}"


def _print_table(res: dict[str, Any]) -> None:
    from rich.table import Table

    o = res["options"]
    n = o.get("seeds", 1)
    seeds = f"seed {o['seed']}" if n == 1 else f"{n} seeds from {o['seed']}"
    t = Table(title=f"closed loop A/B — scenario {o.get('scenario', 'default')}, "
                    f"{o['days']:g} days, {seeds}, speed {o['speed']:g}",
              title_justify="left")
    cols = ["KPI", "loop off", "loop on", "difference"]
    if n > 1:
        cols += ["95 % interval", "significant"]
    for col in cols:
        t.add_column(col, justify="left" if col == "KPI" else "right")
    for r in res["rows"]:
        diff = _diff(r["diff"], r["kind"])
        if r["relative"] is not None and r["kind"] != "pct":
            diff += f" ({100 * r['relative']:+.0f} %)"
        cells = [r["label"], _fmt(r["off"], r["kind"]), _fmt(r["on"], r["kind"]), diff]
        if n > 1:
            ci = "—" if r["lo"] is None else \
                f"{_diff(r['lo'], r['kind'])} … {_diff(r['hi'], r['kind'])}"
            sig = (r["verdict"] or "yes") if r["significant"] else "no"
            cells += [ci, sig]
        t.add_row(*cells)
    make_console().print(t)
    if n > 1:
        print("difference = mean over seeds of (loop on − loop off); the interval is the "
              "paired t-interval; significant: it excludes 0")
