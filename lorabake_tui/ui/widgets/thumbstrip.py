"""A row of thumbnails for one concept folder, decoded in a worker thread and cached."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import HorizontalScroll, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import get_current_worker

from ...core.dataset.scan import ImageItem
from ...core.images.thumbnails import ThumbnailCache
from ..images import image_widget_class

LOW_RES = 512  # below the training resolution on either side: upscaled, and it shows


def tile_label(item: ImageItem) -> Content:
    # Content styles name the theme's variables, so a tile follows a theme change
    parts: list[str | tuple[str, str]] = [item.path.name]
    if item.width and item.height:
        parts.append((f"\n{item.width}×{item.height}", "dim"))
        if min(item.width, item.height) < LOW_RES:
            parts.append((" low-res", "bold $text-warning"))
    elif not item.readable:
        parts.append(("\nunreadable", "bold $text-error"))
    return Content.assemble(*parts)


class Tile(Vertical):
    DEFAULT_CSS = """
    Tile { width: 20; height: 100%; margin-right: 1; }
    Tile > .thumb { width: 20; height: 1fr; }
    Tile > .placeholder { content-align: center middle; background: $panel; color: $text-muted; }
    Tile > .label { height: 2; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, item: ImageItem, image, widget_cls) -> None:
        super().__init__()
        self.item, self.image, self.widget_cls = item, image, widget_cls

    def compose(self) -> ComposeResult:
        if self.widget_cls is not None and self.image is not None:
            yield self.widget_cls(self.image, classes="thumb")
        else:
            yield Static(self.item.ext.lstrip(".").upper(), classes="thumb placeholder")
        yield Static(tile_label(self.item), classes="label")


class ThumbStrip(HorizontalScroll):
    """The first `count` images of a list as tiles; decoding runs in a worker, and a list
    that changed meanwhile wins. Subclasses change what an item is and how its tile looks."""

    DEFAULT_CSS = """
    ThumbStrip { height: 12; border: round $panel; border-title-color: $text-muted;
                 padding: 0 1; overflow-x: hidden; }
    """
    can_focus = False

    def __init__(self, mode: str, *, count: int = 8, cache_items: int = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.count = count
        self.cache = ThumbnailCache(max_items=cache_items)
        self.widget_cls = image_widget_class(mode)
        self._showing: tuple[str, ...] = ()

    def item_path(self, item) -> Path:
        return item.path

    def make_tile(self, item, image) -> Widget:
        return Tile(item, image, self.widget_cls)

    def show(self, title: str, items: list) -> None:
        self.border_title = title
        picked = items[: self.count]
        key = tuple(str(self.item_path(i)) for i in picked)
        if key == self._showing:
            return
        self._showing = key
        self.load(picked, key)

    def clear(self, title: str = "") -> None:
        self.border_title = title
        self._showing = ()
        self.remove_children()

    @work(thread=True, exclusive=True, group="thumbs", exit_on_error=False,
          description="load thumbnails")
    def load(self, items: list, key: tuple[str, ...]) -> None:
        worker = get_current_worker()
        out = []
        for item in items:
            if worker.is_cancelled:
                return
            thumb = (self.cache.get(self.item_path(item)) if self.widget_cls is not None
                     else None)
            out.append((item, thumb))
        if not worker.is_cancelled:
            self.app.call_from_thread(self._put, out, key)

    def _put(self, thumbs, key) -> None:
        if key != self._showing:
            return  # the user has moved on
        self.remove_children()
        self.mount_all([self.make_tile(item, image) for item, image in thumbs])
