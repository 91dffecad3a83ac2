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


# One process runs many command lines through the CLI's entry point (the `loopline`
# console script is `console.cli:main`), so 200 cases cost one start-up, not 200; each
# case reports its exit code, output and, if one escaped, the exception.
_BATCH = r"""
import contextlib, io, json, sys, traceback
main = __import__("console.cli", fromlist=["main"]).main  # the `loopline` entry point
out = []
for argv in json.load(open(sys.argv[1])):
    o, e, crashed, rc = io.StringIO(), io.StringIO(), None, 0
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            rc = int(main(argv) or 0)
        except SystemExit as x:
            rc = x.code if isinstance(x.code, int) else 1
        except BaseException as x:
            where = traceback.format_exc().strip().splitlines()[-3][:200]
            crashed = f"{type(x).__name__}: {x} | {where}"
            rc = 99
    out.append([rc, o.getvalue()[-2000:], e.getvalue()[-4000:], crashed])
json.dump(out, open(sys.argv[2], "w"))
"""


def cli_batch(cases: list[list[str]], workdir: Path) -> list[tuple[int, str, str, str | None]]:
    """Run each argv through ``loopline``'s entry point in one child process."""
    import json

    src, dst = workdir / "cli-batch-in.json", workdir / "cli-batch-out.json"
    src.write_text(json.dumps(cases), encoding="utf-8")
    dst.unlink(missing_ok=True)
    res = subprocess.run([sys.executable, "-c", _BATCH, str(src), str(dst)], cwd=ROOT,
                         env=child_env(), capture_output=True, text=True, timeout=1200,
                         check=False)
    if not dst.exists():
        raise RuntimeError(f"the CLI batch died: {res.stderr[-1000:]}")
    return [tuple(x) for x in json.loads(dst.read_text(encoding="utf-8"))]  # type: ignore[misc]
