"""Snapshot tests of the main views on a seeded store with a frozen clock (stable SVGs).

Regenerate after an intended change with ``pytest tests/console --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from console.app import LooplineApp
from core.store.db import Store

MakeApp = Callable[..., LooplineApp]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """Snapshots are pictures of the UI, taken on one engine (SQLite) under their own
    names; the views' data on PostgreSQL is checked by test_views and test_app."""
    return sqlite_store


def _before(view: str | None, row: int = 0) -> Callable[..., object]:
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app: LooplineApp = pilot.app
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        if view is not None:
            app.show_view(view)
            for _ in range(2):
                await pilot.pause()
                await app.workers.wait_for_complete()
            if row:
                app.table.move_cursor(row=row)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("view", ["lines", "actions", "alarms", "plan"])
def test_main_views(view: str, make_app: MakeApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=(130, 34), run_before=_before(view))


@pytest.mark.parametrize("view", ["lines", "orders", "lots", "holds", "actions", "wo",
                                  "alarms", "plan", "events"])
def test_every_view_at_80x24(view: str, make_app: MakeApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The narrowest terminal the console supports: columns give way by priority."""
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_before(view))


def test_approve_dialog_at_80x24(make_app: MakeApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """What the signer sees: the record scrolls, the fields and the hint stay."""
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app: LooplineApp = pilot.app
        await _before("actions")(pilot)
        await pilot.press("ctrl+l")
        await _before(None)(pilot)
        await pilot.press(*"maya", "enter", *"3333", "enter")
        await _before(None)(pilot)
        app.table.move_cursor(row=app.table.get_row_index("R-0001"))
        app.clear_notifications()  # the sign-in toast would cover the dialog's last rows
        await pilot.press("a")
        await _before(None)(pilot)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_lines_at_80x24_light_theme(make_app: MakeApp, snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _before(None)(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_event_log(make_app: MakeApp, frozen_clock, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The event log, newest first, with the cursor moved two rows down."""
    from datetime import timedelta

    from core.events import AlarmEvent, DetectionEvent, EventBus

    bus = EventBus()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _before(None)(pilot)
        for i in range(40):
            bus.publish(DetectionEvent(frozen_clock.now() + timedelta(seconds=i),
                                       f"vibration rising, score {i / 40:.2f}",
                                       equipment_id="A-LATHE1" if i % 3 else "B-MOLD1"))
        bus.publish(AlarmEvent(frozen_clock.now() + timedelta(seconds=40), "bearing hot",
                               equipment_id="A-LATHE1"))
        await _before("events")(pilot)
        await pilot.press("down", "down")
        await pilot.pause()

    assert snap_compare(make_app(bus=bus), terminal_size=(110, 30), run_before=run_before)
