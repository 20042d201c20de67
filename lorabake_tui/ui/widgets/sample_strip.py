"""The newest sample images of a run: the concept thumbnail strip with paths for items;
names only when image previews are off."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .thumbstrip import ThumbStrip


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


class SampleStrip(ThumbStrip):
    """The strip for sample images: its items are paths, not dataset images."""

    DEFAULT_CSS = """
    SampleStrip { height: 10; }
    """

    def __init__(self, mode: str, *, count: int = 6, **kwargs) -> None:
        super().__init__(mode, count=count, cache_items=32, **kwargs)

    def item_path(self, item: str) -> Path:
        return Path(item)

    def make_tile(self, item: str, image) -> SampleTile:
        return SampleTile(Path(item), image, self.widget_cls)
