"""Equipment detail: every tag with its latest value, quality and trend, and the latest model
explanation behind its risk (top contributions from the recommendation evidence)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.formatting import hhmm, sparkline
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


class EquipmentScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="eq_back")]

    def __init__(self, equipment_id: str, deps: AppDeps) -> None:
        super().__init__()
        self.equipment_id = equipment_id
        self.deps = deps
        self._header_set = False

    def compose(self) -> ComposeResult:
        yield Static(id="eq-header")
        yield DataTable(id="eq-tags", cursor_type="row", zebra_stripes=True)
        yield Static("", id="eq-why")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#eq-tags", DataTable)
        for key, label in (("tag", "Tag"), ("kind", "Kind"), ("value", "Value"),
                           ("q", "Quality"), ("ts", "Source time"), ("trend", "Trend")):
            t.add_column(label, key=key)
        self.load()

    def show(self, snapshot: PlantSnapshot) -> None:
        eq = snapshot.equipment(self.equipment_id)
        if eq is not None:
            self._header_set = True
            self.query_one("#eq-header", Static).update(
                f"[b]{eq.id}[/] {eq.name} · line {eq.line_id} · {eq.type} · "
                f"state [b]{eq.state}[/] · order {eq.order_id or '—'} · lot {eq.lot_id or '—'}"
            )
        self.load()

    @work(exclusive=True, group="equipment", thread=True, exit_on_error=False)
    def load(self) -> None:
        try:
            detail = equipment_detail(self.deps.engine, self.equipment_id)
            why = equipment_explanation(self.deps.engine, self.equipment_id)
        except Exception as e:
            self.app.call_from_thread(self.notify, f"cannot read {self.equipment_id}: {e}",
                                      severity="error")
            return
        self.app.call_from_thread(self._fill, detail, why)

    def _fill(self, d: EquipmentDetail, why: Explanation | None = None) -> None:
        self.query_one("#eq-why", Static).update(explanation_text(why))
        t = self.query_one("#eq-tags", DataTable)
        cursor = t.cursor_row
        t.clear()
        for tag in d.tags:
            v = tag.value
            if isinstance(v, float):
                shown = f"{v:.3f} {tag.unit}"
            else:
                shown = "—" if v is None else str(v)
            t.add_row(tag.name, tag.kind, shown, QUALITY.get(tag.quality, QUALITY[None]),
                      tag.ts.strftime("%H:%M:%S") if tag.ts else "—",
                      Text(sparkline(tag.recent, 24), style="cyan"), key=tag.id)
        if t.row_count:
            t.move_cursor(row=min(cursor, t.row_count - 1))
        if not self._header_set:
            self.query_one("#eq-header", Static).update(f"[b]{d.id}[/] {d.name} · line {d.line_id}")


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
