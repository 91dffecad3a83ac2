"""A DataTable that follows plant snapshots by updating changed cells in place.

Rebuilding a table on every refresh loses the cursor and flickers; here each row has
a stable key (the entity id), so a refresh adds new rows, drops vanished ones and
touches only the cells whose value changed. A filter narrows rows by substring.

Textual's ``DataTable.update_cell`` bumps one counter that keys every render cache of
the table, so one changed cell re-renders every visible cell (~225 on the lines view,
30-90 ms on the event loop under ingest load, which a key press then waits behind).
``_write_cells`` stores the value the same way and forgets only the changed cells' and
rows' cached renders; it relies on DataTable internals of the pinned textual==8.2.8
(tests/console/test_snapshot_table.py checks that what is drawn follows the data).

k9s habits: columns carry a priority (1 always shown; higher numbers are hidden first
when the terminal is too narrow for every column), and rows sort by any column
(``sort_by``; numbers and percentages as numbers) — the natural order otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

Cell = str | Text
REFRESH_ROWS_MAX = 8  # more changed rows than this: repaint the table once, not row by row
Row = tuple[str, Sequence[Cell]]


def plain_cells(cells: Sequence[Cell]) -> tuple[str, ...]:
    """What a row shows, as text (what the filter matches and change detection compares)."""
    return tuple(c.plain if isinstance(c, Text) else str(c) for c in cells)


def literal(cells: Sequence[Cell]) -> list[Text]:
    """Cells as Text: DataTable parses a str cell as markup with emoji codes, so a source
    like ``material:B:M-BOX`` showed as ``material🅱M-BOX`` and ``[x]`` vanished."""
    return [c if isinstance(c, Text) else Text(str(c)) for c in cells]


def row_matches(needle: str, key: str, plain: Sequence[str]) -> bool:
    """The `/` filter: a case-insensitive substring of the key or any shown cell."""
    if not needle:
        return True
    needle = needle.lower()
    return any(needle in s.lower() for s in (key, *plain))


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None
    priority: int = 1  # 1: always shown; the highest is hidden first on a narrow terminal
    grow: bool = False  # takes the width the shown columns leave (a message, a reason)


CELL_PAD = 2  # DataTable's cell padding, both sides
_NUM = re.compile(r"^[-+]?\d+(?:\.\d+)?")


def sort_value(text: str) -> tuple[int, float, str]:
    """Numbers (``87%``, ``12.5 bar``, ``3m``) as numbers, dashes last, the rest as text."""
    t = text.strip()
    if t in ("", "—", "-"):
        return (2, 0.0, "")
    m = _NUM.match(t)
    if m:
        return (0, float(m.group(0)), t.casefold())
    return (1, 0.0, t.casefold())


def grown_widths(columns: Sequence[Column], shown: Sequence[int], width: int) -> list[int]:
    """The shown columns' widths, the ``grow`` ones sharing what the others leave."""
    widths = [columns[i].width or len(columns[i].label) for i in shown]
    growers = [k for k, i in enumerate(shown) if columns[i].grow]
    spare = width - sum(w + CELL_PAD for w in widths)
    for n, k in enumerate(growers):
        widths[k] += max(0, spare) // len(growers) + (1 if n < max(0, spare) % len(growers)
                                                      else 0)
    return widths


def fit_columns(columns: Sequence[Column], width: int) -> list[int]:
    """Indexes of the columns that fit ``width``: drop the highest priority number first,
    the rightmost of equals first; priority 1 is never dropped."""
    shown = list(range(len(columns)))

    def total() -> int:
        return sum((columns[i].width or len(columns[i].label)) + CELL_PAD for i in shown)

    while total() > width:
        droppable = [i for i in shown if columns[i].priority > 1]
        if not droppable:
            break
        worst = max(droppable, key=lambda i: (columns[i].priority, i))
        shown.remove(worst)
    return shown


