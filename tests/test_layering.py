"""Layering: only console/ imports textual; core/ imports none of console, drivers, ml."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(pkg: str) -> list[str]:
    base = ROOT / pkg
    out = [pkg]
    for m in pkgutil.walk_packages([str(base)], prefix=f"{pkg}."):
        if not m.name.endswith(".__main__"):  # importing __main__ would run the program
            out.append(m.name)
    return out


@pytest.mark.parametrize("pkg", ["core", "drivers", "ml", "sim"])
def test_no_textual_and_core_is_bottom(pkg: str) -> None:
    if not (ROOT / pkg / "__init__.py").exists():
        pytest.fail(f"package {pkg} is missing")
    mods = _modules(pkg)
    code = (
        "import importlib, json, sys\n"
        f"mods = {mods!r}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert not any(m == "textual" or m.startswith("textual.") for m in loaded), (
        f"{pkg} pulls in textual"
    )
    if pkg == "core":
        bad = sorted(m for m in loaded if m.split(".")[0] in {"console", "drivers", "ml"})
        assert not bad, f"core imports {bad}"
