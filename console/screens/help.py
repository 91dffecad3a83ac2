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


# the keys that depend on the row and the role (the rest work in every view)
BLOCKABLE = ("approve", "reject", "acknowledge", "shelve", "disposition",
             "complete_work_order")


def keys_text(app: App[None]) -> str:
    """The console's own keys first (those that work here, then those blocked on this row
    or for this role, greyed); Textual's system keys (focus cycling, copy, the command
    palette) are left out — they are not the console's vocabulary."""
    own = [b for b in app.BINDINGS if isinstance(b, Binding) and b.description]
    active = {b.action for _, b, enabled, *_ in app.active_bindings.values() if enabled}
    lines = []
    for b in own:
        key = b.key_display or app.get_key_display(b)
        if b.action in active or b.action not in BLOCKABLE:  # the rest always work
            lines.append(f"  [b]{key:>8}[/]  {b.description}")
        else:
            lines.append(f"  [dim]{key:>8}  {b.description} (not here or not for your "
                         "role)[/]")
    lines.append("  [b]     Tab[/]  in the command bar: complete a command or a name")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help_close"),
        Binding("question_mark", "dismiss", "Close", key_display="?", id="help_close_q",
                show=False),
    ]

    def __init__(self, view: ViewSpec, app: App[None]) -> None:
        super().__init__()
        self.view = view
        self._bindings_text = keys_text(app)

    def compose(self) -> ComposeResult:
        text = (
            f"[b]{self.view.title}[/]\n{self.view.help}\n\n[b]Keys[/]\n{self._bindings_text}\n\n"
            f"[b]Commands[/] (after `:`)\n  " + "  ".join(f":{c}" for c in COMMANDS)
            + "\n  :eq NAME opens one piece of equipment\n\nEsc closes this help."
        )
        with VerticalScroll(id="help-box"):
            yield Static(text, id="help-text")
