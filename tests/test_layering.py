"""Layering, checked by importing each package's modules in a fresh interpreter and
looking at what got loaded:

- core/ is the bottom: it loads none of console, runtime, drivers, ml, sim, textual;
- runtime/ (the plant host) never loads console or textual;
- drivers/, ml/ and sim/ do not load each other (sim talks to loopline only through the
  protocols), nor console, runtime or textual;
- in console/, only the Textual app, its screens, widgets and messages load textual;
  the CLI and its commands do not (a headless script never pays for the UI).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("console", "runtime", "core", "drivers", "ml", "sim")
# the UI: the app, its screens, widgets, messages, and the views (each view's columns and
# rows, built for the widgets' table)
UI_MODULES = ("console.app", "console.screens", "console.widgets", "console.messages",
              "console.views")

# what each package may not load (top-level package names, plus textual)
FORBIDDEN = {
    "core": {"console", "runtime", "drivers", "ml", "sim", "textual"},
    "runtime": {"console", "textual"},
    "drivers": {"console", "runtime", "ml", "sim", "textual"},
    "ml": {"console", "runtime", "drivers", "sim", "textual"},
    "sim": {"console", "runtime", "drivers", "ml", "textual"},
}


def _modules(pkg: str) -> list[str]:
    base = ROOT / pkg
    out = [pkg]
    for m in pkgutil.walk_packages([str(base)], prefix=f"{pkg}."):
        if not m.name.endswith(".__main__"):  # importing __main__ would run the program
            out.append(m.name)
    return out


def _loaded_by(mod: str) -> set[str]:
    """Top-level packages loaded by importing ``mod`` alone, in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({mod!r})\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, check=False)
    assert r.returncode == 0, f"import {mod} failed:\n{r.stderr}"
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def _loaded_by_all(mods: list[str]) -> dict[str, set[str]]:
    """Per module, what it loads; one interpreter per module, so blame is exact."""
    return {m: _loaded_by(m) for m in mods}


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_package_loads_nothing_above_or_beside_it(pkg: str) -> None:
    if not (ROOT / pkg / "__init__.py").exists():
        pytest.fail(f"package {pkg} is missing")
    # one interpreter for the whole package first (cheap); blame per module on failure
    code = (
        "import importlib, json, sys\n"
        f"for m in {_modules(pkg)!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    bad = loaded & FORBIDDEN[pkg]
    if bad:
        blame = {m: sorted(s & FORBIDDEN[pkg])
                 for m, s in _loaded_by_all(_modules(pkg)).items() if s & FORBIDDEN[pkg]}
        pytest.fail(f"{pkg} loads {sorted(bad)}: {blame}")


def test_console_outside_the_ui_loads_no_textual() -> None:
    mods = [m for m in _modules("console")
            if not any(m == u or m.startswith(u + ".") for u in UI_MODULES)]
    code = (
        "import importlib, json, sys\n"
        "bad = {}\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "    if 'textual' in sys.modules:\n"
        "        bad[m] = True\n"
        "        break\n"
        "print(json.dumps(sorted(bad)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout.strip().splitlines()[-1])
    assert not first, f"{first[0]} loads textual (only the app, screens, widgets, messages may)"


def test_console_imports_no_driver_and_nothing_imports_console() -> None:
    """No module outside console/ names console in an import; console/ names no driver."""
    offenders = []
    for pkg in TOP:
        for path in (ROOT / pkg).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for n, line in enumerate(text.splitlines(), 1):
                s = line.strip()
                if pkg != "console" and (s.startswith("from console") or
                                         s.startswith("import console")):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {s}")
                if pkg == "console" and (s.startswith("from drivers") or
                                         s.startswith("import drivers")):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {s}")
    for path in (ROOT / "bench").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            s = line.strip()
            if s.startswith("from console.") and not s.startswith("from console.app"):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {s}")
    assert not offenders, "\n".join(offenders)


def test_commands_do_not_import_the_cli() -> None:
    """The CLI imports its commands; a command importing the CLI back is a loop."""
    bad = []
    for path in (ROOT / "console" / "commands").glob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            s = line.strip()
            if s.startswith("from console.cli") or s.startswith("import console.cli"):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {s}")
    assert not bad, "\n".join(bad)


def test_loopline_processes_do_not_import_the_twin() -> None:
    """The twin is started as a process; loopline shares only its argument parsing."""
    code = (
        "import importlib, json, sys, pkgutil\n"
        "import console.cli as cli\n"
        "cli.build_parser()\n"
        "import runtime.host, runtime.evaluation, runtime.twin\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.startswith('sim'))))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert loaded <= {"sim", "sim.args", "sim.physics"}, sorted(loaded)
