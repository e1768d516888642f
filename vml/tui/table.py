"""A table that draws only the rows on screen, so 100,000 runs cost what 40 do.

Textual's DataTable measures every cell it holds (2.3 s for 10,000 rows of 9 cells);
this one takes rows as lists of strings by key, with the column widths worked out by
the caller (off the UI thread), renders the visible lines through the Line API, and
takes a refresh's changed rows alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

GAP = 2
STATUS_STYLES = {
    status: Style.parse(style)
    for status, style in {
        "running": "bold green",
        "queued": "cyan",
        "pruned": "magenta",  # stopped early by its study's pruner: not an error
        "failed": "bold red",
        "crashed": "bold red",
        "killed": "red",
        "cancelled": "yellow",
        "deleted": "dim",
    }.items()
}


def column_widths(
    labels: Sequence[str], rows: Sequence[Sequence[str]], start: Sequence[int] | None = None
) -> list[int]:
    """The widest of each column's label and cells (and ``start``, widths so far)."""
    widths = list(start) if start else [len(label) for label in labels]
    for cells in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, cells, strict=True)]
    return widths


class RunTable(ScrollView, can_focus=True):
    """Rows of text cells with a fixed header line and a row cursor that stays on its
    row's key when the rows change."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]
    COMPONENT_CLASSES = {"run-table--header", "run-table--cursor", "run-table--even-row"}
    DEFAULT_CSS = """
    RunTable { height: 1fr; background: $surface; }
    RunTable > .run-table--header { background: $panel; color: $foreground; text-style: bold; }
    RunTable > .run-table--even-row { background: $surface-lighten-1 50%; }
    RunTable > .run-table--cursor { background: $block-cursor-blurred-background; }
    RunTable:focus > .run-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    """

    class Selected(Message):
        """Enter (or a click on the cursor row) on a row."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(
        self, labels: Sequence[str], *, status_column: int | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.labels = list(labels)
        self.status_column = status_column
        self.keys: list[str] = []
        self.cells: dict[str, Sequence[str]] = {}  # each key's row
        self.widths = [len(label) for label in labels]
        self.cursor_row = 0

    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def rows(self) -> list[Sequence[str]]:
        """The rows in order (a new list each time)."""
        return [self.cells[key] for key in self.keys]

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor (None when the table is empty)."""
        return self.keys[self.cursor_row] if self.keys else None

    def cell(self, key: str, column: int) -> str:
        """The text of one cell, by row key and column index."""
        return self.cells[key][column]

    def set_rows(self, keys: list[str], rows: list[list[str]], widths: list[int]) -> None:
        """Show ``rows`` (cells in column order) under ``keys``; the cursor follows its key."""
        self.change(keys, dict(zip(keys, rows, strict=True)), widths, replace=True)

    def change(
        self,
        keys: list[str] | None,
        cells: dict[str, Sequence[str]],
        widths: list[int],
        gone: Iterable[str] = (),
        replace: bool = False,
    ) -> None:
        """Show the rows ``cells`` (by key; all of them if ``replace``, else only those
        that changed) in the order ``keys`` (None: the same order), without the rows
        ``gone``; the cursor follows its key."""
        current = self.cursor_key
        if replace:
            self.cells = cells
        else:
            self.cells.update(cells)
            for key in gone:
                if key not in cells:
                    self.cells.pop(key, None)
        self.widths = widths
        if keys is not None:
            self.keys = keys
            if current is not None and current in self.cells:
                with contextlib.suppress(ValueError):  # a row that went
                    self.cursor_row = keys.index(current)
        self.cursor_row = max(0, min(self.cursor_row, len(self.keys) - 1))
        self.virtual_size = Size(sum(widths) + GAP * len(widths), len(self.keys) + 1)
        self._scroll_cursor_into_view()
        self.refresh()

    def update_row(self, index: int, cells: Sequence[str]) -> None:
        """Replace the cells of row ``index``."""
        widths = [max(w, len(c)) for w, c in zip(self.widths, cells, strict=True)]
        self.change(None, {self.keys[index]: cells}, widths)

    def move_cursor(self, row: int) -> None:
        if self.keys:
            self.cursor_row = max(0, min(row, len(self.keys) - 1))
            self._scroll_cursor_into_view()
            self.refresh()

    def action_move(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(self.size.height - 2, 1))

    def action_jump(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self.keys) - 1)

    def key_enter(self, event: events.Key) -> None:
        event.stop()
        if self.cursor_key is not None:
            self.post_message(self.Selected(self.cursor_key))

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_y) + event.y - 1
        if event.y == 0 or not 0 <= row < len(self.keys):
            return
        if row == self.cursor_row and event.chain > 1:
            self.post_message(self.Selected(self.keys[row]))
        self.move_cursor(row)

    def _scroll_cursor_into_view(self) -> None:
        visible = max(self.size.height - 1, 1)  # lines below the header
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, force=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, force=True)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            return self._line(
                self.labels, self.get_component_rich_style("run-table--header"), scroll_x, width
            )
        row = scroll_y + y - 1
        if row >= len(self.keys):
            return Strip.blank(width, self.rich_style)
        cells = self.cells[self.keys[row]]
        if row == self.cursor_row:
            base = self.get_component_rich_style("run-table--cursor")
            return self._line(cells, self.rich_style + base, scroll_x, width, colour=False)
        base = self.rich_style
        if row % 2:
            base += self.get_component_rich_style("run-table--even-row")
        return self._line(cells, base, scroll_x, width)

    def _line(
        self, cells: Sequence[str], base: Style, scroll_x: int, width: int, colour: bool = True
    ) -> Strip:
        segments = []
        for index, (cell, cell_width) in enumerate(zip(cells, self.widths, strict=True)):
            style = base
            if colour and index == self.status_column and cell in STATUS_STYLES:
                style = base + STATUS_STYLES[cell]
            segments.append(Segment(" " + cell.ljust(cell_width) + " " * (GAP - 1), style))
        strip = Strip(segments)
        return strip.crop_extend(scroll_x, scroll_x + width, base)
