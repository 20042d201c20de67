"""Operations on one image: pure functions from a Pillow image to a new one, plus decoding and
PNG encoding with the guards the batch tools need.

Everything decodes through `decode_image`, and every caller says which pixels it wants:
`upright=True` applies the EXIF orientation (a phone photo stored sideways comes out upright
and the tag is dropped, so nothing rotates it twice): the image tools, which write an upright
copy, and the duplicate finder. `upright=False` gives the pixels as stored, which is what
kohya buckets (from the header size) and trains (it never applies EXIF): the trainer, the
bucket recommendation's resize and the auto-tagger. `encode_png` writes a deterministic PNG
(zlib level 6, optimize off, no text/time/EXIF chunks; only an ICC profile is kept, as it is
needed to show the colours right).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from typing import Literal

from PIL import Image, ImageColor, ImageOps, ImageSequence

from ..base.errors import LorabakeError
from .limits import megapixels, pixel_limit_message

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
# what padding and flattened transparency default to, as the user types it (CLI and dialog)
DEFAULT_BACKGROUND = "white"
ResizeMode = Literal["fit", "cover", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("fit", "cover", "stretch")
PNG_COMPRESS_LEVEL = 6
# Formats whose extra frames are an animation (one PNG per frame); other multi-frame files
# (a camera's MPO JPEG with its preview, a multi-page TIFF) keep their first frame only.
ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "AVIF"})
LANCZOS = Image.Resampling.LANCZOS
_ORIENTATION_TAG = 0x0112


class ImageDecodeError(Exception):
    """An image that cannot be used; `str()` is a short human reason."""


# ---- parsing user values ---------------------------------------------------------------------

def parse_color(text: str) -> RGB:
    """'white', '#fff', '#102030', 'rgb(1,2,3)' -> (r, g, b)."""
    try:
        value = ImageColor.getrgb(text.strip())
    except ValueError:
        raise LorabakeError(f"unknown colour {text!r}",
                            "use a name (white), #rrggbb or rgb(r,g,b)") from None
    return (int(value[0]), int(value[1]), int(value[2]))


def parse_size(text: str) -> tuple[int, int]:
    """'512x768' -> (512, 768); '512' -> (512, 512)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1 or max(nums) > 16384:
        raise LorabakeError(f"bad size {text!r}", "give WIDTHxHEIGHT, e.g. 512x768")
    return nums[0], nums[1]


# ---- single-image operations -------------------------------------------------------------------

def apply_exif_orientation(image: Image.Image) -> Image.Image:
    """The image turned upright as its EXIF orientation tag says (a copy without the tag)."""
    return ImageOps.exif_transpose(image)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when it has none."""
    value = image.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale ('I;16', 'I', 'F') scaled to 8-bit 'L'."""
    import numpy as np

    arr = np.asarray(image)
    if image.mode == "F":
        peak = float(np.nanmax(arr)) if arr.size else 0.0
        arr = arr * 255.0 if peak <= 1.0 else arr
    elif arr.size and int(arr.max()) > 255:  # 16-bit range (0..65535)
        arr = arr.astype(np.float64) / 257.0
    out = np.clip(np.rint(np.nan_to_num(arr.astype(np.float64))), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK -> sRGB through the embedded ICC profile when there is one (and LittleCMS is
    available), else Pillow's plain conversion."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, src, ImageCms.createProfile("sRGB"),
                                             outputMode="RGB")
        except Exception:  # noqa: BLE001 - a broken profile: fall back to the plain maths
            pass
    return image.convert("RGB")


