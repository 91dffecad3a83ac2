"""Console fixtures: a seeded store, its alarm manager, and an app factory with a frozen clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from console_seed import seed

from console.app import AppDeps, LooplineApp, create_app
from core.alarms import AlarmManager
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.events import EventBus
from core.store.db import Store


@pytest.fixture
def seeded(store: Store, loaded_config: LoadedConfig, frozen_clock: FrozenClock) -> AlarmManager:
    return seed(store, loaded_config, frozen_clock)


@pytest.fixture
def make_app(store: Store, loaded_config: LoadedConfig, frozen_clock: FrozenClock,
             seeded: AlarmManager) -> Callable[..., LooplineApp]:
    def make(**kw: object) -> LooplineApp:
        opts: dict[str, object] = {"auto_refresh": False, "sign_in_at_start": False,
                                   "alarms": seeded, "bus": EventBus(), "store": store}
        opts.update(kw)
        return create_app(AppDeps(config=loaded_config, engine=store.engine,
                                  clock=frozen_clock, **opts))  # type: ignore[arg-type]
    return make
