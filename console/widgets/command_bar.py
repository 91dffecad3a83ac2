"""The `:` command bar: Tab completes commands and resource names, case-insensitively.

k9s habit: `:ac` Tab → `:actions`, `:eq a-la` Tab → `:eq A-LATHE1`. The suggestion is shown
greyed after the cursor as soon as it is unique enough; Tab (or Right) accepts it, and a
second Tab on a completed word cycles to the next candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input

# commands whose argument names a resource, and where the names come from
RESOURCE_COMMANDS = ("eq", "equipment")


def candidates(value: str, commands: Sequence[str],
               resources: Callable[[str], Sequence[str]]) -> list[str]:
    """Every full command line that ``value`` is a (case-insensitive) prefix of."""
    head, sep, rest = value.lstrip(":").partition(" ")
    if not sep:
        low = head.casefold()
        return [c for c in commands if c.casefold().startswith(low)]
    cmd = head.casefold()
    if cmd not in RESOURCE_COMMANDS:
        return []
    low = rest.strip().casefold()
    return [f"{head} {n}" for n in resources(cmd) if n.casefold().startswith(low)]


class CommandSuggester(Suggester):
    def __init__(self, commands: Sequence[str],
                 resources: Callable[[str], Sequence[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.commands, self.resources = list(commands), resources

    async def get_suggestion(self, value: str) -> str | None:
        hits = candidates(value, self.commands, self.resources)
        return hits[0] if hits and len(value) > 0 else None


class CommandBar(Input):
    """An Input whose Tab completes (the app's Tab would move the focus away)."""

    BINDINGS = [Binding("tab", "complete", "Complete", id="command_complete", show=False)]

    def __init__(self, commands: Sequence[str], resources: Callable[[str], Sequence[str]],
                 **kw: object) -> None:
        super().__init__(suggester=CommandSuggester(commands, resources), **kw)  # type: ignore[arg-type]
        self.commands, self.resources = list(commands), resources
        self._cycle: tuple[str, list[str], int] | None = None  # (typed, hits, index)

    def action_complete(self) -> None:
        typed = self._cycle[0] if self._cycle and self.value == \
            self._cycle[1][self._cycle[2]] else self.value
        hits = candidates(typed, self.commands, self.resources)
        if not hits:
            self.app.bell()
            return
        if self._cycle and self._cycle[0] == typed and self.value in hits:
            idx = (hits.index(self.value) + 1) % len(hits)
        else:
            idx = 0
        self._cycle = (typed, hits, idx)
        choice = hits[idx]
        # a command alone gets its space when it takes an argument
        if " " not in choice and choice.casefold() in RESOURCE_COMMANDS and len(hits) == 1:
            choice += " "
        self.value = choice
        self.cursor_position = len(choice)
