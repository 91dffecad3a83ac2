"""The reliability harness behind ``python -m bench chaos``: loopline broken on purpose.

Each scenario module runs real parts (the runtime and the twin as processes on loopback
ports, a real SQLite file, the real CLI) and returns one ``Row``: trials, failures, data
lost, actions doubled, and a note with the figure the issue asks for. Seeded: the same
seed gives the same kill points, fuzz cases and tampering.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    scenario: str
    trials: int = 0
    failures: int = 0
    data_lost: int = 0
    doubled: int = 0
    note: str = ""
    problems: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.failures += 1
        if len(self.problems) < 20:
            self.problems.append(why)


def render(rows: list[Row]) -> str:
    head = f"{'scenario':<24} {'trials':>6} {'failures':>8} {'data lost':>9} " \
           f"{'doubled':>7}  note"
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(f"{r.scenario:<24} {r.trials:>6} {r.failures:>8} {r.data_lost:>9} "
                   f"{r.doubled:>7}  {r.note}")
        out.extend(f"{'':<24}   ! {p}" for p in r.problems)
    return "\n".join(out)


ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """This checkout first on the path of every child process (not the installed one)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("LOOPLINE_DB", None)
    env.pop("LOOPLINE_CONFIG", None)
    env.update(extra)
    return env


def cli(*args: str, timeout: float = 120, env_extra: dict[str, str] | None = None,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    """``loopline ARGS`` as a user runs it: its own process, stdout and stderr kept."""
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT,
                          env=child_env(**(env_extra or {})), capture_output=True, text=True,
                          timeout=timeout, check=False, **kw)
