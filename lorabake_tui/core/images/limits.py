"""The one pixel limit: the largest image lorabake reads, and the words that explain it.

The limit is where Pillow refuses to open an image at all (DecompressionBombError), which is
twice ``PIL.Image.MAX_IMAGE_PIXELS``: about 179 million pixels with Pillow's default. kohya
opens every image through Pillow, so this is exactly where kohya fails on an image; below it
Pillow only warns (DecompressionBombWarning) and kohya trains the image. Using the same line
keeps lorabake's numbers kohya-identical: an image kohya would train counts, one it would
crash on is a problem. The scan, the buckets, the config check, the trainer and the image
tools all use this one number.

The number is written out rather than read from Pillow so that the header-only scan never
imports Pillow; a test checks it still equals Pillow's default.
"""

from __future__ import annotations

# PIL.Image.MAX_IMAGE_PIXELS is int(1024 * 1024 * 1024 // 4 // 3) = 89_478_485 by default;
# Image.open raises DecompressionBombError above twice that.
PILLOW_WARNING_PIXELS = 1024 * 1024 * 1024 // 4 // 3
MAX_PIXELS = 2 * PILLOW_WARNING_PIXELS  # 178_956_970


def over_pixel_limit(width: int, height: int) -> bool:
    return width * height > MAX_PIXELS


def megapixels(pixels: int) -> str:
    """179 MP, 1600 MP, 0.3 MP: whole numbers once they are big enough to matter; a count
    too small for a tenth of a megapixel is given in pixels."""
    mp = pixels / 1e6
    if mp < 0.1:
        return f"{pixels:,} pixels"
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.1f} MP"


def pixel_limit_message(width: int, height: int, limit: int = MAX_PIXELS) -> str:
    """Why an image is refused, e.g. '40000x40000 = 1600 MP, over the 179 MP limit'."""
    return (f"{width}x{height} = {megapixels(width * height)}, over the "
            f"{megapixels(limit)} limit")


# Pillow refuses to open such an image, so lorabake's own image tools cannot shrink it either.
PIXEL_LIMIT_HINT = ("Pillow (and so kohya and lorabake) will not open an image this large: "
                    "shrink it below the limit in an image editor, or remove it")
