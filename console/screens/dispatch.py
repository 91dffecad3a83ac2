"""The dispatch dialog: start, pause, resume or complete an order's operation on a machine
from the Lines view (a machine's row) or the Orders view (an order's row).

The acts on offer come from ``core.dispatch.dispatch_options``; the dialog collects the
lot (optional: the order's open lot, else a new one) and the operator (default: who is
signed in), and the PIN when ``[auth] sign_dispatch`` asks for it. The act runs in a thread
worker through ``core.dispatch.Dispatcher``; a refusal stays in the dialog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

from console.screens.dialogs import DialogFinished
from core.auth import FLOOR_ROLES
from core.dispatch import Dispatcher, DispatchOption, dispatch_options

if TYPE_CHECKING:
    from console.app import LooplineApp


class DispatchScreen(ModalScreen[str | None]):
    """Pick the act, give the lot and operator (and PIN); Enter dispatches."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dispatch_cancel")]

    def __init__(self, title: str, options: list[DispatchOption], dispatcher: Dispatcher,
                 user_id: str, *, ask_pin: bool) -> None:
        super().__init__()
        self.title_text, self.options = title, options
        self.dispatcher, self.user_id, self.ask_pin = dispatcher, user_id, ask_pin
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]{self.title_text}[/]", id="dialog-title")
            if not self.options:
                yield Static("Nothing to dispatch here: no open order has an operation on "
                             "this machine.", id="dispatch-none")
            else:
                yield OptionList(*[o.label for o in self.options], id="dispatch-act")
                yield Input(placeholder="lot (start only; empty: the order's open lot, "
                            "else a new one)", id="dispatch-lot")
                yield Input(value=self.user_id, placeholder="operator", id="dispatch-operator")
                if self.ask_pin:
                    yield Input(placeholder="PIN", password=True, id="dispatch-pin")
            yield Static("", id="dialog-error")
            yield Static("Enter dispatches · Esc cancels", id="dialog-hint")

    def on_mount(self) -> None:
        if self.options:
            self.query_one(OptionList).highlighted = 0
            self.query_one(OptionList).focus()

    def _fields(self) -> list[str]:
        return [w for w in ("dispatch-act", "dispatch-lot", "dispatch-operator", "dispatch-pin")
                if self.query(f"#{w}")]

    def _next(self, after: str) -> None:
        order = self._fields()
        i = order.index(after) + 1
        if i < len(order):
            self.query_one(f"#{order[i]}").focus()
        else:
            self.do_submit()

    @on(OptionList.OptionSelected)
    def _chosen(self) -> None:
        opt = self.chosen()
        # only a start takes a lot and an operator: the other acts go straight to the PIN
        if opt is not None and opt.act != "start":
            if self.ask_pin:
                self.query_one("#dispatch-pin").focus()
            else:
                self.do_submit()
            return
        self._next("dispatch-act")

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        if event.input.id:
            self._next(event.input.id)

    def chosen(self) -> DispatchOption | None:
        if not self.options:
            return None
        idx = self.query_one(OptionList).highlighted
        return self.options[idx if idx is not None else 0]

    def do_submit(self) -> None:
        opt = self.chosen()
        if self.busy or opt is None:
            return
        lot = self.query_one("#dispatch-lot", Input).value.strip() or None
        operator = self.query_one("#dispatch-operator", Input).value.strip() or None
        pin = self.query_one("#dispatch-pin", Input).value if self.ask_pin else None
        self.busy = True
        self.query_one("#dialog-error", Static).update("[dim]working…[/]")
        self.run_act(opt, lot, operator, pin)

    @work(thread=True, exclusive=True, group="dispatch", exit_on_error=False)
    def run_act(self, opt: DispatchOption, lot: str | None, operator: str | None,
                pin: str | None) -> None:
        d, u = self.dispatcher, self.user_id
        try:
            if opt.act == "start":
                r = d.start(u, opt.equipment_id, opt.order_id, lot_id=lot, operator_id=operator,
                            pin=pin)
                text = (f"{r.operation_id} started on {r.equipment_id}: lot {r.lot_id}, "
                        f"operator {r.operator_id}")
            elif opt.act == "pause":
                r = d.pause(u, opt.equipment_id, pin=pin)
                text = f"{r.operation_id or r.order_id} paused on {r.equipment_id}"
            elif opt.act == "resume":
                r = d.resume(u, opt.equipment_id, pin=pin)
                text = f"{r.operation_id or r.order_id} resumed on {r.equipment_id}"
            else:
                r = d.complete(u, opt.equipment_id, pin=pin)
                text = f"{r.operation_id or r.order_id} complete on {r.equipment_id}"
        except Exception as e:  # every refusal carries a message a person can act on
            self.post_message(DialogFinished(False, str(e) or type(e).__name__))
            return
        self.post_message(DialogFinished(True, text))

    def on_dialog_finished(self, msg: DialogFinished) -> None:
        self.busy = False
        if msg.ok:
            self.dismiss(msg.text)
            return
        self.query_one("#dialog-error", Static).update(f"[b red]{msg.text}[/]")

    def action_cancel(self) -> None:
        self.dismiss(None)


def may_dispatch(app: LooplineApp) -> bool:
    """Offered on a machine's row (Lines) or an order's row (Orders) to operators, shift
    leads and admins."""
    if app.identity is None or app.current_view not in ("lines", "orders"):
        return False
    if not any(r in FLOOR_ROLES["dispatch"] for r in app.identity.roles):
        return False
    return app.table.current_key() is not None


def open_dispatch(app: LooplineApp) -> None:
    """The dialog for the highlighted machine or order (the app's ``o`` key)."""
    if not may_dispatch(app) or app.identity is None:
        return
    key = str(app.table.current_key())
    try:
        if app.current_view == "lines":
            options, title = dispatch_options(app.store, equipment_id=key), f"Dispatch on {key}"
        else:
            options, title = dispatch_options(app.store, order_id=key), f"Dispatch {key}"
    except Exception as e:
        app.notify(f"cannot read what to dispatch: {e}", severity="error")
        return
    dispatcher = Dispatcher(app.store, app.auth, app.deps.clock)
    ask_pin = bool(app.deps.config.config.auth.sign_dispatch)
    app.push_screen(DispatchScreen(title, options, dispatcher, app.identity.user_id,
                                   ask_pin=ask_pin), app._decided)