def flatten_alpha(image: Image.Image, background: RGB = WHITE) -> Image.Image:
    """Any mode -> RGB; transparency (alpha channel or a palette's transparent index) is
    composited onto `background`. CMYK, palette, greyscale and 16-bit modes are converted."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_8bit(image).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def has_transparency(image: Image.Image) -> bool:
    return (image.mode in ("RGBA", "LA", "PA", "La", "RGBa")
            or "transparency" in image.info)


def pad_to_square(image: Image.Image, color: RGB = WHITE) -> Image.Image:
    """Centre the image on a square canvas of its longer side filled with `color` (the guide's
    padding script: the offset is floor((side - w) / 2)). A square image is returned as is."""
    w, h = image.size
    if w == h:
        return image.copy()
    side = max(w, h)
    return _paste_centred(image, (side, side), color)


def _paste_centred(image: Image.Image, size: tuple[int, int], color: RGB) -> Image.Image:
    rgb = flatten_alpha(image, color)
    canvas = Image.new("RGB", size, color)
    canvas.paste(rgb, ((size[0] - rgb.width) // 2, (size[1] - rgb.height) // 2))
    return canvas


def _round_half_up(x: float) -> int:
    return int(x + 0.5)


def cover_size(w: int, h: int, bw: int, bh: int) -> tuple[int, int]:
    """kohya's scale-to-cover size: the side that is short relative to the bucket fits exactly,
    the other is at least as long (int(x + .5) rounding, as in sd-scripts)."""
    # wider than the bucket: match the height, else the width
    scale = bh / h if w / h > bw / bh else bw / w
    return max(bw, _round_half_up(w * scale)), max(bh, _round_half_up(h * scale))


def _fit_size(w: int, h: int, bw: int, bh: int) -> tuple[int, int]:
    scale = min(bw / w, bh / h)
    return (min(bw, max(1, _round_half_up(w * scale))),
            min(bh, max(1, _round_half_up(h * scale))))


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image.copy()
    return image.resize(size, LANCZOS)


def resize_image(image: Image.Image, width: int, height: int, mode: ResizeMode = "fit",
                 color: RGB = WHITE) -> Image.Image:
    """Resize to exactly width x height with Lanczos.

    fit: scale to fit inside, pad the rest with `color`, centred; cover: scale to cover, then
    crop the excess centred (`resize_to_bucket`); stretch: ignore the aspect ratio.
    """
    if width < 1 or height < 1:
        raise ValueError(f"bad target size {width}x{height}")
    if mode == "stretch":
        return _resize(image, (width, height))
    if mode == "cover":
        return resize_to_bucket(image, width, height)
    if mode == "fit":
        inner = _resize(image, _fit_size(image.width, image.height, width, height))
        if inner.size == (width, height):
            return inner
        return _paste_centred(inner, (width, height), color)
    raise ValueError(f"unknown resize mode {mode!r}")


def resize_to_bucket(image: Image.Image, bucket_w: int, bucket_h: int) -> Image.Image:
    """Scale to cover the bucket, then crop the excess centred.

    This mirrors what kohya's sd-scripts does to an image at training time (without
    random_crop): resize so the bucket is covered, rounding each side with int(x + .5), then
    trim (excess // 2) from the left/top. Doing it beforehand shows exactly what is trained.
    """
    rw, rh = cover_size(image.width, image.height, bucket_w, bucket_h)
    resized = _resize(image, (rw, rh))
    left, top = (rw - bucket_w) // 2, (rh - bucket_h) // 2
    if (left, top) == (0, 0) and (rw, rh) == (bucket_w, bucket_h):
        return resized
    return resized.crop((left, top, left + bucket_w, top + bucket_h))


def downscale_max_side(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longer side is `max_side`, keeping the aspect ratio; never enlarges."""
    return _resize(image, max_side_size(image.width, image.height, max_side))


def max_side_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    longest = max(w, h)
    if longest <= max_side:
        return w, h
    scale = max_side / longest
    if w >= h:
        return max_side, max(1, _round_half_up(h * scale))
    return max(1, _round_half_up(w * scale)), max_side


def min_side_size(w: int, h: int, min_side: int) -> tuple[int, int]:
    """The size with the shorter side scaled up to `min_side` (aspect kept)."""
    short = min(w, h)
    if short >= min_side:
        return w, h
    scale = min_side / short
    if w <= h:
        return min_side, max(min_side, _round_half_up(h * scale))
    return max(min_side, _round_half_up(w * scale)), min_side


# ---- the pixel limit ---------------------------------------------------------------------------

PIXEL_LIMIT_FIX = "shrink it in an image editor or move it out of the dataset"
_PILLOW_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


def pixel_limit() -> int | None:
    """The most pixels an image may have before the tools refuse to decode it (None: no
    limit): where Pillow itself refuses, twice its warning threshold. With Pillow's default
    this is limits.MAX_PIXELS, the number the scan, the buckets and the trainer use (a test
    holds the two equal); it is read from Pillow here so that the tools and Pillow never
    disagree. Every default limit of the image tools is read here."""
    warn_at = Image.MAX_IMAGE_PIXELS
    return 2 * warn_at if warn_at else None


def over_pixel_limit(width: int, height: int, limit: int | None) -> str | None:
    """The one-line problem for an image over `limit`, with the fix; None when it is within."""
    if not limit or width * height <= limit:
        return None
    return f"refused: {pixel_limit_message(width, height, limit)}; {PIXEL_LIMIT_FIX}"


def _bomb_problem(exc: BaseException) -> str:
    """Pillow's own refusal, which names only the pixel count, said like our own check."""
    found = _PILLOW_BOMB.search(str(exc))
    if found is None:
        return f"refused: too many pixels for Pillow to open; {PIXEL_LIMIT_FIX}"
    pixels, limit = (int(g) for g in found.groups())
    return (f"refused: {megapixels(pixels)}, over the {megapixels(limit)} limit; "
            f"{PIXEL_LIMIT_FIX}")


# ---- decoding and encoding ---------------------------------------------------------------------

# EXIF orientation -> the transpose that makes the stored pixels upright (as exif_transpose)
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _open_checked(data: bytes, max_pixels: int | None) -> Image.Image:
    """Open (header only) and refuse decompression bombs before any pixel is decoded."""
    limit = pixel_limit() if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        # below its refusal Pillow only warns; the check after the header decides instead
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError(_bomb_problem(exc)) from None
        except Image.UnidentifiedImageError:
            raise ImageDecodeError("not an image Pillow can read (unknown or damaged "
                                   "header)") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageDecodeError(f"damaged image: {_reason(exc)}") from None
    problem = over_pixel_limit(image.width, image.height, limit)
    if problem is not None:
        raise ImageDecodeError(problem)
    return image


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _load(image: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_bomb_problem(exc)) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        reason = _reason(exc)
        if "truncated" in reason.lower():
            raise ImageDecodeError(f"truncated image ({reason})") from None
        raise ImageDecodeError(f"cannot decode: {reason}") from None


def decode_image(data: bytes, *, upright: bool, max_pixels: int | None = None,
                 draft: int | None = None) -> Image.Image:
    """Decode the first frame fully. `upright`: apply the EXIF orientation (and drop the tag);
    False keeps the pixels as stored, as kohya reads them (no default: each caller decides,
    see the module docstring). Raises ImageDecodeError with a short reason for damaged,
    truncated or oversized files. `draft`: a JPEG may be decoded at a reduced scale, keeping
    both sides >= draft (fast previews and hashes)."""
    image = _open_checked(data, max_pixels)
    if draft is not None and image.format == "JPEG":
        image.draft(image.mode, (draft, draft))
    _load(image)
    if not upright:
        return image
    try:
        return apply_exif_orientation(image)
    except (OSError, ValueError, SyntaxError) as exc:  # a broken EXIF block
        raise ImageDecodeError(f"bad EXIF data: {_reason(exc)}") from None


def frame_count(data: bytes, *, max_pixels: int | None = None) -> int:
    """Frames of an animation (GIF, WebP, AVIF); 1 for everything else."""
    image = _open_checked(data, max_pixels)
    if image.format not in ANIMATED_FORMATS:
        return 1
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"damaged animation: {_reason(exc)}") from None


