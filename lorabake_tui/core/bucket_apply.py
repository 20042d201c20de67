"""Applying a bucket recommendation: each image that is not already its bucket's size is
scaled to cover the bucket and centre-cropped (what kohya would do at train time, done once
and visibly), saved as PNG; the original moves into .lorabake/originals/. One journal entry."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from .bucket_plan import BucketPlan
from .errors import LorabakeError
from .journal import STATE_DIRNAME, ChangeSet, Entry, Journal

ORIGINALS = f"{STATE_DIRNAME}/originals"


def cover_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to cover `size` (Lanczos) and centre-crop, as kohya's bucketing does."""
    w, h = image.size
    bw, bh = size
    scale = max(bw / w, bh / h)
    rw, rh = max(bw, int(w * scale + 0.5)), max(bh, int(h * scale + 0.5))
    image = image.resize((rw, rh), Image.Resampling.LANCZOS)
    left, top = (rw - bw) // 2, (rh - bh) // 2
    return image.crop((left, top, left + bw, top + bh))


def to_rgb(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


@dataclass(slots=True)
class BucketApplyResult:
    entry: Entry | None
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # (path: reason)


def apply_bucket_plan(root: Path, plan: BucketPlan, *,
                      progress: Callable[[int, int], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> BucketApplyResult:
    root = Path(root)
    cs = ChangeSet()
    result = BucketApplyResult(None)
    todo = [p for p in plan.images if p.size != p.bucket]
    for n, img in enumerate(todo):
        if cancelled is not None and cancelled():
            raise LorabakeError("cancelled: nothing was changed")
        src = root / img.key
        dst_rel = str(Path(img.key).with_suffix(".png"))
        try:
            with Image.open(src) as im:
                out = cover_crop(to_rgb(im), img.bucket)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            result.skipped.append(f"{img.key}: cannot read ({exc})")
            continue
        if dst_rel != img.key and (root / dst_rel).exists():
            result.skipped.append(f"{img.key}: {dst_rel} already exists")
            continue
        buf = io.BytesIO()
        out.save(buf, format="PNG", compress_level=6)
        cs.rename(img.key, f"{ORIGINALS}/{img.key}")
        cs.write(dst_rel, buf.getvalue(), None)
        result.written.append(dst_rel)
        if progress is not None:
            progress(n + 1, len(todo))
    if not cs.changes:
        return result
    label = f"resize {len(result.written)} image(s) to {len(plan.buckets)} buckets"
    result.entry = Journal(root).apply("images", label, cs)
    return result
