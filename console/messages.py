"""Typed messages: the only way background work reaches widgets."""

from __future__ import annotations

from textual.message import Message

from core.views import PlantSnapshot


class SnapshotReady(Message):
    """A fresh read of the store; views diff it against what they show."""

    def __init__(self, snapshot: PlantSnapshot) -> None:
        self.snapshot = snapshot
        super().__init__()


class StoreUnavailable(Message):
    """The store could not be read this time (locked, missing); shown, then retried."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__()


class CommandEntered(Message):
    """A `:` command from the command bar."""

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__()
