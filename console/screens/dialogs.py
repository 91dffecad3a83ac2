"""Modal dialogs that sign or act: sign-in, approve, reject, shelve.

A dialog states what will happen, collects what the rule needs (a choice, a few words,
the PIN) and runs the act in a thread worker; the result comes back as a typed message.
A refusal (wrong PIN, locked out, stale record) is shown in the dialog, which stays open
so the person can correct it; success closes it with the result text.

What a person signs is what they could read: the record scrolls inside the dialog (the
fields and the hint keep their rows at any terminal height), a line under it says how
much is still below, and the dialog refuses to sign until the record was seen to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

from core.auth import Identity

Submit = Callable[[str | None, str, str | None], str]  # (choice, text, pin) -> result text


class DialogFinished(Message):
    def __init__(self, ok: bool, text: str, result: object = None) -> None:
        self.ok, self.text, self.result = ok, text, result
        super().__init__()


class ActionDialog(ModalScreen[str | None]):
    """Body text, then optionally a choice list, a text line and a PIN; Enter signs.

    The body is sized to what the screen leaves after the fields, and must have been
    scrolled to its end (``seen_end``) before the act runs."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog_cancel"),
        # priority: the next field takes the focus before the next key is delivered (a
        # burst of keys after Enter — a stalled loop, a fast typist — went to the old one)
        Binding("enter", "next_field", "Next / sign", id="dialog_next", show=False,
                priority=True),
        Binding("pagedown,ctrl+down", "scroll_record(1)", "Read on", id="dialog_read_on"),
        Binding("pageup,ctrl+up", "scroll_record(-1)", "Read back", id="dialog_read_back"),
    ]

    def __init__(self, title: str, body: str, submit: Submit, *,
                 choices: Sequence[tuple[str, str]] = (), text_label: str | None = None,
                 ask_pin: bool = False, confirm: str = "Enter to sign",
                 pin_label: str = "PIN") -> None:
        super().__init__()
        self.title_text, self.body, self.submit = title, body, submit
        self.choices = list(choices)
        self.text_label, self.ask_pin, self.confirm = text_label, ask_pin, confirm
        self.pin_label = pin_label
        self.busy = False
        self.seen_end = False  # the record was shown down to its last line

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]{self.title_text}[/]", id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(self.body, id="dialog-record")
            yield Static("", id="dialog-seen")
            if self.choices:
                yield OptionList(*[label for _, label in self.choices], id="dialog-choice")
            if self.text_label is not None:
                yield Input(placeholder=self.text_label, id="dialog-text")
            if self.ask_pin:
                yield Input(placeholder=self.pin_label, password=True, id="dialog-pin")
            yield Static("", id="dialog-error")
            hint = f"{self.confirm} · Esc cancels"
            if not self.ask_pin and not self.choices and self.text_label is None:
                hint = "Enter confirms · Esc cancels"
            yield Static(hint, id="dialog-hint")

    def on_mount(self) -> None:
        if self.choices:
            self.query_one(OptionList).highlighted = 0
        body = self.query_one("#dialog-body", VerticalScroll)
        self.watch(body, "scroll_y", self._record_scrolled, init=False)
        self.focus_next_field(None)
        self.call_after_refresh(self._fit_record)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_record)

    def _fit_record(self) -> None:
        """Give the record the rows the other parts leave (at 80×24 the fields, the error
        line and the hint would otherwise be pushed off the bottom)."""
        if not self.is_attached:
            return
        dialog = self.query_one("#dialog")
        body = self.query_one("#dialog-body", VerticalScroll)
        others = sum(w.outer_size.height for w in dialog.children if w is not body)
        frame = dialog.outer_size.height - dialog.size.height  # border + padding
        rows = max(3, self.size.height - 2 - frame - others)
        if body.styles.max_height is None or body.styles.max_height.value != rows:
            body.styles.max_height = rows
        self.call_after_refresh(self._record_scrolled)

    def _record_scrolled(self, *_: object) -> None:
        body = self.query_one("#dialog-body", VerticalScroll)
        if body.max_scroll_y <= 0 or body.scroll_y >= body.max_scroll_y - 0.5:
            self.seen_end = True
        total = body.virtual_size.height
        shown_to = min(total, int(body.scroll_y) + body.size.height)
        below = total - shown_to
        if below > 0:  # one row, always: the layout must not move under the signer
            text = (f"[b yellow]▼ {below} more line(s) below · PgDn reads on"
                    f"{'' if self.seen_end else ' · signing needs the end'}[/]")
        elif body.max_scroll_y > 0:
            text = "[dim]end of the record · PgUp reads back[/]"
        else:
            text = ""
        self.query_one("#dialog-seen", Static).update(text)

    def action_scroll_record(self, pages: int) -> None:
        body = self.query_one("#dialog-body", VerticalScroll)
        body.scroll_to(y=body.scroll_y + pages * max(1, body.size.height - 1), animate=False)

    def focus_next_field(self, after: str | None) -> None:
        order = [w for w in ("dialog-choice", "dialog-text", "dialog-pin")
                 if self.query(f"#{w}")]
        nxt = order[order.index(after) + 1] if after in order and \
            order.index(after) + 1 < len(order) else (None if after else
                                                     (order[0] if order else None))
        if nxt is None:
            if after is not None or not order:
                self.do_submit()
            return
        self.set_focus(self.query_one(f"#{nxt}"))  # at once (Widget.focus() defers)

    def action_next_field(self) -> None:
        """Enter: the choice, the text and the PIN in turn, then sign."""
        focused = self.focused
        fid = focused.id if focused is not None else None
        if fid in ("dialog-choice", "dialog-text", "dialog-pin"):
            self.focus_next_field(fid)
        elif not self.query("Input, OptionList"):
            self.do_submit()
        else:
            self.focus_next_field(None)

    def do_submit(self) -> None:
        if self.busy:
            return
        self._record_scrolled()
        if not self.seen_end:
            self.query_one("#dialog-error", Static).update(
                "[b red]read the whole record first: PgDn to its end, then Enter[/]")
            return
        choice = None
        if self.choices:
            idx = self.query_one(OptionList).highlighted
            choice = self.choices[idx if idx is not None else 0][0]
        text = self.query_one("#dialog-text", Input).value if self.query("#dialog-text") else ""
        pin = self.query_one("#dialog-pin", Input).value if self.ask_pin else None
        self.busy = True
        self.query_one("#dialog-error", Static).update("[dim]working…[/]")
        self.run_submit(choice, text, pin)

    @work(thread=True, exclusive=True, group="dialog", exit_on_error=False)
    def run_submit(self, choice: str | None, text: str, pin: str | None) -> None:
        try:
            result = self.submit(choice, text, pin)
        except Exception as e:  # every refusal carries a message a person can act on
            self.post_message(DialogFinished(False, str(e) or type(e).__name__))
            return
        self.post_message(DialogFinished(True, result))

    def on_dialog_finished(self, msg: DialogFinished) -> None:
        self.busy = False
        if msg.ok:
            self.dismiss(msg.text)
            return
        self.query_one("#dialog-error", Static).update(f"[b red]{msg.text}[/]")
        self.call_after_refresh(self._fit_record)  # a long refusal takes a second row
        if self.ask_pin:
            pin = self.query_one("#dialog-pin", Input)
            pin.value = ""
            self.set_focus(pin)

    def action_cancel(self) -> None:
        self.dismiss(None)


