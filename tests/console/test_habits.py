"""k9s habits: sort keys, the selected/total count, q goes back (and asks before stopping a
live runtime), theme and view kept across restarts, the toast history, and columns that
give way by priority on a narrow terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from console.app import LooplineApp
from console.screens.details import TextScreen
from console.screens.dialogs import ConfirmScreen
from console.state import ConsoleState
from console.widgets.snapshot_table import SnapshotTable

MakeApp = Callable[..., LooplineApp]


async def _ready(app: LooplineApp, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()


def _title(app: LooplineApp) -> str:
    return str(app.query_one("#view-title").render())


async def test_sort_keys_and_row_count(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        assert "1/12" in _title(app)
        await pilot.press("down", "down")
        assert "3/12" in _title(app)
        await pilot.press("greater_than_sign", "greater_than_sign")  # Line, then Equipment
        assert table.sort_key == "id" and "sort Equipment ↑" in _title(app)
        assert table.shown_keys == sorted(table.shown_keys)
        await pilot.press("less_than_sign")
        assert table.shown_keys == sorted(table.shown_keys, reverse=True)
        assert "sort Equipment ↓" in _title(app)
        await pilot.press("slash", *"LATHE", "enter")
        await _ready(app, pilot)
        assert " of 12" in _title(app)


async def test_q_goes_back_then_asks_before_stopping_the_runtime(make_app: MakeApp) -> None:
    app = make_app(runtime_live=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(app, pilot)
        await pilot.press(":", *"alarms", "enter")
        await pilot.press(":", *"wo", "enter")
        await _ready(app, pilot)
        await pilot.press("q")
        assert app.current_view == "alarms"
        await pilot.press("q")
        assert app.current_view == "lines"
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


async def test_theme_and_last_view_survive_a_restart(make_app: MakeApp, tmp_path: Path) -> None:
    state = ConsoleState(tmp_path / "state" / "console.json")
    app = make_app(state=state)
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(app, pilot)
        await pilot.press(":", *"holds", "enter", "ctrl+t")
        await _ready(app, pilot)
    assert state.load() == {"theme": "light", "view": "holds"}
    again = make_app(state=state)
    async with again.run_test(size=(120, 36)) as pilot:
        await _ready(again, pilot)
        assert again.current_view == "holds" and again.theme == "textual-light"


async def test_toast_history_keeps_what_vanished(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(app, pilot)
        app.notify("first thing")
        app.notify("second [thing]", severity="warning", markup=False)
        await pilot.press(":", *"toasts", "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, TextScreen)
        text = str(app.screen.query_one("#detail-text").render())
        assert text.index("second [thing]") < text.index("first thing")  # newest first


async def test_narrow_terminal_hides_the_least_important_columns_first(
    make_app: MakeApp
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        lines = [c.key for c in app.query_one("#view-lines", SnapshotTable).visible_columns]
        assert {"line", "id", "state", "oee", "order", "lot"} <= set(lines)
        assert "name" not in lines and "trend" not in lines
        app.show_view("actions")
        await _ready(app, pilot)
        acts = [c.key for c in app.table.visible_columns]
        assert {"id", "target", "action", "status", "role"} <= set(acts)
        assert "conf" not in acts and "why" not in acts
    app = make_app()
    async with app.run_test(size=(200, 40)) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        assert len(table.visible_columns) == len(table.columns_spec)
