"""The console's views: one table each, fed from the plant snapshot and the runtime's events.

A view is a name (the `:` command that opens it), a title, a help text, columns and
a row builder over ``ViewData`` (snapshot, OEE, plant time, recent events). Adding a
view is adding one entry to ``VIEWS``. The plan view is a timeline, not a table
(``kind="plan"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.text import Text

from console.connections import DriverStates
from console.formatting import (
    LIVE_S,
    LOT_STYLES,
    PRIORITY_STYLES,
    REC_STYLES,
    ago,
    connection_text,
    hhmm,
    num,
    pct,
    sparkline,
    state_text,
    styled,
)
from console.widgets.snapshot_table import Column, Row
from core.events import EngineEvent
from core.views import PlantSnapshot


@dataclass(frozen=True)
class ViewData:
    """What the row builders see: the snapshot plus what arrives on its own cadence."""

    snapshot: PlantSnapshot
    now: datetime
    oee: dict[str, Any] = field(default_factory=dict)  # equipment id -> core.oee.Oee
    events: Sequence[EngineEvent] = ()
    data_at: datetime | None = None  # plant time the snapshot was read (freshness)
    live_s: float = LIVE_S  # plant seconds a key tag may be quiet and still be live
    links: DriverStates | None = None  # drivers' states from the runtime's bus


@dataclass(frozen=True)
class ViewSpec:
    name: str
    title: str
    help: str
    columns: tuple[Column, ...]
    rows: Callable[[ViewData], list[Row]]
    drill: str | None = None  # what Enter opens: "equipment", "lot", "recommendation"
    kind: str = "table"  # "table" or "plan"


def _line_rows(d: ViewData) -> list[Row]:
    out: list[Row] = []
    for ln in d.snapshot.lines:
        for e in ln.equipment:
            key = f"{e.key_signal or ''} {num(e.key_value, e.key_unit)}".strip()
            o = d.oee.get(e.id)
            link = d.links.for_equipment(e.id) if d.links is not None else None
            a, p, q, oee = ((o.availability, o.performance, o.quality, o.oee) if o is not None
                            else (None, None, None, None))
            out.append((e.id, (
                Text(ln.id, style="bold"), e.id, state_text(e.state), e.state_reason or "",
                Text(pct(oee), style="bold"), pct(a), pct(p), pct(q),
                connection_text(e.last_sample_at, d.data_at or d.now, link=link, now=d.now,
                                live_s=d.live_s), e.order_id or "—", e.lot_id or "—",
                key or "—", Text(sparkline(e.key_values).ljust(16), style="cyan"), e.name,
            )))
    return out


def _order_rows(d: ViewData) -> list[Row]:
    return [(o.id, (
        o.id, o.product_id, o.line_id or "—", str(o.quantity), o.status,
        str(o.priority), o.customer, hhmm(o.release_at), hhmm(o.due_at),
        f"{o.lots_done}/{o.lots}",
    )) for o in d.snapshot.orders]


def _lot_rows(d: ViewData) -> list[Row]:
    return [(lot.id, (
        lot.id, lot.order_id, lot.product_id, str(lot.quantity),
        styled(lot.status, LOT_STYLES), lot.equipment_id or "—",
    )) for lot in d.snapshot.lots]


def _hold_rows(d: ViewData) -> list[Row]:
    return [(h.id, (
        h.id, h.reason, ", ".join(h.lots), h.status, h.disposition or "pending",
        h.release or "—", hhmm(h.created_at),
    )) for h in d.snapshot.holds]


def _rec_rows(d: ViewData) -> list[Row]:
    return [(r.id, (
        r.id, r.decision_class, r.target, r.action.replace("_", " "), r.rationale,
        r.expected_impact, f"{r.confidence:.0%}" if r.confidence is not None else "—",
        styled(r.status, REC_STYLES), Text(r.outcome, style=REC_STYLES.get(r.status, "")),
        r.required_role, hhmm(r.expires_at),
    )) for r in d.snapshot.recommendations]


def _event_rows(d: ViewData) -> list[Row]:
    """Newest first, keyed by position (what the cursor stays on). The EventLog widget
    caches each drawn line by its cells' text, so rows that only moved down are not
    rendered again."""
    out: list[Row] = []
    shown = [e for e in d.events if e.kind not in HIDDEN_EVENT_KINDS]
    for i, e in enumerate(reversed(shown)):
        where = e.equipment_id or e.line_id or e.recommendation_id or ""
        out.append((f"{i + 1}", (  # Text: a summary is shown as written, never as markup
            e.ts.strftime("%H:%M:%S"), e.kind, where, Text(event_summary(e)),
        )))
    return out


# the runtime's periodic counters feed the top line's comm state, not the log
HIDDEN_EVENT_KINDS = frozenset({"stats"})


def event_summary(e: EngineEvent) -> str:
    """An alarm event carries the alarm's message on every transition (raised, acked,
    cleared …): say the transition once, with the message only where it is news."""
    if e.kind != "alarm":
        return e.summary
    state = str(getattr(e, "state", "") or "")
    if state in ("raised", ""):
        return e.summary
    who = e.detail.get("actor") if isinstance(e.detail, dict) else ""
    by = f" by {who}" if who and not str(who).startswith("system") else ""
    if state == "normal":
        return f"back to normal{by}"
    return f"{state}{by}: {e.summary}"


def _alarm_rows(d: ViewData) -> list[Row]:
    return [(str(a.id), (
        styled(a.priority, PRIORITY_STYLES), a.source, a.message, a.state,
        "yes" if a.acked else Text("no", style="bold"),
        hhmm(a.shelved_until) if a.shelved_until else "", hhmm(a.raised_at),
        ago(a.raised_at, d.now),
    )) for a in d.snapshot.alarms]


def _wo_rows(d: ViewData) -> list[Row]:
    return [(w.id, (
        w.id, w.kind, w.equipment_id, w.fault_mode, w.status,
        COMPLETION_WORDS.get(w.completion, w.completion) or "—", hhmm(w.window_start),
        hhmm(w.created_at),
    )) for w in d.snapshot.work_orders]


COMPLETION_WORDS = {"pending": "signed, queued", "running": "signed, sending",
                    "done": "done", "failed": "failed"}


C = Column
VIEWS: dict[str, ViewSpec] = {
    v.name: v
    for v in (
        ViewSpec("lines", "Lines", "Every line and its equipment: state, current order and lot, "
                 "OEE today with availability, performance and quality, the key signal with "
                 "its recent trend, and whether data is arriving: comm down (the driver lost "
                 "the connection, and for how long), live, or how long silent. "
                 "Enter opens the equipment.",
                 (C("line", "Line", 4), C("id", "Equipment", 9), C("state", "State", 14),
                  C("reason", "Reason", 10, 3), C("oee", "OEE", 4), C("a", "A", 4, 4),
                  C("p", "P", 4, 4), C("q", "Q", 4, 4), C("conn", "Data", 13, 2),
                  C("order", "Order", 8, 2), C("lot", "Lot", 8, 2), C("key", "Key signal", 24, 3),
                  C("trend", "Trend", 16, 5), C("name", "Name", 18, 6)),
                 _line_rows, drill="equipment"),
        ViewSpec("orders", "Orders", "Open production orders by due date.",
                 (C("id", "Order", 8), C("product", "Product", 8), C("line", "Line", 4),
                  C("qty", "Qty", 6, 2), C("status", "Status", 11), C("prio", "Prio", 4, 3),
                  C("customer", "Customer", 22, 4), C("release", "Release", 13, 3),
                  C("due", "Due", 13), C("lots", "Lots", 6, 2)),
                 _order_rows),
        ViewSpec("lots", "Lots", "Work in progress and planned lots; held lots in red. "
                 "Enter opens the lot's genealogy.",
                 (C("id", "Lot", 8), C("order", "Order", 8), C("product", "Product", 8, 2),
                  C("qty", "Qty", 6), C("status", "Status", 8), C("where", "At", 10)),
                 _lot_rows, drill="lot"),
        ViewSpec("holds", "Quality holds", "Open holds (NCRs): reason, lots, disposition, and "
                 "the release asked for. d disposes a hold (use as is, rework, scrap, return "
                 "to supplier): it asks for the release, which is signed like any "
                 "recommendation — with your PIN in the same dialog if your role may approve "
                 "releases. Offered to quality.",
                 (C("id", "Hold", 8), C("reason", "Reason", 36, 3, grow=True),
                  C("lots", "Lots", 24, 2),
                  C("status", "Status", 7), C("disp", "Disposition", 12, 2),
                  C("release", "Release", 40), C("created", "Created", 13, 4)),
                 _hold_rows),
        ViewSpec("actions", "Recommended actions", "The ranked queue of recommendations (open ones "
                 "first, by expected impact), then the latest decided ones with their result. "
                 "a approves (the dialog says what will happen and asks for your PIN), r "
                 "rejects with a reason, Enter shows the evidence. a and r are offered only "
                 "on recommendations your role may decide.",
                 (C("id", "Id", 16), C("class", "Class", 10, 3), C("target", "Target", 10),
                  C("action", "Action", 17), C("why", "Why", 36, 4, grow=True),
                  C("impact", "Impact", 16, 3),
                  C("conf", "Conf", 5, 5), C("status", "Status", 9), C("result", "Result", 18, 2),
                  C("role", "Role", 11), C("expires", "Expires", 13, 5)),
                 _rec_rows, drill="recommendation"),
        ViewSpec("wo", "Work orders", "Maintenance queue and windows. c signs a work order "
                 "off as done (your PIN): the runtime tells the plant and closes it. Offered "
                 "to roles that may decide work orders (maintenance).",
                 (C("id", "WO", 10), C("kind", "Kind", 11, 3), C("eq", "Equipment", 10),
                  C("fault", "Fault", 10, 2), C("status", "Status", 11),
                  C("done", "Completion", 15), C("window", "Window", 13, 3),
                  C("created", "Created", 13, 4)),
                 _wo_rows),
        ViewSpec("alarms", "Alarms", "ISA-18.2 alarms: active or unacknowledged. "
                 "k acknowledges (every operating role), s shelves (one-shot, 15 min, 1 h or "
                 "8 h, with a reason; shift leads and admins).",
                 (C("prio", "Prio", 8), C("source", "Source", 22, 3),
                  C("msg", "Message", 36, grow=True),
                  C("state", "State", 8, 2), C("acked", "Acked", 5), C("shelved", "Shelved", 13, 4),
                  C("raised", "Raised", 13, 5), C("age", "Age", 6, 2)),
                 _alarm_rows),
        ViewSpec("plan", "Plan", "The active plan as a timeline per line and machine: one "
                 "bar per operation, labelled with its order; | marks now.",
                 (), lambda d: [], kind="plan"),
        ViewSpec("events", "Event log", "What the runtime did, newest first: detections, "
                 "recommendations, decisions, executions, alarms, models.",
                 (C("ts", "Time", 8), C("kind", "Kind", 14), C("where", "Where", 12),
                  C("summary", "Summary", 60)),
                 _event_rows),
    )
}

COMMANDS = [*VIEWS, "eq", "login", "logout", "theme", "toasts", "quit", "help"]
