"""`loopline holds|wo|lots|alarms [--json]`: the console's lists for scripts and shells.

Read-only against the store (safe beside a live runtime). ``lots --trace LOT`` prints
the genealogy both ways: the batches and parent lots it came from, the lots made from it.
"""

from __future__ import annotations

import argparse

from rich.tree import Tree

from console.commands.common import UserError
from console.commands.output import make_console, parse_statuses, print_json, table
from core import listing
from core.statuses import LOT_ALL, LOT_OPEN, WO_ALL, WO_OPEN


def register(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser("holds", help="quality holds (NCRs) and their lots")
    h.add_argument("--all", action="store_true", help="closed holds too")
    _json(h)
    h.set_defaults(func=holds)
    w = sub.add_parser("wo", help="maintenance work orders")
    w.add_argument("--status", metavar="S", help="all, or comma-separated of: "
                   f"{', '.join(WO_ALL)} (default: open, scheduled, in_progress)")
    _json(w)
    w.set_defaults(func=work_orders)
    lo = sub.add_parser("lots", help="lots; --trace LOT for its genealogy both ways")
    lo.add_argument("--status", metavar="S", help="all, or comma-separated of: "
                    f"{', '.join(LOT_ALL)} (default: planned, wip, held)")
    lo.add_argument("--trace", metavar="LOT", help="genealogy of a lot (or a material "
                    "batch): upstream batches and lots, downstream lots")
    _json(lo)
    lo.set_defaults(func=lots)
    a = sub.add_parser("alarms", help="alarms: active or unacknowledged")
    a.add_argument("--all", action="store_true", help="alarms back to normal too")
    _json(a)
    a.set_defaults(func=alarms)


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _statuses(text: str | None, known: tuple[str, ...],
              default: tuple[str, ...]) -> tuple[str, ...] | None:
    return default if text is None else parse_statuses(text, known, {"all": None})


def _show(args: argparse.Namespace, rows: list[dict], columns: list[tuple[str, str]],
          title: str) -> int:
    if args.json:
        print_json(rows)
    else:
        table(rows, columns, title)
    return 0


def holds(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store

    _, store = open_cli_store(args, read_only=True)
    try:
        rows = listing.holds(store, include_closed=args.all)
    finally:
        store.close()
    return _show(args, rows, [("id", "hold"), ("status", "status"), ("lots", "lots"),
                              ("reason", "reason"), ("disposition", "disposition"),
                              ("created_by", "by"), ("created_at", "since")],
                 "Holds" if args.all else "Open holds")


def work_orders(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store

    statuses = _statuses(args.status, WO_ALL, WO_OPEN)
    _, store = open_cli_store(args, read_only=True)
    try:
        rows = listing.work_orders(store, statuses)
    finally:
        store.close()
    return _show(args, rows, [("id", "work order"), ("kind", "kind"),
                              ("equipment_id", "equipment"), ("fault_mode", "fault"),
                              ("priority", "prio"), ("status", "status"),
                              ("window_start", "window"), ("created_at", "created")],
                 "Work orders")


def lots(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from core.genealogy import GenealogyError, trace

    statuses = _statuses(args.status, LOT_ALL, LOT_OPEN)
    _, store = open_cli_store(args, read_only=True)
    try:
        if args.trace:
            try:
                tr = trace(store, args.trace)
            except GenealogyError as e:
                raise UserError(str(e)) from None
        else:
            rows = listing.lots(store, statuses)
    finally:
        store.close()
    if not args.trace:
        return _show(args, rows, [("id", "lot"), ("order_id", "order"),
                                  ("product_id", "product"), ("quantity", "qty"),
                                  ("status", "status"), ("equipment_id", "at")], "Lots")
    if args.json:
        print_json(tr.as_dict())
        return 0
    console = make_console()

    def label(item: str, kind: str) -> str:
        lot = tr.lots.get(item)
        if kind == "batch" or lot is None:
            return f"[cyan]batch {item}[/]" if kind == "batch" else item
        style = "bold red" if lot["status"] == "held" else ""
        text = f"{item}  {lot['product_id']} ×{lot['quantity']}  {lot['status']}"
        return f"[{style}]{text}[/]" if style else text

    root_label = label(tr.root, tr.kind)
    up = Tree(f"[bold]made from[/] ← {root_label}")
    nodes_up = {tr.root: up}
    for link in tr.upstream:
        parent = nodes_up.get(link.child, up)
        node = parent.add(f"{label(link.parent, link.parent_kind)}  "
                          f"[dim]{link.relation} {link.quantity:g}[/]")
        nodes_up.setdefault(link.parent, node)
    down = Tree(f"[bold]went into[/] → {root_label}")
    nodes_down = {tr.root: down}
    for link in tr.downstream:
        parent = nodes_down.get(link.parent, down)
        node = parent.add(f"{label(link.child, 'lot')}  [dim]{link.relation} "
                          f"{link.quantity:g}[/]")
        nodes_down.setdefault(link.child, node)
    if tr.kind == "lot":
        console.print(up if tr.upstream else f"[bold]made from[/]: nothing recorded for "
                      f"{tr.root}")
    console.print(down if tr.downstream else f"[bold]went into[/]: nothing made from "
                  f"{tr.root} yet")
    return 0


def alarms(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store

    _, store = open_cli_store(args, read_only=True)
    try:
        rows = listing.alarms(store, include_normal=args.all)
    finally:
        store.close()
    return _show(args, rows, [("id", "id"), ("priority", "prio"), ("state", "state"),
                              ("acked", "acked"), ("source", "source"),
                              ("message", "message"), ("raised_at", "raised"),
                              ("shelved_until", "shelved until")], "Alarms")
