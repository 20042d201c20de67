"""A keyboard list that draws only the rows on screen (Line API), for lists of any length.

DataTable measures every cell on first render and ListView builds a widget per row; at 10k
images both are too slow. Rows here are plain data rendered on demand by a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

RowRenderer = Callable[[Any, int], Text]  # (item, width) -> one line of text


class VirtualList(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    VirtualList { background: $surface; border: round $panel; }
    VirtualList:focus { border: round $primary; }
    VirtualList > .virtual-list--cursor { background: $primary 40%; text-style: bold; }
    VirtualList:focus > .virtual-list--cursor { background: $primary; color: $text; }
    """
    COMPONENT_CLASSES = {"virtual-list--cursor"}
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    cursor = reactive(0, repaint=False)

    class Highlighted(Message):
        def __init__(self, sender: VirtualList, index: int, item: Any) -> None:
            super().__init__()
            self.list, self.index, self.item = sender, index, item

        @property
        def control(self) -> VirtualList:
            return self.list

    class Selected(Highlighted):
        pass

    def __init__(self, render_row: RowRenderer, **kwargs) -> None:
        super().__init__(**kwargs)
        self.items: Sequence[Any] = []
        self.render_row = render_row
        self._lines: dict[tuple[int, int, bool], Strip] = {}

    def notify_style_update(self) -> None:
        # new styles (a theme change among them): the cached rows hold the old colours
        super().notify_style_update()
        self._redraw()

    def _redraw(self) -> None:
        self._lines.clear()
        self.refresh()

    # ---- data ---------------------------------------------------------------------------
    def set_items(self, items: Sequence[Any], *, keep_cursor: bool = True) -> None:
        self.items = items
        self._lines.clear()
        self.virtual_size = Size(self.size.width, len(items))
        cursor = min(self.cursor, max(len(items) - 1, 0)) if keep_cursor else 0
        self.cursor = cursor
        self.scroll_to(y=min(self.scroll_y, max(len(items) - self.size.height, 0)),
                       animate=False)
        self.refresh()
        self._announce()

    @property
    def current(self) -> Any | None:
        return self.items[self.cursor] if 0 <= self.cursor < len(self.items) else None

    # ---- drawing ------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        if index >= len(self.items):
            return Strip.blank(width, self.rich_style)
        selected = index == self.cursor
        key = (index, width, selected and self.has_focus)
        line = self._lines.get(key)
        if line is None:
            text = self.render_row(self.items[index], width)
            text.truncate(width, overflow="ellipsis", pad=True)
            if text.style:  # Text.render drops the base style of a text with no spans
                text.stylize_before(text.style)
            segments = list(text.render(self.app.console))
            base = self.rich_style
            if selected:
                base = base + self.get_component_rich_style("virtual-list--cursor")
            line = Strip([Segment(s.text, base + s.style if s.style else base)
                          for s in segments if s.text != "\n"]).crop_extend(0, width, base)
            if len(self._lines) > 2000:
                self._lines.clear()
            self._lines[key] = line
        return line.crop(self.scroll_offset.x, self.scroll_offset.x + width)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.items))
        self._lines.clear()

    def on_focus(self) -> None:
        self._redraw()

    def on_blur(self) -> None:
        self._redraw()

    # ---- moving -------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self._lines.clear()
        self.refresh()

    def _goto(self, index: int) -> None:
        if not self.items:
            return
        index = max(0, min(index, len(self.items) - 1))
        if index == self.cursor:
            return
        self.cursor = index
        if index < self.scroll_y:
            self.scroll_to(y=index, animate=False)
        elif index >= self.scroll_y + self.size.height:
            self.scroll_to(y=index - self.size.height + 1, animate=False)
        self._announce()

    def _announce(self) -> None:
        self.post_message(self.Highlighted(self, self.cursor, self.current))

    def action_move(self, delta: int) -> None:
        self._goto(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._goto(self.cursor + direction * max(self.size.height - 1, 1))

    def action_jump(self, where: int) -> None:
        self._goto(len(self.items) - 1 if where < 0 else where)

    def action_select(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self, self.cursor, self.current))

    def on_click(self, event) -> None:
        self._goto(int(self.scroll_y) + event.y)
        self.focus()
