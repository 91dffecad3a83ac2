"""The request dialog on the equipment page: ask for a setpoint change or a machine command.

The choices are the machine's writable setpoints (the highlighted tag first) and the
plant's machine commands; the dialog takes the value (or the command's arguments,
``fault=bearing``), the reason and the requester's PIN (a request is signed), and
``core.requests.Requester`` turns it into a recommendation the Actions view shows for
approval — by someone else where ``[autonomy] four_eyes`` names its class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

from console.screens.dialogs import DialogFinished
from core.engine.executors.command import COMMANDS
from core.requests import REQUEST_ROLES, Requester

if TYPE_CHECKING:
    from console.app import LooplineApp


@dataclass(frozen=True)
class RequestChoice:
    kind: str  # "setpoint" | "command"
    name: str
    label: str


def request_choices(app: LooplineApp, equipment_id: str,
                    highlighted: str | None = None) -> list[RequestChoice]:
    """The machine's writable setpoints (the highlighted one first), then its commands."""
    tags = [t for t in app.deps.config.tags if t.equipment_id == equipment_id]
    sps = [t for t in tags if t.spec.kind == "setpoint" and t.spec.writable]
    sps.sort(key=lambda t: t.id != highlighted)
    out = [RequestChoice("setpoint", t.name, f"setpoint {t.name} ({t.spec.unit or 'no unit'})")
           for t in sps]
    if any(t.spec.kind == "command" for t in tags):
        out += [RequestChoice("command", c, f"command {c}" + (
            f" (needs {', '.join(COMMANDS[c])})" if COMMANDS[c] else ""))
            for c in sorted(COMMANDS)]
    return out


class RequestScreen(ModalScreen[str | None]):
    """Pick what, give the value (or arguments), the reason and the PIN; Enter requests."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="request_cancel")]

    def __init__(self, equipment_id: str, choices: list[RequestChoice], requester: Requester,
                 user_id: str) -> None:
        super().__init__()
        self.equipment_id, self.choices = equipment_id, choices
        self.requester, self.user_id = requester, user_id
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]Request a change on {self.equipment_id}[/]", id="dialog-title")
            yield Static("It becomes a recommendation with you as its author; someone who may "
                         "decide its class approves it (not you, where four-eyes applies).",
                         id="request-help")
            yield OptionList(*[c.label for c in self.choices], id="request-what")
            yield Input(placeholder="new value (setpoint) or arguments k=v (command)",
                        id="request-value")
            yield Input(placeholder="reason (required: the approver reads it)",
                        id="request-reason")
            yield Input(placeholder="PIN (a request is signed)", password=True,
                        id="request-pin")
            yield Static("", id="dialog-error")
            yield Static("Enter requests · Esc cancels", id="dialog-hint")

    def on_mount(self) -> None:
        if self.choices:
            self.query_one(OptionList).highlighted = 0
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self) -> None:
        self.query_one("#request-value").focus()

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        order = ["request-value", "request-reason", "request-pin"]
        i = order.index(event.input.id) + 1 if event.input.id in order else len(order)
        if i < len(order):
            self.query_one(f"#{order[i]}").focus()
        else:
            self.do_submit()

    def do_submit(self) -> None:
        if self.busy or not self.choices:
            return
        idx = self.query_one(OptionList).highlighted
        choice = self.choices[idx if idx is not None else 0]
        value = self.query_one("#request-value", Input).value.strip()
        reason = self.query_one("#request-reason", Input).value
        pin = self.query_one("#request-pin", Input).value
        self.busy = True
        self.query_one("#dialog-error", Static).update("[dim]working…[/]")
        self.run_request(choice, value, reason, pin)

    @work(thread=True, exclusive=True, group="request", exit_on_error=False)
    def run_request(self, choice: RequestChoice, value: str, reason: str, pin: str) -> None:
        try:
            if choice.kind == "setpoint":
                try:
                    number = float(value)
                except ValueError:
                    raise ValueError(f"{value!r} is not a number: enter the new value") from None
                r = self.requester.setpoint(self.user_id, self.equipment_id, choice.name,
                                            number, reason=reason, pin=pin)
            else:
                args = dict(p.split("=", 1) for p in value.split() if "=" in p)
                r = self.requester.command(self.user_id, self.equipment_id, choice.name, args,
                                           reason=reason, pin=pin)
        except Exception as e:  # every refusal carries a message a person can act on
            self.post_message(DialogFinished(False, str(e) or type(e).__name__))
            return
        self.post_message(DialogFinished(True, f"{r.recommendation_id}: {r.decision_class} "
                                         f"request for {r.target} awaits approval"))

    def on_dialog_finished(self, msg: DialogFinished) -> None:
        self.busy = False
        if msg.ok:
            self.dismiss(msg.text)
            return
        self.query_one("#dialog-error", Static).update(f"[b red]{msg.text}[/]")
        pin = self.query_one("#request-pin", Input)
        pin.value = ""

    def action_cancel(self) -> None:
        self.dismiss(None)


def may_request(app: LooplineApp) -> bool:
    return app.identity is not None and any(r in REQUEST_ROLES for r in app.identity.roles)


def open_request(app: LooplineApp, equipment_id: str, highlighted: str | None) -> None:
    """The request dialog for a machine (the equipment page's ``w`` key)."""
    if app.identity is None or not may_request(app):
        app.notify("sign in as an engineer (shift lead, maintenance, quality, admin) to "
                   "request a change", severity="warning")
        return
    choices = request_choices(app, equipment_id, highlighted)
    if not choices:
        app.notify(f"{equipment_id} has no writable setpoint and no command tag",
                   severity="warning")
        return
    req = Requester(app.store, app.auth, app.deps.clock, app.deps.config.tags)

    def done(result: str | None) -> None:
        if result:
            app.notify(result)
            app.refresh_snapshot()

    app.push_screen(RequestScreen(equipment_id, choices, req, app.identity.user_id), done)
