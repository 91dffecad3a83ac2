"""The ground-truth log: what really happened, in twin time, as JSON lines.

It exists to score the console (was the failure predicted, was the scrap cause
found) and is never read by it. Lines are written in event order with sorted keys so
two runs with the same seed give byte-identical files.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any


class TruthLog:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._fh: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")
        self.events: list[dict[str, Any]] = []
        self.keep_in_memory = self.path is None

    def write(self, at: datetime, event: str, **fields: Any) -> None:
        rec = {"t": at.isoformat().replace("+00:00", "Z"), "event": event, **fields}
        if self.keep_in_memory:
            self.events.append(rec)
        if self._fh is not None:
            self._fh.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_truth(path: str | Path) -> list[dict[str, Any]]:
    """For scoring and tests: the log as a list of records."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
