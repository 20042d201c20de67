"""One block (a prompt and a seed) of a rendered grid as a table of cells: a row per LoRA file,
a column per weight, the labels as text at the left and the top (so it reads with image
previews off), the current cell framed in the accent colour. Arrows move the cursor, Enter
asks for the zoom; the screen owns blocks, keeping and polling.

Thumbnails decode in a worker through the same cache as the sample strip; a cell that arrives
later (a grid still rendering) is drawn when `set_view` is given the newer manifest."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from ...core.eval.layout import weight_text
from ...core.eval.manifest import GridView
from ...core.images.thumbnails import ThumbnailCache
from ..images import image_widget_class

LABEL_W = 10  # the row labels' column ("epoch 12", "final")
MIN_CELL_H, MIN_CELL_W = 3, 7


class CellTile(Vertical):
    DEFAULT_CSS = """
    CellTile { border: round $panel; height: 100%; width: 100%; }
    CellTile.-current { border: heavy $accent; }
    CellTile > .thumb { width: 100%; height: 1fr; }
    CellTile > .placeholder { content-align: center middle; color: $text-muted; }
    CellTile.-drawn > .placeholder { color: $text; }
    """

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col
        self.path: str | None = None
        self.shown: str | None = None  # the path whose picture (or mark) is drawn

    def compose(self) -> ComposeResult:
        yield Static("…", classes="thumb placeholder")

    def draw(self, path: str | None, image, widget_cls) -> None:
        self.path, self.shown = path, path
        self.set_class(path is not None, "-drawn")
        self.remove_children()
        if path is not None and image is not None and widget_cls is not None:
            self.mount(widget_cls(image, classes="thumb"))
        else:
            # images off: a mark says the cell is there; "missing" when it did not decode
            mark = "…" if path is None else ("✓" if widget_cls is None else "missing")
            self.mount(Static(mark, classes="thumb placeholder"))


class GridBrowser(VerticalScroll, can_focus=True):
    """Shows `block` of a GridView; `cursor` is (row, col)."""

    DEFAULT_CSS = """
    GridBrowser { border: round $panel; border-title-color: $text-muted;
                  scrollbar-gutter: stable; }
    GridBrowser:focus { border: round $primary; }
    GridBrowser > #gb-table { layout: grid; height: auto; grid-gutter: 0 0; }
    GridBrowser .gb-head { content-align: center bottom; text-style: bold; height: 1;
                           text-wrap: nowrap; text-overflow: ellipsis; }
    GridBrowser .gb-label { content-align: left middle; text-style: bold; height: 100%;
                            text-wrap: nowrap; text-overflow: ellipsis; }
    GridBrowser .gb-label.-current, GridBrowser .gb-head.-current { color: $text-accent; }
    """
    BINDINGS = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("enter", "zoom", "Zoom"),
    ]

    class Moved(Message):
        """The current cell changed (or the grid did)."""

    class Zoom(Message):
        pass

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.widget_cls = image_widget_class(mode)
        self.cache = ThumbnailCache(max_items=128, size=(256, 256))
        self.view: GridView | None = None
        self.block = 0
        self.cursor = (0, 0)
        self._shape: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Vertical(id="gb-table")

    # ---- what is shown ----------------------------------------------------------------------
    def set_view(self, view: GridView | None, block: int | None = None) -> None:
        """Show `view` (a newer manifest of the same grid keeps the cursor and block)."""
        same = (self.view is not None and view is not None and self.view.path == view.path)
        self.view = view
        if block is not None:
            self.block = block
        elif not same:
            self.block, self.cursor = 0, (0, 0)
        if view is None:
            self._shape = None
            self.query_one("#gb-table").remove_children()
            self.post_message(self.Moved())
            return
        self.block = max(0, min(self.block, len(view.blocks) - 1))
        rows, cols = len(view.rows), len(view.weights)
        r, c = self.cursor
        self.cursor = (max(0, min(r, rows - 1)), max(0, min(c, cols - 1)))
        shape = (view.path, rows, cols, tuple(r.get("label") for r in view.rows),
                 tuple(view.weights))
        if shape != self._shape:
            self._shape = shape
            self._build(view)
        self._fill()
        self.post_message(self.Moved())

    def set_block(self, block: int) -> None:
        if self.view is not None and 0 <= block < len(self.view.blocks):
            self.block = block
            self._fill()
            self.post_message(self.Moved())

    def _build(self, view: GridView) -> None:
        table = self.query_one("#gb-table")
        table.remove_children()
        rows, cols = len(view.rows), len(view.weights)
        table.styles.grid_size_columns = cols + 1
        table.styles.grid_size_rows = rows + 1
        widgets = [Static("", classes="gb-head")]
        widgets += [Static(f"w {weight_text(w)}", classes="gb-head", id=f"gb-h{c}")
                    for c, w in enumerate(view.weights)]
        for r, row in enumerate(view.rows):
            widgets.append(Static(str(row.get("label", r)), classes="gb-label", id=f"gb-l{r}"))
            widgets += [CellTile(r, c) for c in range(cols)]
        table.mount_all(widgets)
        self._size_tracks()

    def on_resize(self, event: events.Resize) -> None:
        self._size_tracks()

    def _size_tracks(self) -> None:
        """Cells share the room; below a legible size they keep it and the table scrolls.
        (The scroll bar's column is always kept: whether the bar shows is known only after
        this layout, and cells sized before it came or went would not fit the room.)"""
        if self.view is None:
            return
        rows, cols = len(self.view.rows), len(self.view.weights)
        width, height = self.scrollable_content_region.size
        cell_w = max(MIN_CELL_W, (width - LABEL_W - 1) // max(cols, 1))
        cell_h = max(MIN_CELL_H, (height - 1) // max(rows, 1))
        table = self.query_one("#gb-table")
        table.styles.grid_columns = f"{LABEL_W} " + " ".join([str(cell_w)] * cols)
        table.styles.grid_rows = "1 " + " ".join([str(cell_h)] * rows)

    def _fill(self) -> None:
        """Each tile of the current block: its cell's file, the current one framed."""
        view = self.view
        if view is None:
            return
        todo = []
        for tile in self.query(CellTile):
            cell = view.cell(self.block, tile.row, tile.col)
            path = cell["path"] if cell else None
            if path != tile.shown:
                todo.append((tile, path))
            tile.set_class((tile.row, tile.col) == self.cursor, "-current")
        self._mark_labels()
        if todo:
            self._load(todo, self.block)

    def _mark_labels(self) -> None:
        r, c = self.cursor
        for w in self.query(".gb-label, .gb-head"):
            w.set_class(w.id in (f"gb-l{r}", f"gb-h{c}"), "-current")

    @work(thread=True, group="grid-thumbs", exit_on_error=False,
          description="load grid cells")
    def _load(self, todo: list, block: int) -> None:
        worker = get_current_worker()
        done = []
        for tile, path in todo:
            if worker.is_cancelled:
                return
            image = self.cache.get(Path(path)) if path and self.widget_cls else None
            done.append((tile, path, image))
        self.app.call_from_thread(self._put, done, block)

    def _put(self, done: list, block: int) -> None:
        if block != self.block:
            return  # the user moved to another block meanwhile: _fill loads that one
        for tile, path, image in done:
            if tile.is_attached:
                tile.draw(path, image, self.widget_cls)

    # ---- the cursor -------------------------------------------------------------------------
    def current_cell(self) -> dict | None:
        if self.view is None or not self.view.blocks:
            return None
        return self.view.cell(self.block, *self.cursor)

    def action_move(self, dr: int, dc: int) -> None:
        if self.view is None:
            return
        rows, cols = len(self.view.rows), len(self.view.weights)
        r, c = self.cursor
        new = (max(0, min(r + dr, rows - 1)), max(0, min(c + dc, cols - 1)))
        if new == self.cursor:
            return
        self.cursor = new
        for tile in self.query(CellTile):
            tile.set_class((tile.row, tile.col) == new, "-current")
            if (tile.row, tile.col) == new:
                self.scroll_to_widget(tile, animate=False)
        self._mark_labels()
        self.post_message(self.Moved())

    def action_zoom(self) -> None:
        if self.view is not None:
            self.post_message(self.Zoom())

    def describe(self) -> Text:
        """The current cell in words: file, weight, block (prompt and seed)."""
        view = self.view
        t = Text()
        if view is None or not view.blocks:
            return t
        r, c = self.cursor
        pi, prompt, seed = view.blocks[self.block]
        row = view.rows[r]
        t.append(f"{row.get('label', '?')}", style="bold")
        t.append(f" · weight {weight_text(view.weights[c])}", style="bold")
        t.append(f" · seed {seed} · block {self.block + 1}/{len(view.blocks)}")
        cell = view.cell(self.block, r, c)
        if cell is None:
            t.append(" · not drawn yet" if not view.complete else " · not drawn",
                     style="dim")
        t.append(f"\nprompt {pi + 1}: {prompt}")
        return t
