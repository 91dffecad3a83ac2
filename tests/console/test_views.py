"""Pilot tests of the plan timeline, the event log fed by the bus, lines OEE and keymaps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from console.app import LooplineApp
from console.screens.equipment import EquipmentScreen
from console.widgets.event_log import EventLog
from console.widgets.gantt import PlanGantt
from console.widgets.snapshot_table import SnapshotTable
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.events import AlarmEvent, DetectionEvent, EventBus

MakeApp = Callable[..., LooplineApp]
SIZE = (140, 40)


def _drawn(log: EventLog, y: int) -> str:
    return "".join(seg.text for seg in log.render_line(y))


async def _ready(app: LooplineApp, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def test_plan_view_draws_bars_per_line_and_filters(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press(":", *"plan", "enter")
        await _ready(app, pilot)
        assert app.current_view == "plan"
        gantt = app.query_one(PlanGantt)
        text = gantt.render_text(120).plain
        assert "plan PLAN-0001" in text
        assert "line A" in text and "line C" in text
        assert "0002" in text and "│" in text  # an order's bar, and the now marker
        await pilot.press("/", *"MOLD")
        text = gantt.render_text(120).plain
        assert "line B" in text and "line A" not in text
        await pilot.press("escape")
        assert "line A" in gantt.render_text(120).plain


async def test_event_log_follows_the_bus_from_another_thread(make_app: MakeApp,
                                                             frozen_clock: FrozenClock) -> None:
    bus = EventBus()
    app = make_app(bus=bus)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)

        def publish() -> None:
            for i in range(200):
                bus.publish(DetectionEvent(frozen_clock.now() + timedelta(seconds=i),
                                           f"detection {i}", equipment_id="A-LATHE1"))
            bus.publish(AlarmEvent(frozen_clock.now(), "bearing hot", equipment_id="A-LATHE1"))

        t = threading.Thread(target=publish)
        t.start()
        t.join()
        await _ready(app, pilot)
        await pilot.press(":", *"events", "enter")
        await _ready(app, pilot)
        log = app.query_one("#view-events", EventLog)
        assert log.row_count == 201
        assert log.current_key() == "1"
        assert "bearing hot" in _drawn(log, 1)  # newest first
        assert "detection 199" in _drawn(log, 2)
        await pilot.press("/", *"detection 199")
        assert log.row_count == 1
        assert "detection 199" in _drawn(log, 1)


async def test_lines_show_oee_and_data_state(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        assert str(table.get_cell("A-LATHE1", "a")) == "100%"
        # 45 min down unplanned of 6 h cost availability; idle (nothing scheduled) does not
        assert str(table.get_cell("B-MOLD1", "a")) == "88%"
        assert str(table.get_cell("A-GRIND1", "a")) == "100%"
        assert str(table.get_cell("A-LATHE1", "conn")) == "live"
        assert str(table.get_cell("C-PACK1", "conn")) == "no data"
        await pilot.press(":", *"eq B-MOLD1", "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, EquipmentScreen)
        why = str(app.screen.query_one("#eq-why").render())
        assert "scrap_risk" in why and "zone_temp" in why


async def test_keymap_override_from_config(make_app: MakeApp,
                                           loaded_config: LoadedConfig) -> None:
    loaded_config.config.console.keymap["command_mode"] = "semicolon"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("semicolon", *"alarms", "enter")
        assert app.current_view == "alarms"


def test_every_binding_has_id_and_description() -> None:
    from console.screens.dialogs import ActionDialog, SignInScreen
    from console.screens.equipment import EquipmentScreen
    from console.screens.help import HelpScreen

    for owner in (LooplineApp, ActionDialog, SignInScreen, EquipmentScreen, HelpScreen,
                  EventLog):
        for b in owner.BINDINGS:
            assert b.id and b.description, (owner, b)  # type: ignore[union-attr]


def test_no_raw_internals_in_what_people_read(frozen_clock: FrozenClock) -> None:
    """None parameters, detection JSON, state codes as floats, stats rows, alarm texts
    repeated on every transition: each once reached the screen."""
    from datetime import datetime

    from console.screens.details import _value, evidence_text, what_will_happen
    from console.screens.equipment import tag_value
    from console.views import ViewData, _event_rows
    from core.events import AlarmEvent, StatsEvent
    from core.views import PlantSnapshot, RecommendationDetail, RecommendationView

    now: datetime = frozen_clock.now()
    view = RecommendationView("R-9", "replenish", "B", "replenish", "line side low",
                              "proposed", 0.9, "avoids a starve", "shift_lead", now, now)
    d = RecommendationDetail(view, {"material_id": "M-BOX", "batch_id": None},
                             {"detection": {"detector_id": "material.B", "kind": "material",
                                            "summary": "M-BOX at B-LS below reorder point"},
                              "note": None}, "material:B:M-BOX", ())
    body, ev = what_will_happen(d), evidence_text(d)
    assert "None" not in body and "batch_id = —" in body
    assert "{" not in ev and "detected M-BOX at B-LS below reorder point" in ev
    assert _value({"a": 1.5, "b": None}) == "a 1.5"
    assert tag_value("state", 5.0, "") == "starved (5)"
    assert tag_value("counter", 1234.0, "pcs") == "1,234 pcs"
    snap = PlantSnapshot("site", (), (), (), (), (), (), (), {})
    events = [StatsEvent(now, "stats runtime counters"),
              AlarmEvent(now, "bearing hot", alarm_id=3, state="raised"),
              AlarmEvent(now, "bearing hot", alarm_id=3, state="acked",
                         detail={"actor": "sam"}),
              AlarmEvent(now, "bearing hot", alarm_id=3, state="normal")]
    rows = _event_rows(ViewData(snap, now, events=events))
    texts = [str(cells[3]) for _, cells in rows]
    assert texts == ["back to normal", "acked by sam: bearing hot", "bearing hot"]
