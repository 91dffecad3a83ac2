"""`loopline report {oee,downtime,scrap,defects}`: the figures a plant manager asks for.

ISO 22400 OEE (core.oee definitions), downtime Pareto by reason code, scrap rate; per
line, equipment, shift or product. Vision defects (core.vision): a Pareto by defect
class, or inspected/rejected units by line, lot or shift. Rich tables on a terminal,
``--json`` for scripts, ``--plot FILE.svg`` for a bar chart. Computations live in core.reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from console.commands.common import UserError
from console.commands.output import add_range, print_json, table, time_range
from core.reports import DOWNTIME_STATES, GROUPS, LOSS_STATES

KINDS = ("oee", "downtime", "scrap", "defects")
DEFECT_GROUPS = ("class", "line", "lot", "shift")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="OEE, downtime Pareto, scrap rate or vision defects")
    p.add_argument("kind", choices=KINDS, help="which report")
    p.add_argument("--by", metavar="G",
                   help=f"group by: {', '.join(GROUPS)} (default line; plant = one total); "
                   f"defects: {', '.join(DEFECT_GROUPS)} (default class)")
    add_range(p)
    p.add_argument("--states", metavar="S", default=",".join(DOWNTIME_STATES),
                   help="downtime: states counted, comma-separated (default: the "
                   f"availability losses of report oee, {', '.join(DOWNTIME_STATES)}; "
                   f"all: {', '.join(LOSS_STATES)})")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--plot", metavar="FILE", help="also write an SVG bar chart")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from console.commands.common import audit_head, open_cli_store
    from core import reports

    since, until = time_range(args)
    if args.kind == "defects":
        return _defects(args, since, until)
    args.by = args.by or "line"
    if args.by not in GROUPS:
        raise UserError(f"report {args.kind} --by {args.by}: use one of {', '.join(GROUPS)}")
    states = tuple(s.strip() for s in args.states.split(",") if s.strip())
    bad = [s for s in states if s not in (*LOSS_STATES, "running", "unknown")]
    if bad or not states:
        raise UserError(f"unknown state {', '.join(bad) or repr(args.states)} in --states; "
                        f"use some of {', '.join(LOSS_STATES)}")
    if args.plot and not args.plot.lower().endswith(".svg"):
        raise UserError(f"--plot writes SVG: give a file ending in .svg (got {args.plot})")
    _, store = open_cli_store(args, read_only=True)
    try:
        start, end = reports.resolve_range(store, since, until)
        if args.kind == "oee":
            rows = reports.oee_rows(reports.oee_report(store, args.by, start, end))
        elif args.kind == "downtime":
            rows = reports.downtime_report(store, args.by, start, end, states)
        else:
            rows = reports.scrap_report(store, args.by, start, end)
        head = audit_head(store)
    except reports.ReportError as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    doc = {"report": args.kind, "by": args.by, "start": start.isoformat(),
           "end": end.isoformat(), "rows": rows, "audit_head": head}
    if args.kind == "downtime":
        doc["states"] = list(states)
    if args.plot:
        _plot(Path(args.plot), args.kind, args.by, rows, start, end)
    if args.json:
        print_json(doc)
        return 0
    title = (f"{args.kind.upper() if args.kind == 'oee' else args.kind.capitalize()} by "
             f"{args.by}, {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC")
    table(_pct(rows), COLUMNS[args.kind], title,
          empty=f"no time in {', '.join(states)}" if args.kind == "downtime" else "none")
    if args.kind == "downtime":
        left_out = [s for s in LOSS_STATES if s not in states]
        print(f"counted: {', '.join(states)}"
              + (f"; not counted: {', '.join(left_out)} (--states adds them; idle and "
                 "down_planned are not planned busy time)" if left_out else "")
              + ". Hours are machine-hours: a line sums its machines.")
    elif args.kind == "oee":
        print("PBT and APT are machine-hours: a line or the plant sums its machines' hours.")
    if args.plot:
        print(f"chart written to {args.plot}")
    if head:
        print(f"audit head: {head['hash']}:{head['seq']}")
    return 0


COLUMNS: dict[str, list[tuple[str, str]]] = {
    "oee": [("group", "group"), ("oee", "OEE %"), ("availability", "avail. %"),
            ("performance", "perf. %"), ("quality", "quality %"),
            ("planned_busy_h", "PBT machine-h"), ("run_h", "APT machine-h"),
            ("good", "good"), ("scrap", "scrap")],
    "downtime": [("group", "group"), ("reason", "reason"), ("state", "state"),
                 ("hours", "machine-h"),
                 ("stops", "stops"), ("share", "share %"), ("cumulative_share", "cum. %")],
    "scrap": [("group", "group"), ("produced", "produced"), ("good", "good"),
              ("scrap", "scrap"), ("scrap_rate", "scrap %")],
}
_PCT = ("oee", "availability", "performance", "quality", "share", "cumulative_share",
        "scrap_rate", "reject_rate")


def _defects(args: argparse.Namespace, since: Any, until: Any) -> int:
    """Vision defects: a Pareto by class, or inspected/rejected units per line, lot, shift."""
    from console.commands.common import audit_head, open_cli_store
    from core.vision import GROUPS as VISION_GROUPS
    from core.vision import defect_counts

    by = args.by or "class"
    if by not in DEFECT_GROUPS:
        raise UserError(f"report defects --by {by}: use one of {', '.join(DEFECT_GROUPS)}")
    if args.plot and not args.plot.lower().endswith(".svg"):
        raise UserError(f"--plot writes SVG: give a file ending in .svg (got {args.plot})")
    _, store = open_cli_store(args, read_only=True)
    try:
        df = defect_counts(store, by, since, until)  # type: ignore[arg-type]
        head = audit_head(store)
    finally:
        store.close()
    key = VISION_GROUPS[by]
    rows = [{"group": r.pop(key) or "-", **r} for r in df.to_dicts()]
    when = (f"{since:%Y-%m-%d %H:%M}" if since else "start") + " → " + (
        f"{until:%Y-%m-%d %H:%M} UTC" if until else "now")
    if args.plot:
        _plot_defects(Path(args.plot), by, rows, when)
    if args.json:
        print_json({"report": "defects", "by": by,
                    "start": since.isoformat() if since else None,
                    "end": until.isoformat() if until else None, "rows": rows,
                    "audit_head": head})
        return 0
    cols = list(DEFECT_COLUMNS["class" if by == "class" else "group"])
    if by != "class":
        cols[0] = ("group", by)
    table(_pct(rows), cols, f"Vision defects by {by}, {when}", empty="no inspections")
    if args.plot:
        print(f"chart written to {args.plot}")
    return 0


DEFECT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "class": [("group", "defect class"), ("defects", "defects"), ("units", "units"),
              ("share", "share %"), ("cumulative_share", "cum. %")],
    "group": [("group", "group"), ("inspected", "inspected"), ("rejected", "rejected"),
              ("reject_rate", "reject %"), ("defects", "defects"), ("top_class", "top class")],
}


def _plot_defects(path: Path, by: str, rows: list[dict[str, Any]], when: str) -> None:
    from core.svgchart import bar_chart

    if by == "class":
        svg = bar_chart(f"Defect Pareto by class, {when}", [r["group"] for r in rows],
                        [r["defects"] for r in rows], unit="", fmt="{:.0f}",
                        cumulative=[r["cumulative_share"] for r in rows])
    else:
        svg = bar_chart(f"Vision reject rate by {by}, {when}", [r["group"] for r in rows],
                        [100 * r["reject_rate"] for r in rows], unit=" %", fmt="{:.1f}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the chart to {path}: {e.strerror}") from None


def _pct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ratios as percentages with one decimal for the table (JSON keeps the ratios)."""
    return [{k: (f"{100 * v:.1f}" if k in _PCT and v is not None else
                 f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()}
            for r in rows]


def _plot(path: Path, kind: str, by: str, rows: list[dict[str, Any]], start: Any,
          end: Any) -> None:
    from core.svgchart import bar_chart

    when = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"
    if kind == "oee":
        svg = bar_chart(f"OEE by {by}, {when}", [r["group"] for r in rows],
                        [None if r["oee"] is None else 100 * r["oee"] for r in rows],
                        unit=" %")
    elif kind == "scrap":
        svg = bar_chart(f"Scrap rate by {by}, {when}", [r["group"] for r in rows],
                        [None if r["scrap_rate"] is None else 100 * r["scrap_rate"]
                         for r in rows], unit=" %", fmt="{:.2f}")
    else:
        labels = [r["reason"] if by == "plant" else f"{r['group']}: {r['reason']}"
                  for r in rows]
        svg = bar_chart(f"Downtime Pareto by reason ({by}), {when}", labels,
                        [r["hours"] for r in rows], unit=" h", fmt="{:.2f}",
                        cumulative=[r["cumulative_share"] for r in rows])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the chart to {path}: {e.strerror}") from None
