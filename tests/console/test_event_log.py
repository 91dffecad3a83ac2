"""EventLog: newest first, filtered, drawn from lines cached by content (not by position)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from rich.text import Text
from textual.app import App, ComposeResult

from console.app import LooplineApp
from console.widgets.event_log import EventLog
from console.widgets.snapshot_table import Column, Row
from core.clock import FrozenClock
from core.events import AlarmEvent, DetectionEvent, EventBus

MakeApp = Callable[..., LooplineApp]
COLUMNS = (Column("ts", "Time", 8), Column("what", "What", 30))


class _Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []

    def compose(self) -> ComposeResult:
        yield EventLog(COLUMNS, lambda _: list(self.rows))

    def publish(self, *whats: str) -> None:
        """New rows on top, keyed by position as the console's event rows are."""
        shown = [cells for _, cells in self.rows]
        new = [(f"{i:02d}:00:00", Text(w)) for i, w in enumerate(whats)]
        self.rows = [(str(i + 1), cells) for i, cells in enumerate([*reversed(new), *shown])]
        self.query_one(EventLog).show(None)


def _drawn(log: EventLog) -> list[str]:
    """What a repaint draws: every line of the widget, header first."""
    return ["".join(seg.text for seg in log.render_line(y)).strip()
            for y in range(log.scrollable_content_region.height)]


async def test_newest_first_cursor_and_filter() -> None:
    app = _Host()
    async with app.run_test(size=(60, 6)) as pilot:  # 5 rows shown
        log = app.query_one(EventLog)
        log.focus()
        app.publish("one", "two", "three")
        await pilot.pause()
        lines = _drawn(log)
        assert lines[0].split() == ["Time", "What"]
        assert [ln.split()[-1] for ln in lines[1:4]] == ["three", "two", "one"]
        await pilot.press("down")
        assert log.cursor_row == 1 and log.current_key() == "2"
        app.publish("four")
        await pilot.pause()
        assert _drawn(log)[1].endswith("four")
        assert log.cursor_row == 1  # the cursor keeps its place, as in the other tables
        log.set_filter("T")  # case-insensitive, over every cell
        assert [ln.split()[-1] for ln in _drawn(log)[1:3]] == ["three", "two"]
        assert log.row_count == 2 and _drawn(log)[3] == ""
        app.publish("twelve", "five")  # arrivals are filtered too
        assert [ln.split()[-1] for ln in _drawn(log)[1:4]] == ["twelve", "three", "two"]
        log.set_filter("")
        assert log.row_count == 6
        await pilot.press("end")
        assert log.cursor_row == 5 and round(log.scroll_y) > 0  # scrolled to the oldest
        await pilot.press("home")
        assert log.cursor_row == 0 and round(log.scroll_y) == 0


async def test_shifted_rows_are_not_rendered_again() -> None:
    """A new event on top costs its own line, not one per visible row (module doc)."""
    app = _Host()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.query_one(EventLog)
        app.publish(*(f"event {i}" for i in range(40)))
        await pilot.pause()
        rendered: list[object] = []
        line = log._line
        log._line = lambda *a: rendered.append(a) or line(*a)  # type: ignore[method-assign]
        for i in range(2):  # the zebra stripes alternate: each row's other stripe, once
            app.publish(f"new {i}")
            _drawn(log)
        rendered.clear()
        app.publish("newer")
        assert _drawn(log)[1].endswith("newer")
        assert _drawn(log)[2].endswith("new 1")
        assert len(rendered) <= 3  # the new line, and the rows the cursor left or reached
        assert log.row_count == 43
        # grown without a layout pass (the scrollbar was there already): it still scrolls
        assert log.vertical_scrollbar.window_virtual_size == 44
        log.focus()
        await pilot.press("end")
        assert log.cursor_row == 42 and _drawn(log)[-1].endswith("event 0")


async def test_console_log_follows_new_events_newest_first_and_filters(
        make_app: MakeApp, frozen_clock: FrozenClock) -> None:
    bus = EventBus()
    app = make_app(bus=bus)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.press(":", *"events", "enter")
        log = app.query_one("#view-events", EventLog)
        assert app.view_widget is log and log.has_focus
        t = frozen_clock.now()
        for i in range(3):
            bus.publish(DetectionEvent(t + timedelta(seconds=i), f"drift {i}",
                                       equipment_id="A-LATHE1"))
        await pilot.pause()
        assert [ln.split()[-1] for ln in _drawn(log)[1:4]] == ["2", "1", "0"]
        await pilot.press("/", *"hot", "enter")
        assert log.row_count == 0
        bus.publish(AlarmEvent(t + timedelta(seconds=9), "bearing hot", equipment_id="B-MOLD1"))
        bus.publish(DetectionEvent(t + timedelta(seconds=10), "drift 3"))
        await pilot.pause()
        assert log.row_count == 1
        assert "bearing hot" in _drawn(log)[1] and "B-MOLD1" in _drawn(log)[1]
        await pilot.press("escape")  # clears the filter: the newest is on top
        assert log.row_count == 5
        assert _drawn(log)[1].endswith("drift 3") and "bearing hot" in _drawn(log)[2]