def decode_frames(data: bytes, *, upright: bool, max_pixels: int | None = None
                  ) -> Iterator[Image.Image]:
    """Every frame of an animation (each a full RGBA picture, disposal applied), or the one
    image of anything else. `upright` as for `decode_image`, applied to every frame."""
    image = _open_checked(data, max_pixels)
    if image.format not in ANIMATED_FORMATS or getattr(image, "n_frames", 1) <= 1:
        yield decode_image(data, upright=upright, max_pixels=max_pixels)
        return
    try:
        method = _TRANSPOSE.get(exif_orientation(image)) if upright else None
        for frame in ImageSequence.Iterator(image):
            _load(frame)
            rgba = frame.convert("RGBA")
            yield rgba.transpose(method) if method is not None else rgba
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"damaged animation: {_reason(exc)}") from None


def to_rgb(image: Image.Image, background: RGB = WHITE) -> Image.Image:
    """The image as RGB (alpha composited on `background`), keeping an ICC profile of an RGB
    or greyscale source (CMYK is converted to sRGB and loses its profile)."""
    icc = image.info.get("icc_profile") if image.mode != "CMYK" else None
    rgb = flatten_alpha(image, background)
    rgb.info = {"icc_profile": icc} if icc else {}
    return rgb


def encode_png(image: Image.Image) -> bytes:
    """Deterministic PNG bytes: no metadata but an ICC profile when the image carries one."""
    icc = image.info.get("icc_profile")
    clean = image.copy()
    clean.info = {}
    buf = io.BytesIO()
    kwargs = {"icc_profile": icc} if icc else {}
    clean.save(buf, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL, **kwargs)
    return buf.getvalue()
