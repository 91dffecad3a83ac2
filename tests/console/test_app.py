"""Pilot tests of the console: views from the store, command mode, filter, drill-down, help."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from console.app import AppDeps, LooplineApp, create_app
from console.screens.equipment import EquipmentScreen
from console.screens.help import HelpScreen
from console.widgets.snapshot_table import SnapshotTable
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.store.db import Store
from core.store.models import EquipmentStateInterval
from core.store.sample_writer import write_samples


def _deps(loaded_config: LoadedConfig, store: Store, clock: FrozenClock) -> AppDeps:
    return AppDeps(config=loaded_config, engine=store.engine, clock=clock, auto_refresh=False,
                   sign_in_at_start=False)


async def _ready(app: LooplineApp, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_lines_view_shows_plant_and_updates_in_place(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        assert table.row_count == 12
        assert "A-LATHE1" in table.shown_keys
        assert str(table.get_cell("A-LATHE1", "state")) == "unknown"
        table.move_cursor(row=3)
        with store.begin() as conn:
            conn.execute(insert(EquipmentStateInterval.__table__).values(
                equipment_id="A-LATHE1", state="down_unplanned", reason_code="bearing",
                start=frozen_clock.now()))
            write_samples(conn, [
                {"tag_id": "A-LATHE1.vibration_rms", "ts": frozen_clock.now()
                 + timedelta(seconds=i), "value": 2.0 + i / 10, "quality": 0}
                for i in range(10)
            ])
        app.refresh_snapshot()
        await _ready(app, pilot)
        assert str(table.get_cell("A-LATHE1", "state")) == "down unplanned"
        assert "2.90 mm/s" in str(table.get_cell("A-LATHE1", "key"))
        assert table.cursor_row == 3  # updated in place: the cursor did not jump


async def test_command_mode_switches_views_and_rejects_unknown(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        await pilot.press(":")
        await pilot.press(*"orders", "enter")
        assert app.current_view == "orders"
        assert app.query_one("#view-orders", SnapshotTable).row_count == 24
        await pilot.press(":", *"lots", "enter")
        assert app.current_view == "lots"
        await pilot.press(":", *"nonsense", "enter")
        assert app.current_view == "lots"


async def test_filter_narrows_rows_and_escape_clears(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        await pilot.press("/", *"mold")
        assert set(table.shown_keys) == {"B-MOLD1", "B-MOLD2"}
        await pilot.press("enter")
        assert table.row_count == 2  # kept after Enter
        await pilot.press("escape")
        assert table.row_count == 12


async def test_enter_drills_into_equipment_and_escape_returns(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        await pilot.press("enter")
        assert isinstance(app.screen, EquipmentScreen)
        assert app.screen.equipment_id == "A-LATHE1"
        await _ready(app, pilot)
        await pilot.press("escape")
        assert not isinstance(app.screen, EquipmentScreen)
        await pilot.press(":", *"eq B-MOLD2", "enter")
        assert isinstance(app.screen, EquipmentScreen)
        assert app.screen.equipment_id == "B-MOLD2"


async def test_help_lists_bindings(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        keys = text.split("Keys")[1]
        first = keys.strip().splitlines()[0]
        assert first.split()[:2] == [":", "Command"], first  # the app's own keys first
        for system in ("ctrl+pageup", "super+c", "colon", "slash", "Focus Next"):
            assert system not in text, system
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_every_binding_has_id_and_description() -> None:
    for b in LooplineApp.BINDINGS:
        assert b.id and (b.description or not b.show), b  # type: ignore[union-attr]


async def test_equipment_page_updates_tag_values_in_place(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        await pilot.press(":", *"eq A-LATHE1", "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, EquipmentScreen)
        tags = app.screen.query_one("#eq-tags", SnapshotTable)
        assert "A-LATHE1.vibration_rms" in tags.shown_keys
        tags.move_cursor(row=2)
        with store.begin() as conn:
            write_samples(conn, [
                {"tag_id": "A-LATHE1.vibration_rms", "ts": frozen_clock.now()
                 + timedelta(seconds=i), "value": 3.0 + i / 10, "quality": 0}
                for i in range(5)
            ])
        app.refresh_snapshot()  # a snapshot re-reads the open equipment page
        await _ready(app, pilot)
        await _ready(app, pilot)
        assert str(tags.get_cell("A-LATHE1.vibration_rms", "value")) == "3.4 mm/s"
        assert tags.cursor_row == 2  # updated in place: the cursor did not jump


async def test_tab_completes_commands_and_equipment_names_case_insensitively(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(app, pilot)
        box = app.query_one("#command")
        await pilot.press(":", "A", "c", "tab")
        await pilot.pause()
        assert box.has_focus and box.display  # Tab stays in the bar
        assert box.value == "actions"
        await pilot.press("enter")
        await _ready(app, pilot)
        assert app.current_view == "actions"
        await pilot.press(":", "e", "q", "tab")
        assert box.value == "eq "
        await pilot.press(*"c-pr", "tab")
        assert box.value == "eq C-PRESS1"
        await pilot.press("enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, EquipmentScreen) and app.screen.equipment_id == "C-PRESS1"


async def test_performance_never_above_100_percent_after_a_communication_gap(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    """C-PRESS1 (20 s ideal cycle) runs 10 min, loses its link for 10 min (state unknown)
    while making parts, and runs 10 min more: the counter's jump at reconnection carries
    the gap's parts, which P must not count against the 20 run minutes alone."""
    from core.production import PRODUCTION_COUNT, ensure_schema

    t0 = frozen_clock.now() - timedelta(minutes=30)
    ensure_schema(store)
    with store.begin() as c:
        for i, (state, mins) in enumerate((("running", 10), ("unknown", 10),
                                           ("running", 10))):
            start = t0 + timedelta(minutes=10 * i)
            c.execute(insert(EquipmentStateInterval.__table__).values(
                equipment_id="C-PRESS1", state=state, reason_code="", start=start,
                end=start + timedelta(minutes=mins)))
        for minute, good in ((5, 30), (21, 60), (25, 30)):  # 120 parts × 20 s = 40 min
            c.execute(insert(PRODUCTION_COUNT).values(
                equipment_id="C-PRESS1", line_id="C", ts=t0 + timedelta(minutes=minute),
                good=good, scrap=0))
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        assert str(table.get_cell("C-PRESS1", "p")) == "100%"
        assert app.oee["C-PRESS1"].performance == 1.0