def _forget(cache: LRUCache[Any, Any], stale: Callable[[Any], bool]) -> None:
    """Drop the entries whose key is stale (textual's LRUCache is not iterable)."""
    for key in list(cache.keys()):
        if stale(key):
            cache.discard(key)


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
        self.sort_key: str | None = None  # a column key, or None for the natural order
        self.sort_reverse = False
        self._visible = list(range(len(self._columns)))
        self._widths = [c.width for c in self._columns]

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for i, w in zip(self._visible, self._widths, strict=True):
            c = self._columns[i]
            self.add_column(c.label, key=c.key, width=w)

    def on_resize(self) -> None:
        width = self.size.width - 2  # room for the vertical scrollbar
        visible = fit_columns(self._columns, width) if width > 0 else self._visible
        widths = grown_widths(self._columns, visible, width) if width > 0 else self._widths
        if visible != self._visible or widths != self._widths:
            self._visible, self._widths = visible, widths
            self.clear(columns=True)
            self._add_columns()
            self._rebuild([(k, cells, plain_cells(cells)) for k, cells in self._all_rows
                           if row_matches(self.filter_text, k, plain_cells(cells))])

    @property
    def visible_columns(self) -> list[Column]:
        return [self._columns[i] for i in self._visible]

    @property
    def columns_spec(self) -> list[Column]:
        return list(self._columns)

    def _cells(self, cells: Sequence[Cell]) -> list[Text]:
        return literal([cells[i] for i in self._visible])

    def sort_by(self, key: str | None, reverse: bool = False) -> None:
        self.sort_key, self.sort_reverse = key, reverse
        self._apply()

    @property
    def total_rows(self) -> int:
        return len(self._all_rows)

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
        # each row's text once per refresh: the filter and the change check both use it
        wanted = [(k, cells, plain) for k, cells in self._all_rows
                  if row_matches(self.filter_text, k, plain := plain_cells(cells))]
        keys = [c.key for c in self._columns]
        if self.sort_key in keys:
            at = keys.index(self.sort_key)
            wanted.sort(key=lambda w: sort_value(w[2][at]), reverse=self.sort_reverse)
        wanted_keys = [k for k, _, _ in wanted]
        shown_keys = list(self._shown)
        if wanted_keys != shown_keys:
            keep = set(wanted_keys)
            kept = [k for k in shown_keys if k in keep]
            if wanted_keys[:len(kept)] != kept:  # a change of order: rebuild (rare)
                self._rebuild(wanted)
                return
            # rows gone and rows new at the end (the event log growing): no rebuild
            for key in shown_keys:
                if key not in keep:
                    self.remove_row(key)
                    del self._shown[key]
            for key, cells, plain in wanted[len(kept):]:
                self.add_row(*self._cells(cells), key=key)
                self._shown[key] = plain
            wanted = wanted[:len(kept)]
        changed: dict[str, list[tuple[str, Cell]]] = {}
        for key, cells, plain in wanted:
            old = self._shown[key]
            if plain == old:
                continue
            self._shown[key] = plain
            cols = [(col.key, cell) for i, (col, new, was, cell)
                    in enumerate(zip(self._columns, plain, old, cells, strict=True))
                    if new != was and i in self._visible]
            if cols:
                changed[key] = cols
        if changed:
            self._write_cells(changed)

    def _rebuild(self, wanted: list[tuple[str, Sequence[Cell], tuple[str, ...]]]) -> None:
        cursor_key = self.current_key()
        self.clear()
        self._shown = {}
        for key, cells, plain in wanted:
            self.add_row(*self._cells(cells), key=key)
            self._shown[key] = plain
        if cursor_key in self._shown:
            self.move_cursor(row=self.get_row_index(cursor_key))

    def _write_cells(self, changed: dict[str, list[tuple[str, Cell]]]) -> None:
        """``update_cell`` without invalidating the whole table's renders (module doc):
        store each value, drop the cached renders of just those cells and rows, and
        repaint just those rows."""
        dirty: set[tuple[RowKey, ColumnKey]] = set()
        rows: set[RowKey] = set()
        for key, cells in changed.items():
            row = RowKey(key)
            rows.add(row)
            for col, cell in cells:
                column = ColumnKey(col)
                self._data[row][column] = cell if isinstance(cell, Text) else Text(str(cell))
                dirty.add((row, column))
        _forget(self._cell_render_cache, lambda k: (k[0], k[1]) in dirty)
        _forget(self._row_render_cache, lambda k: k[0] in rows)
        self._row_renderable_cache.clear()  # keyed by row index: cheap to rebuild
        self._line_cache.clear()  # keyed by screen line: cheap, built from the row renders
        if len(rows) > REFRESH_ROWS_MAX:
            self.refresh()  # one repaint; refresh_row works out each row's region (costly)
            return
        for row in rows:
            self.refresh_row(self.get_row_index(row))

    def current_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return str(row_key.value)
