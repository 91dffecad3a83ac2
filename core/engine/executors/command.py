"""Machine-command adapter: a command a person requested (``core.requests``), sent once.

The interlock checks at execution time that the command is one of the plant's command
convention (``COMMANDS``; the same vocabulary the other adapters send) and carries what
that command needs; the plant side (``PlantCommands.send_command``: the machine's command
tag) refuses what the machine does not know. The idempotency key goes with the command,
so a re-sent command after a crash is recognised by the machine, not acted on twice.
"""

from __future__ import annotations

from typing import Any

from core.engine.executors.base import ActionFailed, ActionView, resolve
from core.engine.executors.plant import PlantCommands

# command -> the arguments it needs (the plant's command-tag convention, sim/README.md)
COMMANDS: dict[str, tuple[str, ...]] = {
    "hold_lot": (), "release_lot": (), "complete_wo": ("fault",),
}


def check_command(command: str, args: dict[str, Any]) -> None:
    """Raise ValueError naming what is wrong; used at request time and before sending."""
    if command not in COMMANDS:
        raise ValueError(f"unknown machine command {command!r}; known: "
                         f"{', '.join(sorted(COMMANDS))}")
    missing = [a for a in COMMANDS[command] if not args.get(a)]
    if missing:
        raise ValueError(f"{command} needs {', '.join(missing)} (e.g. --arg "
                         f"{missing[0]}=...)")


class CommandAdapter:
    kinds = ("send_command",)

    def __init__(self, plant: PlantCommands) -> None:
        self.plant = plant

    def execute(self, a: ActionView) -> dict[str, Any]:
        p = a.params
        eq, command = str(p.get("equipment_id") or ""), str(p.get("command") or "")
        args = dict(p.get("args") or {})
        try:
            check_command(command, args)
        except ValueError as e:
            raise ActionFailed(f"interlock: {e}; not sent") from None
        if not eq:
            raise ActionFailed("no equipment to send the command to")
        sent = resolve(self.plant.send_command(eq, command, args, a.idempotency_key))
        return {"equipment_id": eq, "command": command, "args": args,
                **(sent if isinstance(sent, dict) else {})}
