"""Small preview images: decoded and shrunk once (off the UI thread), kept in a memory LRU.

A thumbnail shows the pixels as stored, EXIF orientation NOT applied: that is what kohya
buckets and trains, so the concept strip, the Tags screen and the Buckets screen's crop preview
(whose crop box is in stored pixels) all show what is trained. An image a viewer would turn
upright shows sideways here on purpose; the scan warns about it (exif-rotated).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from pathlib import Path

from PIL import Image


class ThumbnailCache:
    def __init__(self, max_items: int = 256, size: tuple[int, int] = (192, 192)) -> None:
        self.size = size
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int, int], Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> Image.Image | None:
        """The thumbnail, decoding it if needed; None if the file cannot be decoded."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_mtime_ns, st.st_size)  # a changed file gets a new thumbnail
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        thumb = make_thumbnail(path, self.size)
        if thumb is None:
            return None
        with self._lock:
            self._items[key] = thumb
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return thumb


def make_thumbnail(path: Path, size: tuple[int, int]) -> Image.Image | None:
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            # a large image only warns (the scan reports one too large); never raw text
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.draft("RGB", size)  # JPEG decodes at reduced scale: much faster
            im.thumbnail(size)  # no exif_transpose: the stored pixels (see above)
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
