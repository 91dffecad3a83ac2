"""The newcomer's path of `loopline tui --demo`, end to end on the real twin (own process,
real OPC UA + Modbus on loopback) at 120x: an alarm, a recommendation with its
explanation, the approval with a PIN, and its outcome in the same row."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from console_seed import PINS

from console.app import AppDeps, LooplineApp, create_app
from console.commands.tui import DEMO_INJECT
from console.screens.details import RecommendationScreen
from console.screens.dialogs import ActionDialog, SignInScreen
from core.clock import WallClock
from core.config import LoadedConfig
from core.masterdata import load_master_data
from core.store.db import open_store
from runtime.host import BackgroundRuntime, Runtime, RuntimeOptions
from runtime.twin import free_port


async def _until(app: LooplineApp, pilot, what: str, pred: Callable[[], bool],
                 timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        await pilot.pause(0.2)  # the app's own workers re-read the store meanwhile


async def test_demo_path_alarm_recommendation_approval_outcome(
    tmp_path: Path, loaded_config: LoadedConfig
) -> None:
    store = open_store(str(tmp_path / "demo.db"))
    load_master_data(store, loaded_config, WallClock())
    rt = Runtime(loaded_config, store, RuntimeOptions(
        speed=120, seed=7, inject=list(DEMO_INJECT), spawn_twin=True, ml=False,
        opcua_port=free_port(), modbus_port=free_port()))
    bg = BackgroundRuntime(rt)
    bg.start()
    try:
        app = create_app(AppDeps(config=loaded_config, engine=store.engine, clock=rt.clock,
                                 bus=rt.bus, alarms=rt.alarms, store=store, refresh_s=0.5,
                                 sign_in_at_start=False))
        async with app.run_test(size=(120, 36)) as pilot:
            def rec():  # type: ignore[no-untyped-def]
                s = app.snapshot
                return next((r for r in (s.recommendations if s else ())
                             if r.decision_class == "work_order" and r.target == "A-LATHE1"
                             and r.status == "proposed"), None)

            await _until(app, pilot, "alarm on A-LATHE1", lambda: bool(app.snapshot) and any(
                "A-LATHE1" in a.source for a in app.snapshot.alarms))
            await _until(app, pilot, "work-order recommendation", lambda: rec() is not None)
            rid = rec().id
            await pilot.press("ctrl+l")
            await _until(app, pilot, "sign-in", lambda: isinstance(app.screen, SignInScreen))
            await pilot.press(*"maya", "enter", *PINS["maya"], "enter")
            await _until(app, pilot, "signed in", lambda: app.identity is not None)
            await pilot.press(":", *"actions", "enter")
            await _until(app, pilot, "the row", lambda: rid in app.table.shown_keys)
            app.table.move_cursor(row=app.table.get_row_index(rid))
            await pilot.press("enter")  # the explanation
            await _until(app, pilot, "evidence", lambda: isinstance(app.screen,
                                                                    RecommendationScreen))
            text = str(app.screen.query_one("#detail-text").render())
            assert "Why:" in text and "Evidence" in text
            await pilot.press("escape")
            await pilot.pause()
            await pilot.press("a")
            await _until(app, pilot, "dialog", lambda: isinstance(app.screen, ActionDialog))
            for _attempt in range(5):  # a record that changes while read is shown again
                dlg = app.screen
                assert isinstance(dlg, ActionDialog)
                for _ in range(30):  # to the record's end: the dialog signs nothing before
                    if dlg.seen_end:
                        break
                    await pilot.press("pagedown")
                assert dlg.seen_end
                await pilot.press("enter", *PINS["maya"], "enter")
                await _until(app, pilot, "signature", lambda d=dlg: app.screen is not d
                             or "red" in str(d.query_one("#dialog-error").render().spans))
                assert app.screen is not dlg, str(dlg.query_one("#dialog-error").render())
                await _until(app, pilot, "the result", lambda: isinstance(
                    app.screen, ActionDialog) or any(
                        r.id == rid and r.status != "proposed"
                        for r in app.snapshot.recommendations), timeout_s=20)
                if not isinstance(app.screen, ActionDialog):
                    break
            assert not isinstance(app.screen, ActionDialog)

            def row_result() -> str:
                return str(app.table.get_cell(rid, "result")) if rid in app.table.shown_keys \
                    else ""

            await _until(app, pilot, "outcome in the row", lambda: row_result().startswith(
                "executed"), timeout_s=60)
    finally:
        bg.stop()
        store.close()