SignIn = Callable[[str, str], Identity]


class SignInScreen(ModalScreen[Identity | None]):
    """User id + PIN, checked by core.auth (wrong PIN and lock-out say so)."""

    BINDINGS = [
        Binding("escape", "cancel", "Continue without signing in", id="signin_cancel"),
        Binding("enter", "next_field", "Next / sign in", id="signin_next", show=False,
                priority=True),  # as in ActionDialog: the PIN box has the focus at once
    ]

    def __init__(self, sign_in: SignIn, users: Sequence[str], current: str | None = None
                 ) -> None:
        super().__init__()
        self.sign_in, self.users, self.current = sign_in, list(users), current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("[b]Sign in[/]", id="dialog-title")
            yield Static("Your user id and PIN. Your role decides which actions the console "
                         "offers you.\nUsers: " + ", ".join(self.users), id="signin-help")
            yield Input(value=self.current or "", placeholder="user id", id="signin-user")
            yield Input(placeholder="PIN", password=True, id="signin-pin")
            yield Static("", id="dialog-error")
            yield Static("Enter signs in · Esc continues read-only", id="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#signin-pin" if self.current else "#signin-user").focus()

    def action_next_field(self) -> None:
        if self.focused is not None and self.focused.id == "signin-pin":
            self._pin_entered()
        else:
            self.set_focus(self.query_one("#signin-pin"))

    def _pin_entered(self) -> None:
        user = self.query_one("#signin-user", Input).value.strip()
        pin = self.query_one("#signin-pin", Input).value
        if not user:
            self.query_one("#dialog-error", Static).update("[b red]enter your user id[/]")
            self.set_focus(self.query_one("#signin-user"))
            return
        self.query_one("#dialog-error", Static).update("[dim]checking…[/]")
        self.check(user, pin)

    @work(thread=True, exclusive=True, group="signin", exit_on_error=False)
    def check(self, user: str, pin: str) -> None:
        try:
            who = self.sign_in(user, pin)
        except Exception as e:
            self.post_message(DialogFinished(False, str(e)))
            return
        self.post_message(DialogFinished(True, "", who))

    def on_dialog_finished(self, msg: DialogFinished) -> None:
        if msg.ok:
            self.dismiss(msg.result)  # type: ignore[arg-type]
            return
        self.query_one("#dialog-error", Static).update(f"[b red]{msg.text}[/]")
        pin = self.query_one("#signin-pin", Input)
        pin.value = ""
        self.set_focus(pin)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question (quitting with the runtime live): y or Enter yes, n or Esc no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
    ]

    def __init__(self, title: str, body: str, hint: str) -> None:
        super().__init__()
        self.title_text, self.body, self.hint = title, body, hint

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]{self.title_text}[/]", id="dialog-title")
            yield Static(self.body, id="confirm-body")
            yield Static(self.hint, id="dialog-hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
