"""The event log: a Line API table whose rendered lines are cached by what they show.

New events arrive at the top, so every visible row's position, and in a DataTable its
row index, cells and render caches, changes with each of them: every redraw of the log
re-rendered ~35 rows (tens of ms a key press then waited behind). Here a row's rendered
line (a ``Strip``) is cached by its cells' text, the width and the row style, not by its
position: when the rows shift, each visible line is a cache hit, and a new event costs
one rendered line (two while the zebra stripes alternate). Moving the cursor repaints
two lines.

It shows the same rows as a ``SnapshotTable`` (``Row`` from a row source, newest first,
``/`` filter by substring over key and cells) with a fixed header, a row cursor, zebra
stripes and the last column taking the width that is left (at least ``LAST_MIN``).
Styles are in app.tcss (component classes ``event-log--header``, ``--cursor``,
``--even-row``, ``--odd-row``).
A cell that is ``Text`` keeps its own style; the cache key is the plain text, so a row
source must not show the same text in different styles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.widgets.snapshot_table import Cell, Column, Row, plain_cells, row_matches

PAD = 1  # blank cells either side of a column's text, as DataTable's cell padding
LAST_MIN = 20  # the last column shrinks to this before the log scrolls sideways
STRIP_CACHE = 2048  # rendered lines kept: 300 events x a few row styles, and the header


class EventLog(ScrollView, can_focus=True):
    """Rows come from ``row_source(data)`` (newest first); the cursor keeps its position."""

    DEFAULT_CSS = ""  # app.tcss
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "event-log--header", "event-log--cursor", "event-log--even-row", "event-log--odd-row",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Previous row", show=False, id="event_log.cursor_up"),
        Binding("down", "cursor_down", "Next row", show=False, id="event_log.cursor_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="event_log.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="event_log.page_down"),
        Binding("home,ctrl+home", "first", "Newest", show=False, id="event_log.first"),
        Binding("end,ctrl+end", "last", "Oldest", show=False, id="event_log.last"),
    ]

    def __init__(self, columns: Sequence[Column],
                 row_source: Callable[[Any], list[Row]], **kw: Any) -> None:
        super().__init__(**kw)
        self._columns = list(columns)
        self._row_source = row_source
        self._all_rows: list[Row] = []
        self._rows: list[tuple[str, tuple[str, ...], Sequence[Cell]]] = []  # key, plain, cells
        self._strips: LRUCache[tuple[object, ...], Strip] = LRUCache(STRIP_CACHE)
        self.filter_text = ""
        self.cursor_row = 0

    # ------------------------------------------------------------ data

    def show(self, data: Any) -> None:
        self._all_rows = self._row_source(data)
        self._apply()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._apply()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def shown_keys(self) -> list[str]:
        return [k for k, _, _ in self._rows]

    def current_key(self) -> str | None:
        return self._rows[self.cursor_row][0] if self._rows else None

    def _apply(self) -> None:
        rows = []
        for key, cells in self._all_rows:
            plain = plain_cells(cells)
            if row_matches(self.filter_text, key, plain):
                rows.append((key, plain, cells))
        if rows == self._rows:
            return
        self._rows = rows
        self.cursor_row = max(0, min(self.cursor_row, len(rows) - 1))
        self._set_virtual_size()
        self.refresh()  # every visible line: cache hits for the rows that only moved

    def _set_virtual_size(self) -> None:
        """A change of virtual size lays the whole screen out (~8 ms under load), which
        only a scrollbar appearing or going needs; the log is 1fr high whatever its rows.
        Otherwise store it and update the scrollbar as Widget._size_updated does."""
        size = Size(self._min_width(), len(self._rows) + 1)  # + the header
        old = self.virtual_size
        if size == old:
            return
        view = self.scrollable_content_region.size
        if (self.is_mounted and view.height > 0 and size.width == old.width
                and min(size.height, old.height) > view.height):  # scrolls before and after
            self.set_reactive(EventLog.virtual_size, size)
            self._scroll_update(size)
        else:
            self.virtual_size = size

    def _min_width(self) -> int:
        return sum(w + 2 * PAD for w in self._widths(0))

    def on_resize(self) -> None:
        self._set_virtual_size()

    # ------------------------------------------------------------ cursor

    def move_cursor(self, row: int) -> None:
        old = self.cursor_row
        self.cursor_row = max(0, min(row, len(self._rows) - 1))
        if self.cursor_row != old:
            self.refresh_line(old + 1)
            self.refresh_line(self.cursor_row + 1)
        self._scroll_cursor_into_view()

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top, visible = round(self.scroll_y), self._page()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, force=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, force=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self._page())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._rows) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            self.move_cursor(round(self.scroll_y) + offset.y - 1)

    # ------------------------------------------------------------ drawing

    def _widths(self, width: int) -> list[int]:
        """Each column's text width; the last one takes what is left of ``width``."""
        widths = [c.width or len(c.label) for c in self._columns]
        if widths:
            rest = width - sum(w + 2 * PAD for w in widths[:-1]) - 2 * PAD
            widths[-1] = max(min(widths[-1], LAST_MIN), len(self._columns[-1].label), rest)
        return widths

    def _line(self, cells: Sequence[Cell], widths: list[int], style: Style) -> Strip:
        parts: list[Text] = []
        for w, cell in zip(widths, cells, strict=False):
            text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
            if "\n" in text.plain:
                text.plain = text.plain.replace("\n", " ")
            text.truncate(w, overflow="ellipsis", pad=True)
            parts.append(Text(" " * PAD) + text + Text(" " * PAD))
        line = Text.assemble(*parts, no_wrap=True, end="")
        total = sum(w + 2 * PAD for w in widths)
        # the row style under each cell's own (Text.render drops a span-less text's style)
        return (Strip(line.render(self.app.console), line.cell_len).apply_style(style)
                .adjust_cell_length(total, style).simplify())

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = self._widths(width)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("event-log--header")
            key: tuple[object, ...] = ("header", tuple(widths), style)
            labels: Sequence[Cell] = [c.label for c in self._columns]
        else:
            i = round(self.scroll_y) + y - 1
            if i >= len(self._rows):
                return Strip.blank(width, base)
            name = ("event-log--cursor" if i == self.cursor_row
                    else "event-log--odd-row" if i % 2 else "event-log--even-row")
            style = base + self.get_component_rich_style(name)
            _, plain, labels = self._rows[i]
            key = (plain, tuple(widths), style)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._line(labels, widths, style)
            self._strips[key] = strip
        x = round(self.scroll_x)
        return strip.crop_extend(x, x + width, base)
