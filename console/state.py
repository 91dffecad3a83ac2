"""What the console remembers across restarts: the theme and the last view.

A small JSON file, ``$XDG_STATE_HOME/loopline/console.json`` when that is set, else
``data/console-state.json`` beside the plant's store (git-ignored with the rest of data/).
A missing or unreadable file is an empty state, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

KEYS = ("theme", "view")


class ConsoleState:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def default(cls, base_dir: Path) -> ConsoleState:
        xdg = os.environ.get("XDG_STATE_HOME")
        if xdg:
            return cls(Path(xdg) / "loopline" / "console.json")
        return cls(base_dir / "data" / "console-state.json")

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: str(v) for k, v in data.items() if k in KEYS} if isinstance(data, dict) \
            else {}

    def save(self, state: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: state[k] for k in KEYS if k in state}))
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only place only means the next start opens on Lines
