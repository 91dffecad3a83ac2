"""A plant-wide console (--no-runtime) on a store that several line PCs share: its top line
names each line's runtime, re-read from the store, and shows a lapsed lease as such."""

from __future__ import annotations

from datetime import timedelta

from console.app import AppDeps, LooplineApp, StatusBar, create_app
from core.clock import FrozenClock, utcnow
from core.config import LoadedConfig
from core.store import leases
from core.store.db import Store


async def _ready(app: LooplineApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def _top(app: LooplineApp) -> str:
    return str(app.query_one(StatusBar)._shown)


async def test_no_runtime_console_names_each_lines_runtime(
        loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock,
        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app = create_app(AppDeps(config=loaded_config, engine=store.engine, clock=frozen_clock,
                             auto_refresh=False, sign_in_at_start=False, store=store))
    async with app.run_test(size=(200, 40)) as pilot:
        await _ready(app, pilot)
        assert "lines " not in _top(app)  # nobody leased a line: nothing to say
        now = utcnow()
        monkeypatch.setenv(leases.HOST_ENV, "pc-a")  # two line PCs stand in
        leases.acquire(store, ["A"], "pc-a:1:aa", 30, now=now)
        monkeypatch.setenv(leases.HOST_ENV, "pc-bc")
        leases.acquire(store, ["B", "C"], "pc-bc:2:bb", 30, now=now - timedelta(seconds=40))
        app.refresh_snapshot()
        await _ready(app, pilot)
        top = _top(app)
        assert "lines A pc-a B [yellow]lapsed[/] C [yellow]lapsed[/]" in top, top
        leases.acquire(store, ["B", "C"], "pc-bc:3:cc", 30)  # taken over by a new runtime
        app.refresh_snapshot()
        await _ready(app, pilot)
        assert "lines A pc-a B pc-bc C pc-bc" in _top(app)
