"""Scripting-command tests: the ``store`` (SQLite file or PostgreSQL database), the CLI
driven through main().

``cli`` runs ``loopline ARGS --config <repo config> --db <the store>`` in-process
and returns (exit code, stdout, stderr). ``now_clock`` is a FrozenClock at the wall time,
so recommendations made in a test are not already expired for the CLI (WallClock).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from console.cli import main
from core.clock import FrozenClock, utcnow
from core.store.db import Store

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def db_path(store: Store) -> Path | str:
    """What ``--db`` takes for the store: its file, or its URL (password included)."""
    return store.target


@pytest.fixture
def cli(config_path: Path, db_path: Path | str, capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([*argv, "--config", str(config_path), "--db", str(db_path)])
        out = capsys.readouterr()
        return rc, out.out, out.err
    return run


@pytest.fixture
def now_clock() -> FrozenClock:
    return FrozenClock(utcnow().replace(microsecond=0))
