"""The loopline console: one app factory used by the CLI and the tests.

Keyboard first, in the manner of k9s: `:` opens the command bar (`:lines`, `:orders`,
`:lots`, `:holds`, `:actions`, `:wo`, `:alarms`, `:plan`, `:events`, `:eq NAME`,
`:login`), `/` filters the current view, `?` explains it, Enter drills down, Esc goes
back. `a`/`r` approve or reject a recommendation, `k`/`s` acknowledge or shelve an
alarm, `d` disposes a quality hold, `c` signs a work order off — each offered only when
the signed-in user's role may (``check_action``), never failing late.

Nothing here waits on the database or on the runtime: the store is read in thread
workers whose results come back as typed messages, and the runtime's event bus (called
from any thread) only appends to a buffer and posts one ``BusActivity`` per batch.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.markup import escape
from sqlalchemy import Engine
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static

from console.connections import DriverStates, equipment_drivers
from console.formatting import ago, live_window_s
from console.messages import (
    ActionDone,
    BusActivity,
    LotLoaded,
    OeeReady,
    PlanReady,
    RecommendationLoaded,
    RuntimeFailed,
    RuntimeReady,
    SnapshotReady,
    StoreUnavailable,
)
from console.runtime_link import FollowClock, RuntimeStarter, StoreClock
from console.screens.details import (
    LotScreen,
    RecommendationScreen,
    TextScreen,
    what_will_happen,
)
from console.screens.dialogs import ActionDialog, ConfirmScreen, SignInScreen
from console.screens.dispatch import may_dispatch, open_dispatch
from console.screens.equipment import EquipmentScreen
from console.screens.help import HelpScreen
from console.state import ConsoleState
from console.views import COMMANDS, HIDDEN_EVENT_KINDS, VIEWS, ViewData
from console.widgets.command_bar import CommandBar
from console.widgets.event_log import EventLog
from console.widgets.gantt import PlanGantt
from console.widgets.snapshot_table import SnapshotTable
from core import oee as oee_mod
from core.alarms import AlarmManager
from core.auth import FLOOR_ROLES, Authenticator, Identity, SigningSession
from core.clock import Clock, WallClock
from core.config import LoadedConfig
from core.config.schema import DECISION_CLASSES
from core.engine.decide import REJECT_REASONS, Decider, RecordChanged
from core.engine.engine import complete_work_order, request_release
from core.engine.executors.quality import DISPOSITIONS
from core.engine.recommend import record_hash_of
from core.events import (
    ConnectionEvent,
    DecisionEvent,
    EngineEvent,
    EventBus,
    RecommendationEvent,
    StatsEvent,
)
from core.statuses import WO_OPEN
from core.store import leases
from core.store.db import Store
from core.store.models import Recommendation
from core.views import (
    AlarmView,
    HoldView,
    PlantSnapshot,
    RecommendationView,
    WorkOrderView,
    lot_detail,
    plan_timeline,
    plant_day_start,
    plant_snapshot,
    recommendation_detail,
)

EVENT_BACKLOG = 300  # rows kept in the event log view
STARTUP_PROBE = "LOOPLINE_STARTUP_PROBE"  # bench console: where the first-screen time goes
TOAST_HISTORY = 200  # notifications kept for :toasts
RECORD_CHANGED = "\x00record changed"  # approve dialog result: reopen on the new record
EVENT_LOG_S = 1.0  # the event log's redraw cadence under a flow of events
REFRESHING_KINDS = frozenset({"recommendation", "decision", "execution", "alarm", "outcome"})
SHELVE_CHOICES = (("one_shot", "one-shot: until it clears (at most 8 h)"),
                  ("900", "15 min"), ("3600", "1 h"), ("28800", "8 h"))
DISPOSITION_LABELS = {"use_as_is": "use as is — the lots ship unchanged",
                      "rework": "rework — back to work in progress",
                      "scrap": "scrap — the lots are destroyed",
                      "return_to_supplier": "return to supplier — the lots leave as scrap"}
# bindings whose offer depends on the row, the role or the data (see check_action)
OFFERED_ACTIONS = ("approve", "reject", "acknowledge", "shelve", "disposition",
                   "complete_work_order", "dispatch")
REASON_LABELS = {"false_alarm": "false alarm — the problem is not real",
                 "not_now": "not now — right action, wrong time",
                 "wrong_action": "wrong action — the problem is real, the fix is not",
                 "already_done": "already done — someone acted already",
                 "other": "other — say why below"}


@dataclass
class AppDeps:
    """Everything the console needs, passed in (tests pass a frozen clock and a temp store).

    ``bus`` and ``alarms`` come from the runtime when it runs in this process: the event
    log follows the bus, and acknowledge/shelve go through the runtime's alarm manager
    (without one the alarms view is read-only and says so). Decisions are written to the
    store's outbox; the runtime's executor picks them up.
    """

    config: LoadedConfig
    engine: Engine
    clock: Clock
    refresh_s: float = 0.5
    auto_refresh: bool = True
    bus: EventBus | None = None
    alarms: AlarmManager | None = None
    store: Store | None = None  # built over ``engine`` when not given
    sign_in_at_start: bool = True
    oee_s: float = 10.0  # OEE and plan are heavier reads on their own, slower cadence
    plan_s: float = 15.0
    notices: tuple[str, ...] = ()  # said once the console is up (e.g. the twin's ports moved)
    state: ConsoleState | None = None  # theme and last view across restarts (None: not kept)
    runtime_live: bool = False  # the plant runtime runs in this process: quitting stops it
    runtime_start: RuntimeStarter | None = None  # run in a worker once the console is up


class StatusBar(Static):
    """Top line: plant, plant time, who is signed in and the counts a shift lead watches."""

    _shown: str | None = None

    def show(self, markup: str) -> None:
        """Repaint only on a change, and re-lay the screen out only when the text's length
        changed (it may wrap onto a second line): a layout pass re-renders every widget on
        the screen, which at each 0.5 s snapshot was the largest stall a key press met."""
        if markup == self._shown:
            return
        relayout = self._shown is None or len(markup) != len(self._shown)
        self._shown = markup
        self.update(markup, layout=relayout)


class LooplineApp(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "loopline"
    ENABLE_COMMAND_PALETTE = False  # `:` is the command bar; the footer keeps its room

    BINDINGS = [
        # priority: handled as the key arrives, not after the table's queue — the keys typed
        # right after ':' in one burst reached the table and were lost
        Binding(":", "command_mode", "Command", id="command_mode", priority=True),
        Binding("/", "filter", "Filter", id="filter", priority=True),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("enter", "drill", "Open", id="drill", show=False),
        Binding("escape", "back", "Back", id="back"),
        Binding("q", "go_back", "Back/quit", id="go_back", show=False),
        Binding("greater_than_sign", "sort_next", "Sort by next column", key_display=">",
                id="sort_next", show=False),
        Binding("less_than_sign", "sort_reverse", "Reverse the sort", key_display="<",
                id="sort_reverse", show=False),
        Binding("a", "approve", "Approve", id="approve"),
        Binding("r", "reject", "Reject", id="reject"),
        Binding("k", "acknowledge", "Ack", id="acknowledge"),
        Binding("s", "shelve", "Shelve", id="shelve"),
        Binding("d", "disposition", "Disposition", id="disposition"),
        Binding("c", "complete_work_order", "Complete WO", id="complete_work_order"),
        Binding("o", "dispatch", "Dispatch", id="dispatch"),  # Lines, Orders
        Binding("ctrl+l", "sign_in", "Sign in", id="sign_in"),
        Binding("ctrl+r", "refresh", "Refresh", id="refresh", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", id="toggle_theme", show=False),
        Binding("ctrl+q", "confirm_quit", "Quit", id="quit"),
    ]

    def __init__(self, deps: AppDeps) -> None:
        super().__init__()
        self.deps = deps
        self.snapshot: PlantSnapshot | None = None
        self.snapshot_at: datetime | None = None  # plant time the snapshot was read
        self.current_view = "lines"
        self.store_error: str | None = None
        saved = deps.state.load() if deps.state is not None else {}
        theme = saved.get("theme") or deps.config.config.console.theme
        self.theme = "textual-light" if theme == "light" else "textual-dark"
        self._start_view = saved.get("view") if saved.get("view") in VIEWS else "lines"
        self._view_history: list[str] = []
        self.toasts: deque[tuple[datetime, str, str]] = deque(maxlen=TOAST_HISTORY)
        cfg = deps.config.config
        self.store = deps.store or Store(deps.engine, str(deps.engine.url), None)
        self.bus = deps.bus or EventBus()  # a private bus still feeds the event log
        self.auth = Authenticator(deps.engine, cfg.users, cfg.auth, deps.clock)
        self.session = SigningSession(self.auth)
        self.decider = Decider(self.store, self.auth, cfg.autonomy, deps.clock, self.bus)
        self.identity: Identity | None = None
        self._signed_once = False  # the first signature of a sign-in always asks the PIN
        self.autonomy: dict[str, str] = {}
        self.oee: dict[str, oee_mod.Oee] = {}
        self.events: deque[EngineEvent] = deque(maxlen=EVENT_BACKLOG)
        self.links = DriverStates(equipment_drivers(deps.config),
                                  speed=float(getattr(deps.clock, "speed", 1.0)))
        self._inbox: list[tuple[EngineEvent, datetime | None]] = []
        self._inbox_lock = threading.Lock()
        self._inbox_posted = False
        self._dirty = False
        self._events_dirty = False  # the event log is redrawn at most every EVENT_LOG_S
        self._offered: tuple[object, ...] = ()
        self._unsubscribe = None
        self._status_bar: StatusBar | None = None
        self.runtime_state = "starting" if deps.runtime_start is not None else ""
        self._runtime_requested = False

    def _on_screen(self) -> bool:
        """False once the app is exiting: a worker's or the bus's message may still be
        queued after the widgets it would update were removed."""
        return self._status_bar is not None and self._status_bar.is_attached

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Vertical(id="body"):
            yield Static(id="view-title")
            with ContentSwitcher(initial="view-lines", id="views"):
                for spec in VIEWS.values():
                    if spec.kind == "plan":
                        with VerticalScroll(id=f"view-{spec.name}"):
                            yield PlanGantt(id="plan-gantt")
                    elif spec.name == "events":  # a Line API log: new rows at the top are cheap
                        yield EventLog(spec.columns, spec.rows, id="view-events")
                    else:
                        yield SnapshotTable(spec.columns, spec.rows, id=f"view-{spec.name}")
        yield CommandBar(COMMANDS, self.resource_names, id="command",
                         placeholder="command (Tab completes): " + " ".join(COMMANDS))
        yield Input(placeholder="filter rows (Enter keeps it, Esc clears)", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self._status_bar = self.query_one(StatusBar)
        keymap = self.deps.config.config.console.keymap
        if keymap:
            self.set_keymap(keymap)
        self.query_one("#command").display = False
        self.query_one("#filter").display = False
        self._unsubscribe = self.bus.subscribe(self._on_bus_event)
        self._render_title()
        self._render_status()
        self.refresh_snapshot()  # OEE, the plan and the runtime follow the first frame
        if self.deps.auto_refresh:
            self.set_interval(self.deps.refresh_s, self.refresh_snapshot)
            self.set_interval(self.deps.oee_s, self.refresh_oee)
            self.set_interval(self.deps.plan_s, self.refresh_plan)
            self.set_interval(0.25, self._refresh_if_dirty)
            self.set_interval(EVENT_LOG_S, self._show_events_if_dirty)
        self.view_widget.focus()
        if self._start_view != "lines":
            self.show_view(self._start_view, remember=False)
        for text in self.deps.notices:
            self.notify(text, severity="warning", timeout=12)
        if self.deps.sign_in_at_start:
            self.action_sign_in()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    @property
    def view_widget(self) -> SnapshotTable | EventLog | PlanGantt:
        if VIEWS[self.current_view].kind == "plan":
            return self.query_one("#plan-gantt", PlanGantt)
        return self.query_one(f"#view-{self.current_view}", SnapshotTable | EventLog)

    @property
    def table(self) -> SnapshotTable | EventLog:
        """The current view's table (the plan view has none: its timeline is returned)."""
        return self.view_widget  # type: ignore[return-value]

    def view_data(self) -> ViewData | None:
        if self.snapshot is None:
            return None
        return ViewData(self.snapshot, self.deps.clock.now(), self.oee, tuple(self.events),
                        data_at=self.snapshot_at, live_s=live_window_s(self.links.speed),
                        links=self.links if self.deps.bus is not None else None)

    # ------------------------------------------------------------ data

    @work(exclusive=True, group="snapshot", thread=True, exit_on_error=False)
    def refresh_snapshot(self) -> None:
        """Read the store off the event loop; hand the result over as a message."""
        try:
            if isinstance(self.deps.clock, StoreClock):
                self.deps.clock.refresh()
            taken_at = self.deps.clock.now()  # before the read: ages are never understated
            snap = plant_snapshot(self.deps.engine)
            self.line_owners = leases.ownership(self.store)  # several line PCs: who runs what
            autonomy = {c: self.decider.autonomy_for(c) for c in DECISION_CLASSES}
        except Exception as e:
            self.post_message(StoreUnavailable(f"{type(e).__name__}: {e}".splitlines()[0]))
            return
        self.post_message(SnapshotReady(snap, autonomy, taken_at))

    @work(exclusive=True, group="oee", thread=True, exit_on_error=False)
    def refresh_oee(self) -> None:
        """OEE today per equipment (time- and piece-weighted, core.oee)."""
        try:
            now = self.deps.clock.now()
            by_eq = oee_mod.by_equipment(self.store, plant_day_start(self.deps.engine, now),
                                         now, now)
        except Exception as e:
            self.post_message(StoreUnavailable(f"OEE: {type(e).__name__}: {e}".splitlines()[0]))
            return
        self.post_message(OeeReady(by_eq))

    @work(exclusive=True, group="plan", thread=True, exit_on_error=False)
    def refresh_plan(self) -> None:
        try:
            tl = plan_timeline(self.deps.engine)
        except Exception as e:
            self.post_message(StoreUnavailable(f"plan: {type(e).__name__}: {e}".splitlines()[0]))
            return
        self.post_message(PlanReady(tl))

    @work(exclusive=True, group="runtime", thread=True, exit_on_error=False)
    def start_runtime(self) -> None:
        """Twin, drivers and loop start here (seconds), while the store's plant is shown."""
        assert self.deps.runtime_start is not None
        try:
            started = self.deps.runtime_start()
        except Exception as e:
            self.post_message(RuntimeFailed(str(e) or type(e).__name__))
            return
        self.post_message(RuntimeReady(started))

    def on_runtime_ready(self, msg: RuntimeReady) -> None:
        started = msg.started
        if isinstance(self.deps.clock, FollowClock):
            self.deps.clock.follow(started.clock)
        self.deps.alarms = started.alarms
        self.links.speed = float(getattr(started.clock, "speed", 1.0))
        self.runtime_state = "live"
        for text in started.notices:
            self.notify(text, severity="warning", timeout=12)
        if not self._on_screen():
            return
        self._render_status()
        self._render_title()
        self.action_refresh()

    def on_runtime_failed(self, msg: RuntimeFailed) -> None:
        self.runtime_state = "failed"
        self.deps.runtime_live = False
        self.notify(f"the plant runtime did not start: {msg.reason}\nThe console shows the "
                    "store only.", severity="error", timeout=30)
        if self._on_screen():
            self._render_status()

    def on_snapshot_ready(self, msg: SnapshotReady) -> None:
        if not self._on_screen():
            return
        first = self.snapshot is None
        self.snapshot = msg.snapshot
        self.snapshot_at = msg.taken_at
        self.autonomy = msg.autonomy
        self.store_error = None
        if self.current_view != "events":  # the event log follows the bus, not the store
            self._show_tables()
        self._render_status()
        self._sync_bindings()
        if first and os.environ.get(STARTUP_PROBE):
            self.call_after_refresh(self._probe_first_screen)
        if first:
            self.call_after_refresh(self._after_first_frame)
        if isinstance(self.screen, EquipmentScreen):
            self.screen.show(msg.snapshot)
        elif isinstance(self.screen, RecommendationScreen):
            rec = next((r for r in msg.snapshot.recommendations
                        if r.id == self.screen.recommendation_id), None)
            if rec is not None and (rec.status, rec.outcome) != self.screen.shown_state:
                self.refresh_recommendation_page(rec.id)

    def _after_first_frame(self) -> None:
        """The plant is on screen: now the heavier reads and the runtime (the twin's start,
        its imports and the OEE query competed with the first frame for the one GIL)."""
        freeze_startup_heap()
        self.refresh_oee()
        self.refresh_plan()
        self._request_runtime()

    def _request_runtime(self) -> None:
        if self.deps.runtime_start is not None and not self._runtime_requested:
            self._runtime_requested = True
            self.start_runtime()

    def _probe_first_screen(self) -> None:
        """``bench console``: the plant drawn for the first time (monotonic clock, which
        the bench's process shares); with ``LOOPLINE_STARTUP_PROBE_EXIT`` the console quits."""
        Path(os.environ[STARTUP_PROBE]).write_text(f"{time.monotonic():.6f}")
        if os.environ.get(STARTUP_PROBE + "_EXIT"):
            self.exit()

    def _show_tables(self, only: str | None = None) -> None:
        """Update the visible table only; a hidden one catches up when it is shown."""
        data = self.view_data()
        name = self.current_view
        if data is None or VIEWS[name].kind != "table" or only not in (None, name):
            return
        self.query_one(f"#view-{name}", SnapshotTable | EventLog).show(data)
        self._render_title()

    def on_oee_ready(self, msg: OeeReady) -> None:
        if not self._on_screen():
            return
        self.oee = msg.oee
        self._show_tables("lines")

    def on_plan_ready(self, msg: PlanReady) -> None:
        if not self._on_screen():
            return
        self.query_one("#plan-gantt", PlanGantt).show(msg.timeline, self.deps.clock.now())

    def on_store_unavailable(self, msg: StoreUnavailable) -> None:
        if not self._on_screen():
            return
        self.store_error = msg.reason
        self._render_status()
        self._request_runtime()  # no first frame from the store: the runtime still starts

    # ------------------------------------------------------------ the runtime's bus

    def _on_bus_event(self, event: EngineEvent) -> None:
        """Called on the publisher's thread: buffer, and post one message per batch.
        Connection news is stamped with the wall time it was published (see DriverStates)."""
        wall = datetime.now(UTC) if isinstance(event, ConnectionEvent | StatsEvent) else None
        with self._inbox_lock:
            self._inbox.append((event, wall))
            if self._inbox_posted:
                return
            self._inbox_posted = True
        self.post_message(BusActivity())

    def on_bus_activity(self, _: BusActivity) -> None:
        if not self._on_screen():
            return
        with self._inbox_lock:
            stamped, self._inbox = self._inbox, []
            self._inbox_posted = False
        batch = [e for e, _ in stamped]
        self.events.extend(batch)
        links_changed = False
        for e, wall in stamped:
            if wall is not None:
                links_changed |= self.links.update(e, wall)
        if links_changed:
            self._show_tables("lines")
            self._render_status()
        if any(e.kind in REFRESHING_KINDS for e in batch):
            self._dirty = True  # re-read the store soon, at most every 0.25 s
        self._events_dirty = True
        if not self.deps.auto_refresh:
            self._refresh_if_dirty()

    def _refresh_if_dirty(self) -> None:
        """Coalesce the bus: at hundreds of events/s, one store read per 0.25 s tick,
        not one per batch."""
        if self._dirty:
            self._dirty = False
            self.refresh_snapshot()
        if not self.deps.auto_refresh:
            self._show_events_if_dirty()

    def _show_events_if_dirty(self) -> None:
        """The event log redraws at most once a second, so it can be read while events
        flow. A redraw renders only the lines not seen before (EventLog caches them by
        content): 2-8 ms at 200 events/s, where the DataTable it replaced re-rendered
        every visible row (tens of ms the keys waited behind)."""
        if self._events_dirty:
            self._events_dirty = False
            self._show_tables("events")

    # ------------------------------------------------------------ rendering

    def _render_status(self) -> None:
        s = self.snapshot
        now = self.deps.clock.now().strftime("%Y-%m-%d %H:%M:%S UTC")
        who = (f"[b]{self.identity.user_id}[/] ({', '.join(self.identity.roles)})"
               if self.identity else "[dim]not signed in (ctrl+l)[/]")
        if s is None:
            text = f"[b]loopline[/]  {now}  {who}  reading the store…"
        else:
            c = s.counts
            text = (
                f"[b]{s.site_name}[/]  {now}  {who}  "
                f"actions [b]{c['pending_recommendations']}[/]  "
                + (f"[b red]failed {c['failed_actions']}[/]  " if c.get("failed_actions")
                   else "") +
                f"alarms [b]{c['active_alarms']}[/]  holds [b]{c['open_holds']}[/]  "
                f"WOs {c['open_work_orders']}  orders {c['open_orders']}  "
                f"lots {c['open_lots']}"
            )
        text += self._comm_text() + self._owners_text()
        if self.runtime_state == "starting":
            text += "  [yellow]starting the plant twin…[/]"
        elif self.runtime_state == "failed":
            text += "  [b red]runtime not running[/]"
        if self.store_error:
            text += f"   [red]store: {self.store_error}[/]"
        self.query_one(StatusBar).show(text)

    def _owners_text(self) -> str:
        """Each line's runtime, when several runtimes share the store (or this console
        runs none): ``lines A pc-a B pc-bc C lapsed``."""
        owners = getattr(self, "line_owners", None) or {}
        if not owners or (self.deps.bus is not None
                          and len({o["owner"] for o in owners.values()}) < 2):
            return ""
        parts = []
        for line, o in sorted(owners.items()):
            parts.append(f"{line} {escape(str(o['host']))}" if o.get("live")
                         else f"{line} [yellow]lapsed[/]")
        return "  lines " + " ".join(parts)

    def _comm_text(self) -> str:
        """Each driver's state from the runtime (nothing until the bus has reported one)."""
        parts = []
        now = self.deps.clock.now()
        for ln in self.links.all():
            if ln.lost:
                parts.append(f"{ln.driver_id} [b red]down {ago(ln.since, now)}[/]")
            elif ln.state == "connected":
                parts.append(f"{ln.driver_id} [green]ok[/]")
            else:
                parts.append(f"{ln.driver_id} [yellow]{ln.state}[/]")
        return "  comm " + " ".join(parts) if parts else ""

    def _render_title(self) -> None:
        spec = VIEWS[self.current_view]
        w = self.view_widget
        flt = w.filter_text
        suffix = f"  [dim]/{escape(flt)}[/]" if flt else ""
        if isinstance(w, SnapshotTable | EventLog):
            shown = w.row_count
            total = w.total_rows if isinstance(w, SnapshotTable) else sum(
                1 for e in self.events if e.kind not in HIDDEN_EVENT_KINDS)
            pos = f"{w.cursor_row + 1 if shown else 0}/{shown}"
            suffix += f"  [dim]{pos}{f' of {total}' if total != shown else ''}[/]"
            if isinstance(w, SnapshotTable) and w.sort_key:
                label = next(c.label for c in w.columns_spec if c.key == w.sort_key)
                suffix += f"  [dim]sort {label} {'↓' if w.sort_reverse else '↑'}[/]"
        if spec.name == "alarms" and self.deps.alarms is None:
            suffix += ("  [dim](k and s once the runtime has started)[/]"
                       if self.runtime_state == "starting" else
                       "  [dim](read-only: no alarm manager runs in this console)[/]")
        if spec.name in ("actions", "alarms") and self.identity is None:
            suffix += "  [dim](sign in with ctrl+l to act)[/]"
        # one line high (app.tcss): no layout pass needed
        self.query_one("#view-title", Static).update(f"[b]{spec.title}[/]{suffix}", layout=False)

    # ------------------------------------------------------------ what is offered

    def _current_rec(self) -> RecommendationView | None:
        if self.current_view != "actions" or self.snapshot is None:
            return None
        key = self.table.current_key()
        return next((r for r in self.snapshot.recommendations if r.id == key), None)

    def _current_alarm(self) -> AlarmView | None:
        if self.current_view != "alarms" or self.snapshot is None:
            return None
        key = self.table.current_key()
        return next((a for a in self.snapshot.alarms if str(a.id) == key), None)

    def _current_hold(self) -> HoldView | None:
        if self.current_view != "holds" or self.snapshot is None:
            return None
        key = self.table.current_key()
        return next((h for h in self.snapshot.holds if h.id == key), None)

    def _current_wo(self) -> WorkOrderView | None:
        if self.current_view != "wo" or self.snapshot is None:
            return None
        key = self.table.current_key()
        return next((w for w in self.snapshot.work_orders if w.id == key), None)

    def may_dispose(self, hold: HoldView) -> bool:
        """Quality's act, on an open hold nobody has asked to release yet."""
        return (self.identity is not None and hold.status == "open" and not hold.release_open
                and not hold.disposition
                and self.auth.may_act(self.identity.user_id, "dispose"))

    def may_sign_release(self) -> bool:
        """Whether the disposition dialog may also approve the release it asks for."""
        return (self.identity is not None and self.autonomy.get("lot_release") != "advise"
                and self.auth.may_decide(self.identity.user_id, "lot_release"))

    def may_complete(self, wo: WorkOrderView) -> bool:
        """Whoever may decide work orders signs them off, once, while they are open."""
        return (self.identity is not None and wo.status in WO_OPEN
                and not wo.completion
                and self.auth.may_decide(self.identity.user_id, "work_order"))

    def may_decide(self, rec: RecommendationView, verdict: str) -> bool:
        """Whether to offer approve/reject on a row: open, a class this user may decide,
        and (to approve) not advise-only."""
        if self.identity is None:
            return False
        if verdict == "approve" and (rec.status != "proposed"
                                     or self.autonomy.get(rec.decision_class) == "advise"):
            return False
        if verdict == "reject" and rec.status not in ("proposed", "withheld"):
            return False
        return self.auth.may_decide(self.identity.user_id, rec.decision_class)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("go_back", "sort_next", "sort_reverse"):  # not over a dialog
            return not isinstance(self.screen, ModalScreen)
        if action in ("command_mode", "filter"):  # typed into a box, ':' is a character
            return self.screen is self.screen_stack[0] and not isinstance(self.focused, Input)
        if action in ("approve", "reject"):
            rec = self._current_rec()
            return rec is not None and self.may_decide(rec, action)
        if action in ("acknowledge", "shelve"):
            alarm = self._current_alarm()
            return alarm is not None and self.may_handle_alarm(alarm, action)
        if action == "disposition":
            hold = self._current_hold()
            return hold is not None and self.may_dispose(hold)
        if action == "complete_work_order":
            wo = self._current_wo()
            return wo is not None and self.may_complete(wo)
        if action == "dispatch":
            return may_dispatch(self)
        return True

    def why_not(self, action: str) -> str | None:
        """Why an offered key is not offered on this row, in words ("needs quality or
        admin"); None when it does not apply here at all (another view, no row)."""
        def needs(roles: list[str] | frozenset[str]) -> str:
            return "needs " + " or ".join(sorted(roles, key=lambda r: (r == "admin", r)))

        signed = self.identity is not None
        who = self.identity.user_id if self.identity else ""
        if action in ("approve", "reject"):
            rec = self._current_rec()
            if rec is None:
                return None
            if not signed:
                return "sign in first (ctrl+l)"
            if not self.auth.may_decide(who, rec.decision_class):
                return f"{rec.decision_class} {needs(self.auth.roles_for(rec.decision_class))}"
            if action == "approve" and self.autonomy.get(rec.decision_class) == "advise":
                return f"{rec.decision_class} is advise-only here ([autonomy])"
            return f"{rec.id} is {rec.status}: nothing to {action}"
        if action in ("acknowledge", "shelve"):
            alarm = self._current_alarm()
            if alarm is None:
                return None
            if self.deps.alarms is None:
                return "read-only: no alarm manager runs in this console"
            if not signed:
                return "sign in first (ctrl+l)"
            if not self.auth.may_act(who, action):
                return f"{action} {needs(FLOOR_ROLES[action])}"
            return f"alarm {alarm.id} is already " + ("acknowledged" if action == "acknowledge"
                                                       else "shelved")
        if action == "disposition":
            hold = self._current_hold()
            if hold is None:
                return None
            if not signed:
                return "sign in first (ctrl+l)"
            if not self.auth.may_act(who, "dispose"):
                return f"disposition {needs(FLOOR_ROLES['dispose'])}"
            return f"{hold.id}: " + (hold.release or hold.status)
        if action == "complete_work_order":
            wo = self._current_wo()
            if wo is None:
                return None
            if not signed:
                return "sign in first (ctrl+l)"
            if not self.auth.may_decide(who, "work_order"):
                return f"completing a work order {needs(self.auth.roles_for('work_order'))}"
            return f"{wo.id} is {wo.status}" + (f", completion {wo.completion}"
                                                if wo.completion else "")
        return None

    def on_key(self, event: events.Key) -> None:
        """A key the role or the row does not allow says why, instead of doing nothing
        (it is not offered in the footer; check_action unbinds it, so it lands here)."""
        if self.screen is not self.screen_stack[0] or isinstance(self.focused, Input):
            return
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.action in OFFERED_ACTIONS and \
                    event.key in self._keys_of(b) and not self.check_action(b.action, ()):
                why = self.why_not(b.action)
                if why:
                    self.notify(f"{b.description}: {why}", severity="warning", timeout=4)
                    event.stop()
                return

    def _keys_of(self, b: Binding) -> set[str]:
        keymap = self.deps.config.config.console.keymap or {}
        keys = keymap.get(b.id or "", b.key)
        return {k.strip() for k in keys.split(",")}

    def may_handle_alarm(self, alarm: AlarmView, act: str) -> bool:
        """Acknowledge: every operating role; shelve: shift leads and admins (FLOOR_ROLES)."""
        if self.deps.alarms is None or self.identity is None:
            return False
        if not self.auth.may_act(self.identity.user_id, act):
            return False
        return not alarm.acked if act == "acknowledge" else alarm.shelved_until is None

    @on(DataTable.RowHighlighted)
    def _row_moved(self) -> None:
        self._sync_bindings()
        self._render_title()

    def _sync_bindings(self) -> None:
        """Redraw the footer only when what is offered changed: a refresh rebuilds every
        footer key (styles included), which on each key press and each snapshot was the
        largest cost on the UI thread."""
        offered = (self.current_view, self.identity,
                   *(self.check_action(a, ()) for a in OFFERED_ACTIONS))
        if offered != self._offered:
            self._offered = offered
            self.refresh_bindings()

    # ------------------------------------------------------------ sign-in

    def action_sign_in(self) -> None:
        users = [u.id for u in self.deps.config.config.users]
        self.push_screen(SignInScreen(self.session.sign_in, users), self._signed_in)

    def _signed_in(self, who: Identity | None) -> None:
        if who is not None:
            self.identity = who
            self._signed_once = False
            self.notify(f"signed in as {who.name} ({', '.join(who.roles)})")
        self._after_identity_change()

    def sign_out(self) -> None:
        self.session.sign_out()
        self.identity = None
        self._after_identity_change()

    def _after_identity_change(self) -> None:
        self._render_status()
        self._render_title()
        self._sync_bindings()
        self.view_widget.focus()

    def needs_pin(self) -> bool:
        return not self._signed_once or self.session.needs_pin()

    # ------------------------------------------------------------ decisions

    def action_approve(self) -> None:
        rec = self._current_rec()
        if rec is not None and self.may_decide(rec, "approve"):
            self.load_recommendation(rec.id, "approve")

    def action_reject(self) -> None:
        rec = self._current_rec()
        if rec is not None and self.may_decide(rec, "reject"):
            self.load_recommendation(rec.id, "reject")

    @work(exclusive=True, group="recommendation", thread=True, exit_on_error=False)
    def load_recommendation(self, rec_id: str, purpose: str) -> None:
        """Read what the person will be shown, and the hash their signature binds to."""
        self._read_recommendation(rec_id, purpose)

    @work(exclusive=True, group="recommendation-page", thread=True, exit_on_error=False)
    def refresh_recommendation_page(self, rec_id: str) -> None:
        """The open detail page's fresh read (its own group: never cancels an approval's)."""
        self._read_recommendation(rec_id, "refresh")

    def _read_recommendation(self, rec_id: str, purpose: str) -> None:
        try:
            detail = recommendation_detail(self.deps.engine, rec_id)
            with self.store.session() as s:
                row = s.get(Recommendation, rec_id)
                h = record_hash_of(row) if row is not None else ""
        except Exception as e:
            self.post_message(ActionDone("read", False, f"cannot read {rec_id}: {e}"))
            return
        self.post_message(RecommendationLoaded(detail, h, purpose))

    def on_recommendation_loaded(self, msg: RecommendationLoaded) -> None:
        d, h = msg.detail, msg.record_hash
        rec_id = d.view.id
        if msg.purpose == "show":
            self.push_screen(RecommendationScreen(d))
            return
        if msg.purpose == "refresh":
            if isinstance(self.screen, RecommendationScreen) and \
                    self.screen.recommendation_id == rec_id:
                self.screen.update_detail(d)
            return
        ask_pin = self.needs_pin()
        if msg.purpose == "approve":
            def approve(_: str | None, comment: str, pin: str | None) -> str:
                try:
                    a = self.decider.approve(rec_id, session=self.session,
                                             pin=pin if ask_pin else None, comment=comment,
                                             seen_hash=h)
                except RecordChanged:
                    return RECORD_CHANGED
                self._signed_once = True
                if a.waiting_for_second:
                    return f"{rec_id}: first signature recorded; a second person must approve"
                return f"{rec_id} approved: action #{a.action_id} queued for execution"

            def approved(result: str | None) -> None:
                if result == RECORD_CHANGED:  # what was read is not what would be signed
                    self.notify(f"{rec_id} changed while you read it (new evidence merged): "
                                "here it is again — read it to its end and sign",
                                severity="warning", timeout=8)
                    self.load_recommendation(rec_id, "approve")
                    return
                self._decided(result)

            self.push_screen(ActionDialog(
                f"Approve {rec_id}?", what_will_happen(d), approve,
                text_label="comment (optional)", ask_pin=ask_pin,
                confirm="Enter signs the approval"), approved)
        else:
            def reject(reason: str | None, text: str, pin: str | None) -> str:
                self.decider.reject(rec_id, self.identity.user_id if self.identity else "",
                                    pin if ask_pin else None, reason or "", text,
                                    session=self.session)
                self._signed_once = True
                return f"{rec_id} rejected: {reason}"

            body = (f"Reject [b]{rec_id}[/]: {d.view.action.replace('_', ' ')} on "
                    f"{d.view.target}.\nWhy: {d.view.rationale}\n\nPick the reason (it "
                    "teaches the loop what was wrong):")
            self.push_screen(ActionDialog(
                f"Reject {rec_id}", body, reject,
                choices=[(r, REASON_LABELS.get(r, r)) for r in REJECT_REASONS],
                text_label="a few words (required for 'other')", ask_pin=ask_pin,
                confirm="Enter signs the rejection"), self._decided)

    def _decided(self, result: str | None) -> None:
        if result:
            self.notify(result)
            self.refresh_snapshot()
        self.view_widget.focus()

    # ------------------------------------------------------------ alarms

    def action_acknowledge(self) -> None:
        alarm = self._current_alarm()
        if alarm is not None and self.identity is not None and \
                self.may_handle_alarm(alarm, "acknowledge"):
            self.ack_alarm(alarm.id, self.identity.user_id, f"{alarm.source}: {alarm.message}")

    @work(exclusive=True, group="alarm", thread=True, exit_on_error=False)
    def ack_alarm(self, alarm_id: int, user: str, what: str = "") -> None:
        assert self.deps.alarms is not None
        try:
            changes = self.deps.alarms.ack(alarm_id, user)
        except Exception as e:
            self.post_message(ActionDone("ack", False, str(e)))
            return
        for ch in changes:
            self.bus.publish(ch.as_event())
        self.post_message(ActionDone("ack", True, f"acknowledged {what or alarm_id}"))

    def action_shelve(self) -> None:
        alarm = self._current_alarm()
        if alarm is None or self.identity is None or self.deps.alarms is None or \
                not self.may_handle_alarm(alarm, "shelve"):
            return
        mgr, user, aid = self.deps.alarms, self.identity.user_id, alarm.id

        def shelve(choice: str | None, reason: str, _: str | None) -> str:
            duration = None if choice in (None, "one_shot") else float(choice)
            changes = mgr.shelve(aid, user, reason, duration_s=duration)
            for ch in changes:
                self.bus.publish(ch.as_event())
            label = dict(SHELVE_CHOICES).get(choice or "one_shot", "")
            return f"shelved ({label.split(':')[0]}): {source}"

        source = alarm.source
        body = (f"Shelve the {escape(alarm.priority)} alarm [b]{escape(source)}[/]:\n"
                f"{escape(alarm.message)}\n\nA shelved alarm is recorded but not annunciated. "
                "For how long?")
        self.push_screen(ActionDialog("Shelve alarm", body, shelve,
                                      choices=SHELVE_CHOICES, text_label="reason (required)",
                                      confirm="Enter shelves"), self._decided)

    # ------------------------------------------------------------ quality, maintenance

    def action_disposition(self) -> None:
        """Dispose a hold: ask for its release; sign it at once when the role may."""
        hold = self._current_hold()
        if hold is None or self.identity is None or not self.may_dispose(hold):
            return
        user, hold_id = self.identity.user_id, hold.id
        sign_now = self.may_sign_release()
        requested: dict[str, str] = {}  # survives a refused PIN: one request per dialog

        def dispose(choice: str | None, note: str, pin: str | None) -> str:
            disposition = choice or DISPOSITIONS[0]
            rid = requested.get("id")
            if rid is None:
                rid = request_release(self.store, self.deps.clock, hold_id, disposition, user,
                                      self._required_role("lot_release"), note.strip())
                requested["id"] = rid
                self.bus.publish(RecommendationEvent(
                    self.deps.clock.now(), f"{user} asks to release {hold_id} as {disposition}",
                    recommendation_id=rid, status="requested", decision_class="lot_release",
                    detail={"hold_id": hold_id, "disposition": disposition}))
            if not (sign_now and pin):
                return f"{rid}: release of {hold_id} as {disposition} requested; it awaits approval"
            with self.store.session() as s:
                row = s.get(Recommendation, rid)
                h = record_hash_of(row) if row is not None else ""
            try:
                a = self.decider.approve(rid, session=self.session, pin=pin, seen_hash=h)
            except Exception as e:
                raise RuntimeError(f"{rid} requested, not signed: {e}") from e
            self._signed_once = True
            if a.waiting_for_second:
                return f"{rid}: release requested and signed; a second person must approve"
            return f"{rid}: release of {hold_id} as {disposition} approved: action #{a.action_id}"

        lots = ", ".join(hold.lots) or "no lots"
        body = (f"Dispose hold [b]{hold_id}[/] ({lots}):\n{hold.reason}\n\n"
                "This asks for the lots' release with the disposition you pick; the release "
                "is a lot_release recommendation, signed like any other. ")
        body += ("Enter your PIN to sign it now, or leave the PIN empty to leave it for "
                 "another approver." if sign_now else
                 "Your role may not approve releases: it will wait for someone who may.")
        self.push_screen(ActionDialog(
            f"Disposition of {hold_id}", body, dispose,
            choices=[(d, DISPOSITION_LABELS.get(d, d)) for d in DISPOSITIONS],
            text_label="note: why this disposition (goes with the request)", ask_pin=sign_now,
            pin_label="PIN signs the release now (empty: request only)",
            confirm="Enter requests" + (" (and signs with a PIN)" if sign_now else "")),
            self._decided)

    def _required_role(self, decision_class: str) -> str:
        """As the recommender names it: the least privileged role that may decide."""
        roles = self.auth.roles_for(decision_class)
        plain = [r for r in roles if r != "admin"]
        return (plain or roles or ["admin"])[0]

    def action_complete_work_order(self) -> None:
        """Sign a work order off as done (PIN every time: it closes the plant's record)."""
        wo = self._current_wo()
        if wo is None or self.identity is None or not self.may_complete(wo):
            return
        user, wo_id, eq = self.identity.user_id, wo.id, wo.equipment_id

        def complete(_: str | None, __: str, pin: str | None) -> str:
            aid = complete_work_order(self.store, self.auth, self.deps.clock, wo_id, user,
                                      pin or "")
            self._signed_once = True
            self.bus.publish(DecisionEvent(
                self.deps.clock.now(), f"{user} signed {wo_id} off as done",
                equipment_id=eq, verdict="completion_signed", user_id=user,
                detail={"work_order_id": wo_id, "action_id": aid}))
            return f"{wo_id} signed off: action #{aid} tells the plant and closes it"

        body = (f"Sign work order [b]{wo_id}[/] off as done: {wo.kind} · {wo.fault_mode} on "
                f"[b]{eq}[/] (now {wo.status}).\n\nThe runtime tells the plant the work is "
                "complete and closes the work order. Your PIN is your electronic signature, "
                f"meaning \"work order {wo_id} done\".")
        self.push_screen(ActionDialog(f"Complete {wo_id}", body, complete, ask_pin=True,
                                      confirm="Enter signs"), self._decided)

    def action_dispatch(self) -> None:
        open_dispatch(self)

    def on_action_done(self, msg: ActionDone) -> None:
        if msg.ok:
            self.notify(msg.text)
            self.refresh_snapshot()
        else:
            self.notify(msg.text, severity="error", timeout=8)

    # ------------------------------------------------------------ navigation

    def show_view(self, name: str, remember: bool = True) -> None:
        if name not in VIEWS:
            self.notify(f"no view {name!r}; try {', '.join(VIEWS)}", severity="warning")
            return
        if remember and name != self.current_view:
            self._view_history.append(self.current_view)
            del self._view_history[:-20]
        self.current_view = name
        self._save_state()
        self.query_one(ContentSwitcher).current = f"view-{name}"
        if VIEWS[name].kind == "plan":
            self.refresh_plan()
        else:
            self._show_tables(name)
        self._render_title()
        self.view_widget.focus()
        self._sync_bindings()

    def action_command_mode(self) -> None:
        box = self.query_one("#command", Input)
        box.value = ""
        box.display = True
        self.set_focus(box)  # at once: keys typed right after ':' belong to the box

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = self.view_widget.filter_text
        box.display = True
        self.set_focus(box)  # (Widget.focus() defers; fast typists lose characters)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(VIEWS[self.current_view], self))

    def action_refresh(self) -> None:
        self.refresh_snapshot()
        self.refresh_oee()
        self.refresh_plan()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"
        self._save_state()

    def _save_state(self) -> None:
        if self.deps.state is not None:
            self.save_state({"theme": "light" if self.theme == "textual-light" else "dark",
                             "view": self.current_view})

    @work(exclusive=True, group="state", thread=True, exit_on_error=False)
    def save_state(self, state: dict[str, str]) -> None:
        """A few bytes, but a file write all the same: off the event loop."""
        assert self.deps.state is not None
        self.deps.state.save(state)

    def action_go_back(self) -> None:
        """k9s's q: close the page on top, else clear the filter, else the previous view;
        on the first view, quit (asking first when the runtime is live)."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
            return
        if self.view_widget.filter_text:
            self.action_back()
            return
        if self._view_history:
            self.show_view(self._view_history.pop(), remember=False)
            return
        self.action_confirm_quit()

    def action_confirm_quit(self) -> None:
        if not self.deps.runtime_live:
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen):
            return
        self.push_screen(ConfirmScreen(
            "Quit loopline?", "The plant runtime runs in this console: quitting stops the "
            "drivers, the closed loop and the twin (the store keeps everything).",
            "y quits · n or Esc stays"), lambda yes: self.exit() if yes else None)

    def action_sort_next(self) -> None:
        """Sort by the next visible column; after the last, back to the natural order."""
        t = self.view_widget
        if not isinstance(t, SnapshotTable):
            return
        keys = [c.key for c in t.visible_columns]
        nxt = keys[0] if t.sort_key not in keys else (
            None if keys.index(t.sort_key) == len(keys) - 1 else
            keys[keys.index(t.sort_key) + 1])
        t.sort_by(nxt, t.sort_reverse)
        self._render_title()

    def action_sort_reverse(self) -> None:
        t = self.view_widget
        if isinstance(t, SnapshotTable) and t.sort_key is not None:
            t.sort_by(t.sort_key, not t.sort_reverse)
            self._render_title()

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = True) -> None:  # type: ignore[override]
        """Every toast is kept (``:toasts`` shows them): they vanish after a few seconds."""
        self.toasts.append((self.deps.clock.now(), severity, message))
        super().notify(message, title=title, severity=severity,  # type: ignore[arg-type]
                       timeout=timeout, markup=markup)

    def show_toasts(self) -> None:
        rows = [f"{ts:%H:%M:%S}  {sev:<11}  {escape(msg)}"
                for ts, sev, msg in reversed(self.toasts)] or ["(none yet)"]
        self.push_screen(TextScreen("Messages (newest first)", "\n".join(rows)))

    def action_back(self) -> None:
        for box_id in ("#command", "#filter"):
            box = self.query_one(box_id, Input)
            if box.display:
                if box_id == "#filter":
                    self.view_widget.set_filter("")
                    self._render_title()
                box.display = False
                self.view_widget.focus()
                return
        if self.view_widget.filter_text:
            self.view_widget.set_filter("")
            self._render_title()

    def action_drill(self) -> None:
        spec = VIEWS[self.current_view]
        if spec.kind != "table":
            return
        key = self.table.current_key()
        if not key:
            return
        if spec.drill == "equipment":
            self.open_equipment(key)
        elif spec.drill == "lot":
            self.load_lot(key)
        elif spec.drill == "recommendation":
            self.load_recommendation(key, "show")

    @work(exclusive=True, group="lot", thread=True, exit_on_error=False)
    def load_lot(self, lot_id: str) -> None:
        try:
            detail = lot_detail(self.deps.engine, lot_id)
        except Exception as e:
            self.post_message(ActionDone("read", False, f"cannot read lot {lot_id}: {e}"))
            return
        self.post_message(LotLoaded(detail))

    def on_lot_loaded(self, msg: LotLoaded) -> None:
        self.push_screen(LotScreen(msg.detail))

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
        if self.screen is self.screen_stack[0]:
            self.view_widget.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.view_widget.set_filter(event.value)
        self._render_title()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.view_widget.focus()

    def resource_names(self, command: str) -> list[str]:
        """What `:eq` completes: equipment ids, then their names (config order)."""
        eqs = [e for ln in self.deps.config.config.lines for e in ln.equipment]
        return [e.id for e in eqs] + [e.name for e in eqs if " " not in e.name]

    def run_command(self, text: str) -> None:
        parts = text.strip().lstrip(":").split()
        if not parts:
            return
        cmd, args = parts[0].lower(), parts[1:]
        if cmd not in COMMANDS:  # a unique prefix is enough (`:ac` → `:actions`)
            hits = [c for c in COMMANDS if c.startswith(cmd)]
            cmd = hits[0] if len(hits) == 1 else cmd
        if cmd in VIEWS:
            self.show_view(cmd)
        elif cmd in ("eq", "equipment"):
            if args:
                self.open_equipment(args[0])
            else:
                self.notify("usage: :eq NAME", severity="warning")
        elif cmd in ("login", "signin"):
            self.action_sign_in()
        elif cmd in ("logout", "signout"):
            self.sign_out()
        elif cmd in ("q", "quit"):
            self.action_confirm_quit()
        elif cmd in ("toasts", "messages"):
            self.show_toasts()
        elif cmd == "theme":
            self.action_toggle_theme()
        elif cmd == "help":
            self.action_help()
        else:
            self.notify(f"unknown command {cmd!r}; try {', '.join(COMMANDS)}",
                        severity="warning")


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Once per process, after start-up: collect, then move every object alive now (config,
    master data, Textual's DOM, the runtime's models) out of the cyclic GC's reach. A full
    (gen 2) pass walked them all and held the GIL for 50-120 ms, which a key press met."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def create_app(deps: AppDeps) -> LooplineApp:
    """The one app factory: the CLI and the tests both come through here."""
    return LooplineApp(deps)


def default_clock() -> Clock:
    return WallClock()
