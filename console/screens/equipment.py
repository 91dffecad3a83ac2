"""Equipment detail: every tag with its latest value, quality and trend, and the latest model
explanation behind its risk (top contributions from the recommendation evidence)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.formatting import hhmm, sparkline
from console.messages import ActionDone, EquipmentLoaded
from console.widgets.snapshot_table import Column, Row, SnapshotTable
from core.production import STATES
from core.views import (
    EquipmentDetail,
    Explanation,
    PlantSnapshot,
    equipment_detail,
    equipment_explanation,
)

if TYPE_CHECKING:
    from console.app import AppDeps

QUALITY = {0: Text("good", style="green"), 1: Text("uncertain", style="yellow"),
           2: Text("BAD", style="bold red"), None: Text("—", style="dim")}


TAG_COLUMNS = (Column("tag", "Tag", 22), Column("kind", "Kind", 9, 3),
               Column("value", "Value", 20), Column("q", "Quality", 9, 2),
               Column("ts", "Source time", 11, 4), Column("trend", "Trend", 24, 5))


def tag_value(kind: str, v: object, unit: str) -> str:
    """A state code in words (``starved (5)``, not ``5.000``), counters whole, measurements
    to four significant figures with their unit."""
    if v is None:
        return "—"
    if kind == "state" and isinstance(v, int | float) and not isinstance(v, bool):
        return f"{STATES.get(int(v), 'code')} ({int(v)})"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and (kind == "counter" or (v.is_integer() and abs(v) >= 1000)):
        return f"{int(v):,} {unit}".strip()
    if isinstance(v, float):
        return f"{v:.4g} {unit}".strip()
    return f"{v} {unit}".strip()


def tag_rows(d: EquipmentDetail) -> list[Row]:
    out: list[Row] = []
    for tag in d.tags:
        shown = tag_value(tag.kind, tag.value, tag.unit)
        out.append((tag.id, (tag.name, tag.kind, shown, QUALITY.get(tag.quality, QUALITY[None]),
                             tag.ts.strftime("%H:%M:%S") if tag.ts else "—",
                             Text(sparkline(tag.recent, 24).ljust(24), style="cyan"))))
    return out


class EquipmentScreen(Screen[None]):
    """Re-read on every snapshot; the tag table changes only the cells that changed
    (it was cleared and refilled twice a second, which stalled keys on this page)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="eq_back"),
                Binding("w", "request_change", "Request change", id="request_change")]

    def __init__(self, equipment_id: str, deps: AppDeps) -> None:
        super().__init__()
        self.equipment_id = equipment_id
        self.deps = deps
        self._header_set = False
        self._why = ""

    def compose(self) -> ComposeResult:
        yield Static(id="eq-header")
        yield SnapshotTable(TAG_COLUMNS, tag_rows, id="eq-tags")
        yield Static("", id="eq-why")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def action_request_change(self) -> None:
        """Ask for a setpoint change or a machine command (console/screens/request.py)."""
        from console.screens.request import open_request

        key = self.query_one("#eq-tags", SnapshotTable).current_key()
        open_request(self.app, self.equipment_id, str(key) if key else None)  # type: ignore[arg-type]

    def show(self, snapshot: PlantSnapshot) -> None:
        eq = snapshot.equipment(self.equipment_id)
        if eq is not None:
            self._header_set = True
            self.query_one("#eq-header", Static).update(  # fixed height (app.tcss): no layout
                f"[b]{eq.id}[/] {eq.name} · line {eq.line_id} · {eq.type} · "
                f"state [b]{eq.state}[/] · order {eq.order_id or '—'} · lot {eq.lot_id or '—'}",
                layout=False)
        self.load()

    @work(exclusive=True, group="equipment", thread=True, exit_on_error=False)
    def load(self) -> None:
        try:
            detail = equipment_detail(self.deps.engine, self.equipment_id)
            why = equipment_explanation(self.deps.engine, self.equipment_id)
        except Exception as e:
            self.app.post_message(ActionDone("read", False,
                                             f"cannot read {self.equipment_id}: {e}"))
            return
        self.post_message(EquipmentLoaded(detail, why))

    def on_equipment_loaded(self, msg: EquipmentLoaded) -> None:
        d = msg.detail
        why = explanation_text(msg.why)
        if why != self._why:  # its height follows the text: a layout pass only on a change
            self._why = why
            self.query_one("#eq-why", Static).update(why)
        self.query_one("#eq-tags", SnapshotTable).show(d)
        if not self._header_set:
            self.query_one("#eq-header", Static).update(
                f"[b]{d.id}[/] {d.name} · line {d.line_id}", layout=False)


def explanation_text(why: Explanation | None) -> str:
    """The model's reasons, largest contribution first; says so when there is none."""
    if why is None:
        return "[b]Model explanation[/] [dim]none yet: no model has flagged this machine[/]"
    score = f" score {why.score:.2f}" if why.score is not None else ""
    head = (f"[b]Model explanation[/] {why.model or 'model'}{score} · {hhmm(why.at)} · "
            f"from {why.source}")
    parts = []
    ranked = sorted(why.contributions, key=lambda c: -abs(float(c.get("contribution", 0) or 0)))
    for c in ranked[:5]:
        val, base = c.get("value"), c.get("baseline")
        figures = f" {val:.3g} vs {base:.3g}" if isinstance(val, int | float) and \
            isinstance(base, int | float) else ""
        parts.append(f"  {c.get('signal', '?')} {c.get('feature', '')} "
                     f"{c.get('direction', '')} by {float(c.get('contribution', 0) or 0):.2f}"
                     f"{figures} {c.get('unit', '')}")
    return "\n".join([head, *parts])
