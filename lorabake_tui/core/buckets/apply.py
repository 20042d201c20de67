"""Applying a bucket recommendation: each image that is not already its bucket's size is
scaled to cover the bucket and centre-cropped (what kohya would do at train time, done once
and visibly), saved as PNG; the original moves into .lorabake/originals/. One journal entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import LorabakeError
from ..base.journal import ChangeSet, Entry, Journal
from ..base.project_files import ORIGINALS_REL
from ..images.imageops import ImageDecodeError, decode_image, encode_png, resize_to_bucket, to_rgb
from .recommend import BucketPlan

ORIGINALS = ORIGINALS_REL


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
            # stored pixels: the bucket was computed from the stored size, as kohya does
            out = resize_to_bucket(to_rgb(decode_image(src.read_bytes(), upright=False)),
                                   *img.bucket)
        except (OSError, ImageDecodeError) as exc:
            result.skipped.append(f"{img.key}: cannot read ({exc})")
            continue
        if dst_rel != img.key and (root / dst_rel).exists():
            result.skipped.append(f"{img.key}: {dst_rel} already exists")
            continue
        cs.rename(img.key, f"{ORIGINALS}/{img.key}")
        cs.write(dst_rel, encode_png(out), None)
        result.written.append(dst_rel)
        if progress is not None:
            progress(n + 1, len(todo))
    if not cs.changes:
        return result
    label = f"resize {len(result.written)} image(s) to {len(plan.buckets)} buckets"
    result.entry = Journal(root).apply("images", label, cs)
    return result
