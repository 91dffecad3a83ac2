"""Shared fixtures for the whole suite.

- ``config_path``: the repository's default config.toml (the plant everyone tests against).
- ``loaded_config``: that config loaded and validated (``core.config.LoadedConfig``).
- ``frozen_clock``: a ``FrozenClock`` at ``PLANT_START`` (2026-01-05T06:00:00Z, a Monday,
  start of the early shift); advance it explicitly in a test.
- ``store``: a fresh SQLite file in ``tmp_path``, schema created and master data loaded
  with ``frozen_clock`` (so the plant epoch is ``PLANT_START``). Closed after the test.

Each test gets its own store file, so tests can run in parallel processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import FrozenClock
from core.config import LoadedConfig, load_config
from core.masterdata import load_master_data
from core.store.db import Store, open_store

REPO = Path(__file__).resolve().parent.parent
PLANT_START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)


@pytest.fixture
def config_path() -> Path:
    return REPO / "config.toml"


@pytest.fixture
def loaded_config(config_path: Path) -> LoadedConfig:
    return load_config(config_path)


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock(PLANT_START)


@pytest.fixture
def store(tmp_path: Path, loaded_config: LoadedConfig,
          frozen_clock: FrozenClock) -> Iterator[Store]:
    st = open_store(str(tmp_path / "loopline.db"))
    load_master_data(st, loaded_config, frozen_clock)
    try:
        yield st
    finally:
        st.close()
