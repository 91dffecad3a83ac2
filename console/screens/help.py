"""`?`: what the current view shows and which keys work here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.views import COMMANDS, ViewSpec

if TYPE_CHECKING:
    from textual.app import App


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help_close"),
        Binding("question_mark", "dismiss", "Close", key_display="?", id="help_close_q",
                show=False),
    ]

    def __init__(self, view: ViewSpec, app: App[None]) -> None:
        super().__init__()
        self.view = view
        self._bindings_text = "\n".join(
            f"  [b]{b.key_display or b.key:>8}[/]  {b.description}"
            for _, b, *_ in app.active_bindings.values()
            if b.description
        )

    def compose(self) -> ComposeResult:
        text = (
            f"[b]{self.view.title}[/]\n{self.view.help}\n\n[b]Keys[/]\n{self._bindings_text}\n\n"
            f"[b]Commands[/] (after `:`)\n  " + "  ".join(f":{c}" for c in COMMANDS)
            + "\n  :eq NAME opens one piece of equipment\n\nEsc closes this help."
        )
        with VerticalScroll(id="help-box"):
            yield Static(text, id="help-text")
