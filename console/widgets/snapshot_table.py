"""A DataTable that follows plant snapshots by updating changed cells in place.

Rebuilding a table on every refresh loses the cursor and flickers; here each row has
a stable key (the entity id), so a refresh adds new rows, drops vanished ones and
touches only the cells whose value changed. A filter narrows rows by substring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, Sequence[Cell]]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None


class SnapshotTable(DataTable[Cell]):
    """Rows come from ``row_source(data)``; keys must be unique per row."""

    DEFAULT_CSS = ""

    def __init__(self, columns: Sequence[Column],
                 row_source: Callable[[Any], list[Row]], **kw: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)  # type: ignore[arg-type]
        self._columns = list(columns)
        self._row_source = row_source
        self._all_rows: list[Row] = []
        self._shown: dict[str, tuple[str, ...]] = {}
        self.filter_text = ""

    def on_mount(self) -> None:
        for c in self._columns:
            self.add_column(c.label, key=c.key, width=c.width)

    @staticmethod
    def _plain(cells: Sequence[Cell]) -> tuple[str, ...]:
        return tuple(c.plain if isinstance(c, Text) else str(c) for c in cells)

    def _matches(self, row: Row) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in s.lower() for s in (row[0], *self._plain(row[1])))

    def show(self, data: Any) -> None:
        self._all_rows = self._row_source(data)
        self._apply()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._apply()

    @property
    def shown_keys(self) -> list[str]:
        return list(self._shown)

    def _apply(self) -> None:
        wanted = [r for r in self._all_rows if self._matches(r)]
        wanted_keys = [k for k, _ in wanted]
        # a change of order or membership: rebuild (rare); else update cells in place
        if wanted_keys != list(self._shown):
            cursor_key = self.current_key()
            self.clear()
            self._shown = {}
            for key, cells in wanted:
                self.add_row(*cells, key=key)
                self._shown[key] = self._plain(cells)
            if cursor_key in self._shown:
                self.move_cursor(row=self.get_row_index(cursor_key))
            return
        for key, cells in wanted:
            plain = self._plain(cells)
            old = self._shown[key]
            if plain == old:
                continue
            for col, new, was, cell in zip(self._columns, plain, old, cells, strict=True):
                if new != was:
                    self.update_cell(key, col.key, cell)
            self._shown[key] = plain

    def current_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return str(row_key.value)
