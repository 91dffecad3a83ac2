"""`loopline status [--json]`: the plant as the store sees it right now.

Works on a fresh clone: the store is created and master data loaded on first use.
``--json`` prints one JSON document for scripts; otherwise Rich tables.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from console.commands.common import UserError, open_cli_store
from console.commands.output import make_console
from core.clock import WallClock
from core.store import StoreError, leases
from core.store.snapshot import plant_status
from core.views import plant_now

STATE_STYLE = {
    "running": "green", "idle": "yellow", "setup": "cyan", "down_planned": "blue",
    "down_unplanned": "bold red", "starved": "magenta", "blocked": "magenta",
    "unknown": "dim",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="lines, equipment states, open orders, holds, "
                       "pending recommendations")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--all-lots", action="store_true", help="list every open lot, not only "
                   "lots in progress or on hold")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    _, store = open_cli_store(args, read_only=True)
    try:
        data = plant_status(store, plant_now(store.engine, WallClock().now()))
        owners = leases.ownership(store)
        for ln in data["lines"]:  # several runtimes on one store: who runs each line
            ln["owner"] = owners.get(ln["id"])
    except StoreError as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        render(data, make_console(), all_lots=args.all_lots)
    return 0


def _short(ts: str | None) -> str:
    """``MM-DD HH:MM``: the year is in the header, tables stay narrow."""
    return ts[5:16].replace("T", " ") if ts else "—"


def _full(ts: str | None) -> str:
    return ts[:16].replace("T", " ") if ts else "—"


def _table(title: str | None) -> Table:
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title=title,
                 title_justify="left", title_style="bold")


def render(data: dict[str, Any], console: Console, *, all_lots: bool = False) -> None:
    site = data["site"] or {"name": "?"}
    c = data["counts"]
    console.print(f"[bold]{site['name']}[/]  ·  now {_full(data['now'])} UTC  ·  "
                  f"plant epoch {_full(data['plant_epoch'])} UTC  ·  store {data['store']}")

    lt = _table("Lines")
    for col in ("line", "name", "area", "driver", "states", "orders", "runtime"):
        lt.add_column(col, justify="right" if col == "orders" else "left",
                      no_wrap=col not in ("name", "area", "states"))
    for ln in data["lines"]:
        states = ", ".join(f"{v} {k}" for k, v in sorted(ln["states"].items()))
        lt.add_row(ln["id"], ln["name"], ln["area"], ln["driver"], states,
                   str(ln["open_orders"]), leases.owner_text(ln.get("owner")))
    console.print(lt)

    eq = _table("Equipment")
    for col in ("line", "equipment", "name", "type", "state", "reason", "since"):
        eq.add_column(col, no_wrap=col not in ("name", "reason"))
    for e in data["equipment"]:
        style = STATE_STYLE.get(e["state"], "")
        eq.add_row(e["line_id"], e["id"], e["name"], e["type"],
                   f"[{style}]{e['state']}[/]" if style else e["state"],
                   e["reason_code"] or "", _short(e["since"]) if e["since"] else "")
    console.print(eq)

    od = _table(f"Open orders ({c['open_orders']})")
    wide = console.width >= 110
    for col in ("order", "product", "line", "qty", "status", "prio", "release", "due",
                "lots", *(["customer"] if wide else [])):
        od.add_column(col, justify="right" if col in ("qty", "prio", "lots") else "left",
                      no_wrap=col != "customer")
    for o in data["orders"]:
        due = _short(o["due_at"])
        od.add_row(o["id"], o["product_id"], o["line_id"] or "", str(o["quantity"]),
                   o["status"], str(o["priority"]), _short(o["release_at"]),
                   f"[bold red]{due} late[/]" if o["late"] else due, str(o["open_lots"]),
                   *([o["customer"]] if wide else []))
    console.print(od)

    by_status = ", ".join(f"{k} {v}" for k, v in sorted(c["lots_by_status"].items())) or "none"
    shown = [lot for lot in data["lots"] if all_lots or lot["status"] != "planned"]
    console.print(f"[bold]Open lots[/]: {c['open_lots']} ({by_status})")
    if shown:
        lots = _table(None)
        for col in ("lot", "order", "product", "qty", "status", "at"):
            lots.add_column(col)
        for lot in shown:
            lots.add_row(lot["id"], lot["order_id"], lot["product_id"], str(lot["quantity"]),
                         lot["status"], lot["equipment_id"] or "")
        console.print(lots)

    if data["holds"]:
        ht = _table(f"Open holds ({c['open_holds']})")
        for col in ("hold", "lots", "reason", "by", "since"):
            ht.add_column(col)
        for h in data["holds"]:
            ht.add_row(h["id"], ", ".join(h["lots"]), h["reason"], h["created_by"],
                       _short(h["created_at"]))
        console.print(ht)
    else:
        console.print("[bold]Open holds[/]: none")

    if data["recommendations"]:
        rt = _table(f"Pending recommendations ({c['pending_recommendations']})")
        for col in ("id", "class", "target", "action", "status", "conf.", "role", "expires"):
            rt.add_column(col)
        for r in data["recommendations"]:
            rt.add_row(r["id"], r["decision_class"], r["target"], r["action"], r["status"],
                       f"{r['confidence']:.2f}", r["required_role"], _short(r["expires_at"]))
        console.print(rt)
    else:
        console.print("[bold]Pending recommendations[/]: none")
