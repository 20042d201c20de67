"""The newest sample images of a run, as thumbnails decoded in a worker thread (like the
concept thumbnails); names only when image previews are off."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import HorizontalScroll, Vertical
from textual.widgets import Static
from textual.worker import get_current_worker

from ...core.thumbnails import ThumbnailCache
from ..images import image_widget_class


class SampleTile(Vertical):
    DEFAULT_CSS = """
    SampleTile { width: 18; height: 100%; margin-right: 1; }
    SampleTile > .thumb { width: 18; height: 1fr; }
    SampleTile > .placeholder { content-align: center middle; background: $panel;
                                color: $text-muted; }
    SampleTile > .label { height: 1; }
    """

    def __init__(self, path: Path, image, widget_cls) -> None:
        super().__init__()
        self.path, self.image, self.widget_cls = path, image, widget_cls

    def compose(self) -> ComposeResult:
        if self.widget_cls is not None and self.image is not None:
            yield self.widget_cls(self.image, classes="thumb")
        else:
            missing = self.widget_cls is not None  # previews on, but it did not decode
            yield Static("missing" if missing else self.path.suffix.lstrip(".").upper(),
                         classes="thumb placeholder")
        yield Static(Text(self.path.name, overflow="ellipsis", no_wrap=True), classes="label")


class SampleStrip(HorizontalScroll):
    DEFAULT_CSS = """
    SampleStrip { height: 10; border: round $panel; border-title-color: $text-muted;
                  padding: 0 1; overflow-x: hidden; }
    """
    can_focus = False

    def __init__(self, mode: str, *, count: int = 6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count = count
        self.cache = ThumbnailCache(max_items=32)
        self.widget_cls = image_widget_class(mode)
        self._showing: tuple[str, ...] = ()

    def show(self, title: str, paths: list[str]) -> None:
        self.border_title = title
        key = tuple(paths[: self.count])
        if key == self._showing:
            return
        self._showing = key
        self._load(key)

    def clear(self) -> None:
        self._showing = ()
        self.remove_children()

    @work(thread=True, exclusive=True, group="samples", exit_on_error=False,
          description="load sample thumbnails")
    def _load(self, key: tuple[str, ...]) -> None:
        worker = get_current_worker()
        out = []
        for p in key:
            if worker.is_cancelled:
                return
            path = Path(p)
            out.append((path, self.cache.get(path) if self.widget_cls is not None else None))
        if not worker.is_cancelled:
            self.app.call_from_thread(self._put, out, key)

    def _put(self, thumbs, key) -> None:
        if key != self._showing:
            return  # a newer sample arrived meanwhile
        self.remove_children()
        self.mount_all([SampleTile(path, image, self.widget_cls) for path, image in thumbs])
