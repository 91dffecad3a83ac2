"""SnapshotTable: what is drawn follows the data when cells are written in place.

The table forgets only the changed cells' cached renders (not Textual's whole-table
invalidation), so these tests read the drawn lines back after each change.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult

from console.widgets.snapshot_table import Column, Row, SnapshotTable

COLUMNS = (Column("id", "Id", 4), Column("value", "Value", 8), Column("state", "State", 8))


class _Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []

    def compose(self) -> ComposeResult:
        yield SnapshotTable(COLUMNS, lambda _: list(self.rows))


def _drawn(table: SnapshotTable) -> list[str]:
    """The table's lines as painted (header first), rendered through its caches."""
    return ["".join(seg.text for seg in table.render_line(y)).rstrip()
            for y in range(table.row_count + 1)]


def _rows(*values: tuple[str, str, Any]) -> list[Row]:
    return [(k, (k, v, Text(s, style="bold"))) for k, v, s in values]


async def test_changed_cells_are_redrawn_and_the_rest_kept() -> None:
    app = _Host()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(SnapshotTable)
        app.rows = _rows(("a", "1.00", "run"), ("b", "2.00", "idle"), ("c", "3.00", "run"))
        table.show(None)
        await pilot.pause()
        before = _drawn(table)
        assert "2.00" in before[2] and "idle" in before[2]

        table.move_cursor(row=2)
        app.rows = _rows(("a", "1.00", "run"), ("b", "2.50", "down"), ("c", "3.00", "run"))
        table.show(None)
        await pilot.pause()
        after = _drawn(table)
        assert "2.50" in after[2] and "down" in after[2] and "2.00" not in after[2]
        assert after[1] == before[1]
        assert "3.00" in after[3]
        assert table.cursor_row == 2  # an in-place update keeps the cursor
        assert str(table.get_cell("b", "value")) == "2.50"  # shown as written (Text)


async def test_membership_change_and_filter_rebuild_rows() -> None:
    app = _Host()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(SnapshotTable)
        app.rows = _rows(("a", "1.00", "run"), ("b", "2.00", "idle"))
        table.show(None)
        await pilot.pause()
        app.rows = _rows(("a", "1.10", "run"), ("c", "3.00", "setup"))
        table.show(None)
        await pilot.pause()
        assert table.shown_keys == ["a", "c"]
        drawn = _drawn(table)
        assert "1.10" in drawn[1] and "setup" in drawn[2]
        table.set_filter("setup")
        await pilot.pause()
        assert table.shown_keys == ["c"]
        table.set_filter("")
        app.rows = _rows(("a", "1.20", "run"), ("c", "3.00", "setup"))
        table.show(None)
        await pilot.pause()
        assert "1.20" in _drawn(table)[1]