async def test_alarm_source_with_colons_is_not_an_emoji(
    loaded_config: LoadedConfig, store: Store, frozen_clock: FrozenClock
) -> None:
    from core.store.models import Alarm

    with store.session() as s:
        s.add(Alarm(source="material:B:M-BOX", message="M-BOX [low] at B-LS",
                    raised_at=frozen_clock.now(), priority="medium"))
        s.commit()
    app = create_app(_deps(loaded_config, store, frozen_clock))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        app.show_view("alarms")
        await _ready(app, pilot)
        lines = [app.table.render_line(y).text for y in range(app.table.size.height)]
        row = next(ln for ln in lines if "M-BOX" in ln)
        assert "material:B:M-BOX" in row and "🅱" not in row
        assert "[low]" in row


async def test_store_only_console_runs_on_the_stores_plant_time(
    loaded_config: LoadedConfig, store: Store
) -> None:
    """A --no-runtime console beside a twin that runs ahead of the wall clock: ages are
    measured in plant time (they read 0s against the wall clock)."""
    from datetime import UTC, datetime

    from console.runtime_link import StoreClock
    from core.store.models import Alarm
    from core.views import plant_now

    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    with store.begin() as c:
        write_samples(c, [{"tag_id": "A-LATHE1.vibration_rms", "ts": ahead, "value": 2.0,
                           "quality": 0}])
    with store.session() as s:
        s.add(Alarm(source="limit:A-LATHE1.vibration_rms:hi", message="vibration high",
                    raised_at=ahead - timedelta(minutes=5), priority="high"))
        s.commit()
    assert plant_now(store.engine, datetime.now(UTC)) == ahead
    app = create_app(AppDeps(config=loaded_config, engine=store.engine,
                             clock=StoreClock(store.engine), auto_refresh=False,
                             sign_in_at_start=False))
    async with app.run_test(size=(140, 40)) as pilot:
        await _ready(app, pilot)
        app.show_view("alarms")
        await _ready(app, pilot)
        (key,) = app.table.shown_keys
        assert str(app.table.get_cell(key, "age")) == "5m"
        assert ahead.strftime("%H:%M") in str(app.query_one("#status").render())
