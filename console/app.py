"""The loopline console: one app factory used by the CLI and the tests.

Keyboard first, in the manner of k9s: `:` opens the command bar (`:lines`, `:orders`,
`:lots`, `:holds`, `:actions`, `:wo`, `:alarms`, `:eq NAME`), `/` filters the current
table, `?` explains the current view, Enter drills down, Esc goes back.

The store is read in a thread worker; results come back only as ``SnapshotReady``
messages, so the event loop never waits on the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.suggester import SuggestFromList
from textual.widgets import ContentSwitcher, Footer, Input, Static

from console.messages import SnapshotReady, StoreUnavailable
from console.screens.equipment import EquipmentScreen
from console.screens.help import HelpScreen
from console.views import COMMANDS, VIEWS
from console.widgets.snapshot_table import SnapshotTable
from core.clock import Clock, WallClock
from core.config import LoadedConfig
from core.views import PlantSnapshot, plant_snapshot


@dataclass
class AppDeps:
    """Everything the console needs, passed in (tests pass a frozen clock and a temp store)."""

    config: LoadedConfig
    engine: Engine
    clock: Clock
    refresh_s: float = 0.5
    auto_refresh: bool = True


class StatusBar(Static):
    """Top line: plant, view, plant time and the counts a shift lead watches."""


class LooplineApp(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "loopline"

    BINDINGS = [
        Binding(":", "command_mode", "Command", id="command_mode"),
        Binding("/", "filter", "Filter", id="filter"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("enter", "drill", "Open", id="drill", show=False),
        Binding("escape", "back", "Back", id="back"),
        Binding("ctrl+r", "refresh", "Refresh", id="refresh"),
        Binding("ctrl+t", "toggle_theme", "Theme", id="toggle_theme"),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, deps: AppDeps) -> None:
        super().__init__()
        self.deps = deps
        self.snapshot: PlantSnapshot | None = None
        self.current_view = "lines"
        self.store_error: str | None = None
        self.theme = (
            "textual-light" if deps.config.config.console.theme == "light" else "textual-dark"
        )

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Vertical(id="body"):
            yield Static(id="view-title")
            with ContentSwitcher(initial="view-lines", id="views"):
                for spec in VIEWS.values():
                    yield SnapshotTable(spec.columns, spec.rows, id=f"view-{spec.name}")
        yield Input(placeholder="command: " + " ".join(COMMANDS), id="command",
                    suggester=SuggestFromList(COMMANDS, case_sensitive=False))
        yield Input(placeholder="filter rows (Enter keeps it, Esc clears)", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        keymap = self.deps.config.config.console.keymap
        if keymap:
            self.set_keymap(keymap)
        self.query_one("#command").display = False
        self.query_one("#filter").display = False
        self._render_title()
        self.refresh_snapshot()
        if self.deps.auto_refresh:
            self.set_interval(self.deps.refresh_s, self.refresh_snapshot)
        self.table.focus()

    @property
    def table(self) -> SnapshotTable:
        return self.query_one(f"#view-{self.current_view}", SnapshotTable)

    # ------------------------------------------------------------ data

    @work(exclusive=True, group="snapshot", thread=True, exit_on_error=False)
    def refresh_snapshot(self) -> None:
        """Read the store off the event loop; hand the result over as a message."""
        try:
            snap = plant_snapshot(self.deps.engine)
        except Exception as e:
            self.post_message(StoreUnavailable(f"{type(e).__name__}: {e}".splitlines()[0]))
            return
        self.post_message(SnapshotReady(snap))

    def on_snapshot_ready(self, msg: SnapshotReady) -> None:
        self.snapshot = msg.snapshot
        self.store_error = None
        for spec in VIEWS.values():
            self.query_one(f"#view-{spec.name}", SnapshotTable).show(msg.snapshot)
        self._render_status()
        if isinstance(self.screen, EquipmentScreen):
            self.screen.show(msg.snapshot)

    def on_store_unavailable(self, msg: StoreUnavailable) -> None:
        self.store_error = msg.reason
        self._render_status()

    def _render_status(self) -> None:
        s = self.snapshot
        now = self.deps.clock.now().strftime("%Y-%m-%d %H:%M:%S UTC")
        if s is None:
            text = f"[b]loopline[/]  {now}  reading the store…"
        else:
            c = s.counts
            text = (
                f"[b]{s.site_name}[/]  {now}   "
                f"orders {c['open_orders']}  lots {c['open_lots']}  "
                f"holds [b]{c['open_holds']}[/]  actions [b]{c['pending_recommendations']}[/]  "
                f"alarms [b]{c['active_alarms']}[/]  WOs {c['open_work_orders']}"
            )
        if self.store_error:
            text += f"   [red]store: {self.store_error}[/]"
        self.query_one(StatusBar).update(text)

    def _render_title(self) -> None:
        spec = VIEWS[self.current_view]
        flt = self.table.filter_text
        suffix = f"  [dim]/{flt}[/]" if flt else ""
        self.query_one("#view-title", Static).update(f"[b]{spec.title}[/]{suffix}")

    # ------------------------------------------------------------ navigation

    def show_view(self, name: str) -> None:
        if name not in VIEWS:
            self.notify(f"no view {name!r}; try {', '.join(VIEWS)}", severity="warning")
            return
        self.current_view = name
        self.query_one(ContentSwitcher).current = f"view-{name}"
        self._render_title()
        self.table.focus()

    def action_command_mode(self) -> None:
        box = self.query_one("#command", Input)
        box.value = ""
        box.display = True
        box.focus()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = self.table.filter_text
        box.display = True
        box.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(VIEWS[self.current_view], self))

    def action_refresh(self) -> None:
        self.refresh_snapshot()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_back(self) -> None:
        for box_id in ("#command", "#filter"):
            box = self.query_one(box_id, Input)
            if box.display:
                if box_id == "#filter":
                    self.table.set_filter("")
                    self._render_title()
                box.display = False
                self.table.focus()
                return
        if self.table.filter_text:
            self.table.set_filter("")
            self._render_title()

    def action_drill(self) -> None:
        spec = VIEWS[self.current_view]
        key = self.table.current_key()
        if key and spec.drill == "equipment":
            self.open_equipment(key)

    def open_equipment(self, name: str) -> None:
        snap = self.snapshot
        eq = snap.equipment(name) if snap else None
        if eq is None and snap is not None:
            hits = [e for ln in snap.lines for e in ln.equipment
                    if name.lower() in (e.id.lower(), e.name.lower())]
            eq = hits[0] if hits else None
        if eq is None:
            self.notify(f"no equipment {name!r}", severity="warning")
            return
        self.push_screen(EquipmentScreen(eq.id, self.deps))

    @on(SnapshotTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_drill()

    @on(Input.Submitted, "#command")
    def _command_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.run_command(event.value)
        if not isinstance(self.screen, EquipmentScreen):
            self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self._render_title()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.table.focus()

    def run_command(self, text: str) -> None:
        parts = text.strip().lstrip(":").split()
        if not parts:
            return
        cmd, args = parts[0].lower(), parts[1:]
        if cmd in VIEWS:
            self.show_view(cmd)
        elif cmd in ("eq", "equipment"):
            if args:
                self.open_equipment(args[0])
            else:
                self.notify("usage: :eq NAME", severity="warning")
        elif cmd in ("q", "quit"):
            self.exit()
        elif cmd == "theme":
            self.action_toggle_theme()
        elif cmd == "help":
            self.action_help()
        else:
            self.notify(f"unknown command {cmd!r}; try {', '.join(COMMANDS)}",
                        severity="warning")


def create_app(deps: AppDeps) -> LooplineApp:
    """The one app factory: the CLI and the tests both come through here."""
    return LooplineApp(deps)


def default_clock() -> Clock:
    return WallClock()
