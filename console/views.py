"""The console's views: one table each, fed from the plant snapshot.

A view is a name (the `:` command that opens it), a title, a help text, columns and
a row builder. Adding a view is adding one entry to ``VIEWS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text

from console.formatting import (
    LOT_STYLES,
    PRIORITY_STYLES,
    hhmm,
    num,
    sparkline,
    state_text,
    styled,
)
from console.widgets.snapshot_table import Column, Row
from core.views import PlantSnapshot


@dataclass(frozen=True)
class ViewSpec:
    name: str
    title: str
    help: str
    columns: tuple[Column, ...]
    rows: Callable[[PlantSnapshot], list[Row]]
    drill: str | None = None  # what Enter opens: "equipment", "order", "lot"


def _line_rows(s: PlantSnapshot) -> list[Row]:
    out: list[Row] = []
    for ln in s.lines:
        for e in ln.equipment:
            key = f"{e.key_signal or ''} {num(e.key_value, e.key_unit)}".strip()
            out.append((e.id, (
                Text(ln.id, style="bold"), e.id, e.name, state_text(e.state),
                e.state_reason or "", e.order_id or "—", e.lot_id or "—",
                key or "—", Text(sparkline(e.key_values), style="cyan"),
            )))
    return out


def _order_rows(s: PlantSnapshot) -> list[Row]:
    return [(o.id, (
        o.id, o.product_id, o.line_id or "—", str(o.quantity), o.status,
        str(o.priority), o.customer, hhmm(o.release_at), hhmm(o.due_at),
        f"{o.lots_done}/{o.lots}",
    )) for o in s.orders]


def _lot_rows(s: PlantSnapshot) -> list[Row]:
    return [(lot.id, (
        lot.id, lot.order_id, lot.product_id, str(lot.quantity),
        styled(lot.status, LOT_STYLES), lot.equipment_id or "—",
    )) for lot in s.lots]


def _hold_rows(s: PlantSnapshot) -> list[Row]:
    return [(h.id, (
        h.id, h.reason, ", ".join(h.lots), h.status, h.disposition or "pending",
        hhmm(h.created_at),
    )) for h in s.holds]


def _rec_rows(s: PlantSnapshot) -> list[Row]:
    return [(r.id, (
        r.id, r.decision_class, r.target, r.action, r.rationale, r.expected_impact,
        f"{r.confidence:.0%}" if r.confidence is not None else "—", r.status,
        r.required_role, hhmm(r.expires_at),
    )) for r in s.recommendations]


def _alarm_rows(s: PlantSnapshot) -> list[Row]:
    return [(str(a.id), (
        styled(a.priority, PRIORITY_STYLES), a.source, a.message, a.state,
        "yes" if a.acked else Text("no", style="bold"),
        hhmm(a.shelved_until) if a.shelved_until else "", hhmm(a.raised_at),
    )) for a in s.alarms]


def _wo_rows(s: PlantSnapshot) -> list[Row]:
    return [(w.id, (
        w.id, w.kind, w.equipment_id, w.fault_mode, w.status, hhmm(w.window_start),
        hhmm(w.created_at),
    )) for w in s.work_orders]


C = Column
VIEWS: dict[str, ViewSpec] = {
    v.name: v
    for v in (
        ViewSpec("lines", "Lines", "Every line and its equipment: state, current order and lot, "
                 "key signal with its recent trend. Enter opens the equipment.",
                 (C("line", "Line", 4), C("id", "Equipment", 10), C("name", "Name", 22),
                  C("state", "State", 14), C("reason", "Reason", 12), C("order", "Order", 8),
                  C("lot", "Lot", 8), C("key", "Key signal", 22), C("trend", "Trend", 16)),
                 _line_rows, drill="equipment"),
        ViewSpec("orders", "Orders", "Open production orders by due date.",
                 (C("id", "Order", 8), C("product", "Product", 8), C("line", "Line", 4),
                  C("qty", "Qty", 6), C("status", "Status", 11), C("prio", "Prio", 4),
                  C("customer", "Customer", 22), C("release", "Release", 13),
                  C("due", "Due", 13), C("lots", "Lots", 6)),
                 _order_rows),
        ViewSpec("lots", "Lots", "Work in progress and planned lots; held lots in red.",
                 (C("id", "Lot", 8), C("order", "Order", 8), C("product", "Product", 8),
                  C("qty", "Qty", 6), C("status", "Status", 8), C("where", "At", 10)),
                 _lot_rows),
        ViewSpec("holds", "Quality holds", "Open holds (NCRs): reason, lots, disposition.",
                 (C("id", "Hold", 8), C("reason", "Reason", 36), C("lots", "Lots", 24),
                  C("status", "Status", 7), C("disp", "Disposition", 12),
                  C("created", "Created", 13)),
                 _hold_rows),
        ViewSpec("actions", "Recommended actions", "The ranked queue of recommendations. "
                 "a approves (with your PIN), r rejects with a reason.",
                 (C("id", "Id", 8), C("class", "Class", 10), C("target", "Target", 10),
                  C("action", "Action", 20), C("why", "Why", 40), C("impact", "Impact", 16),
                  C("conf", "Conf", 5), C("status", "Status", 9), C("role", "Role", 11),
                  C("expires", "Expires", 13)),
                 _rec_rows),
        ViewSpec("wo", "Work orders", "Maintenance queue and windows.",
                 (C("id", "WO", 10), C("kind", "Kind", 11), C("eq", "Equipment", 10),
                  C("fault", "Fault", 10), C("status", "Status", 11),
                  C("window", "Window", 13), C("created", "Created", 13)),
                 _wo_rows),
        ViewSpec("alarms", "Alarms", "ISA-18.2 alarms: active or unacknowledged.",
                 (C("prio", "Prio", 8), C("source", "Source", 22), C("msg", "Message", 40),
                  C("state", "State", 8), C("acked", "Acked", 5), C("shelved", "Shelved", 13),
                  C("raised", "Raised", 13)),
                 _alarm_rows),
    )
}

COMMANDS = [*VIEWS, "eq", "theme", "quit", "help"]
