"""Training data: which images, how often, in which bucket, with which caption.

Everything here comes from the core's training plan (scan, subsets, repeats, kohya's bucket
math) and caption parsing, so the trainer sees exactly what the Config and Buckets screens
show. An image over the core's pixel limit is refused with the scan's words: the plan leaves
it out with an error, and each image's header is checked again before its pixels are decoded
(a file replaced since the scan must not be decoded blind).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.base.errors import LorabakeError
from ..core.buckets.assign import BucketReport
from ..core.captions.caption_file import CaptionDecodeError, parse_caption
from ..core.images.imageinfo import ImageReadError, read_image_header
from ..core.images.imageops import ImageDecodeError, decode_image, to_rgb
from ..core.images.limits import (
    MAX_PIXELS,
    PIXEL_LIMIT_HINT,
    over_pixel_limit,
    pixel_limit_message,
)
from ..core.project.plan import TrainingPlan


@dataclass(frozen=True, slots=True)
class Sample:
    key: str  # "folder/name" (reg images: "reg/folder/name")
    path: Path
    caption: str  # the caption file's first line, or the folder's class token
    folder: str
    is_reg: bool
    repeats: int
    size: tuple[int, int]
    bucket: tuple[int, int]
    resized: tuple[int, int]


@dataclass(slots=True)
class TrainData:
    samples: list[Sample]
    report: BucketReport
    batch_size: int
    left_out: list[str]

    @property
    def num_train_images(self) -> int:
        """kohya's count: training images times their repeats (reg not included)."""
        return sum(s.repeats for s in self.samples if not s.is_reg)

    @property
    def num_reg_images(self) -> int:
        return sum(s.repeats for s in self.samples if s.is_reg)

    @property
    def batches_per_epoch(self) -> int:
        return self.report.batches_per_epoch


def _read_caption(path: Path | None, fallback: str) -> str:
    if path is None:
        return fallback
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LorabakeError(f"{path}: cannot read the caption ({exc.strerror})") from None
    try:
        return ", ".join(parse_caption(data).tags)
    except CaptionDecodeError as exc:
        raise LorabakeError(f"{path}: the caption is {exc}",
                            "save it as UTF-8 (the Tags screen lists such files)") from None


def load_train_data(plan: TrainingPlan) -> TrainData:
    """The plan's images with their captions read: exactly what the Config summary and the
    Buckets screen counted."""
    if plan.report is None or plan.buckets is None:
        raise LorabakeError("the training plan has errors", "`lorabake config check` lists them")
    errors = [f for f in plan.findings if f.is_error]
    if errors:  # e.g. images over the pixel limit: the run would stop on them later
        raise LorabakeError(errors[0].message, "`lorabake config check` lists them")
    samples = [Sample(key=("reg/" if i.is_reg else "") + i.key, path=i.image.path,
                      caption=_read_caption(i.image.caption_path, i.concept.name),
                      folder=i.concept.folder, is_reg=i.is_reg, repeats=i.repeats,
                      size=i.size, bucket=i.bucket, resized=i.resized)
               for i in plan.images]
    return TrainData(samples, plan.report, plan.buckets.batch_size, list(plan.left_out))


def epoch_batches(data: TrainData, seed: int, epoch: int) -> list[list[int]]:
    """kohya's batching: within each bucket every image appears `repeats` times, shuffled and
    cut into batches (a batch never mixes buckets); then the batches are shuffled. The order
    depends only on (seed, epoch), so a resumed run replays it exactly."""
    rng = random.Random(f"lorabake:{seed}:{epoch}")
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(data.samples):
        by_bucket.setdefault(s.bucket, []).extend([i] * s.repeats)
    batches: list[list[int]] = []
    b = data.batch_size
    for bucket in sorted(by_bucket):
        items = by_bucket[bucket]
        rng.shuffle(items)
        batches += [items[k:k + b] for k in range(0, len(items), b)]
    rng.shuffle(batches)
    return batches


def shard(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This process's batches: every world-th one, padded by wrapping round so all processes
    take the same number of steps (DDP needs that)."""
    per = math.ceil(len(batches) / world)
    return [batches[(rank + k * world) % len(batches)] for k in range(per)]


def load_pixels(sample: Sample, *, flip: bool, crop_rng: random.Random | None = None,
                color_rng: random.Random | None = None) -> np.ndarray:
    """The image as kohya trains it: RGB scaled to cover its bucket, cropped (centred, or at
    random with random_crop), colour-jittered with color_aug (augment.py), maybe mirrored;
    float32 CHW in [-1, 1]. The pixels are the
    stored ones, EXIF orientation ignored, as kohya's load_image does: the bucket was computed
    from the stored size (the scan warns about such images; the image tools make them
    upright)."""
    try:
        header = read_image_header(sample.path)
    except ImageReadError as exc:
        raise LorabakeError(f"{sample.path}: {exc}", "fix or remove the image") from None
    if over_pixel_limit(header.width, header.height):
        raise LorabakeError(f"{sample.key}: {pixel_limit_message(header.width, header.height)}",
                            PIXEL_LIMIT_HINT)
    try:
        image = to_rgb(decode_image(sample.path.read_bytes(), upright=False,
                                    max_pixels=MAX_PIXELS))
    except (OSError, ImageDecodeError) as exc:
        raise LorabakeError(f"{sample.path}: {exc}", "fix or remove the image") from None
    from ..core.images.imageops import cover_size

    bw, bh = sample.bucket
    rw, rh = cover_size(image.width, image.height, bw, bh)
    if (rw, rh) != image.size:
        from PIL import Image

        image = image.resize((rw, rh), Image.Resampling.LANCZOS)
    if crop_rng is not None:
        left, top = crop_rng.randint(0, rw - bw), crop_rng.randint(0, rh - bh)
    else:
        left, top = (rw - bw) // 2, (rh - bh) // 2
    if (rw, rh) != (bw, bh):
        image = image.crop((left, top, left + bw, top + bh))
    if color_rng is not None:
        from .augment import color_jitter

        image = color_jitter(image, color_rng)
    arr = np.asarray(image, dtype=np.float32)
    if flip:
        arr = arr[:, ::-1]
    return np.ascontiguousarray((arr / 127.5 - 1.0).transpose(2, 0, 1))
