"""One image with kohya's crop drawn on it: what the trainer will actually see.

The image is the stored pixels (EXIF orientation not applied; see core.images.thumbnails):
the bucket, the resize and the crop box are all computed from the stored size, as kohya and
the trainer do, so an upright picture would not match the box.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw
from textual import work
from textual.containers import Vertical
from textual.widgets import Static
from textual.worker import get_current_worker

from ...core.buckets.assign import Assignment
from ...core.images.thumbnails import ThumbnailCache
from ..images import image_widget_class


class CropPreview(Vertical):
    DEFAULT_CSS = """
    CropPreview { width: 34; border: round $panel; border-title-color: $text-muted; }
    CropPreview > .crop-image { width: 100%; height: 1fr; }
    CropPreview > .crop-text { height: auto; color: $text-muted; }
    """

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.widget_cls = image_widget_class(mode)
        self.cache = ThumbnailCache(max_items=64, size=(256, 256))
        self._key: tuple | None = None

    def show(self, path: Path, size: tuple[int, int], a: Assignment) -> None:
        key = (str(path), size, a.bucket, a.resized)
        if key == self._key:
            return
        self._key = key
        self.border_title = path.name
        self.load(path, size, a, key)

    @work(thread=True, exclusive=True, group="crop", exit_on_error=False,
          description="draw a crop preview")
    def load(self, path: Path, size: tuple[int, int], a: Assignment, key) -> None:
        image = None
        if self.widget_cls is not None:
            thumb = self.cache.get(path)
            if thumb is not None:
                image = draw_crop(thumb, a)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._put, image, size, a, key)

    def _put(self, image, size, a: Assignment, key) -> None:
        if key != self._key:
            return
        self.remove_children()
        if image is not None:
            self.mount(self.widget_cls(image, classes="crop-image"))
        text = f"{size[0]}×{size[1]}"
        if a.bucket:
            left, top, right, bottom = a.crop_box()
            lost = 1 - (a.bucket[0] * a.bucket[1]) / (a.resized[0] * a.resized[1])
            text += (f" → {a.resized[0]}×{a.resized[1]}\nbucket {a.bucket[0]}×{a.bucket[1]}, "
                     f"crop {lost:.0%} ({left},{top})-({right},{bottom})")
        else:
            text += f"\n{a.error}"
        self.mount(Static(text, classes="crop-text"))


def draw_crop(thumb: Image.Image, a: Assignment) -> Image.Image | None:
    """A copy of the (stored-orientation) thumbnail with the crop box drawn on it; None when
    the image has no bucket."""
    box = a.crop_box()
    if box is None or not a.resized:
        return None
    image = thumb.copy()
    # the crop box is in resized pixels: bring it to thumbnail pixels
    sx, sy = thumb.width / a.resized[0], thumb.height / a.resized[1]
    left, top, right, bottom = box
    draw = ImageDraw.Draw(image)
    draw.rectangle((left * sx, top * sy, right * sx - 1, bottom * sy - 1),
                   outline=(255, 60, 60), width=max(2, thumb.width // 64))
    return image
