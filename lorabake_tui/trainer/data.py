"""Training data: which images, how often, in which bucket, with which caption.

Everything here comes from the core (scan, repeats, kohya's bucket math, caption parsing), so
the trainer sees exactly what the Concepts and Buckets screens show.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.base.errors import LorabakeError
from ..core.buckets.assign import BucketReport, BucketSettings, assign_all, training_entries
from ..core.captions.caption_file import CaptionDecodeError, parse_caption
from ..core.dataset.scan import Dataset, scan_dataset
from ..core.images.imageops import ImageDecodeError, decode_image, to_rgb


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

    def dataset_dirs(self) -> dict[str, dict[str, int]]:
        """ss_dataset_dirs: per folder its repeats and image count."""
        out: dict[str, dict[str, int]] = {}
        for s in self.samples:
            d = out.setdefault(s.folder, {"n_repeats": s.repeats, "img_count": 0})
            d["img_count"] += 1
        return out

    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """ss_tag_frequency: per folder, how many images carry each tag (repeats ignored)."""
        out: dict[str, Counter] = {}
        for s in self.samples:
            tags = {t.strip() for t in s.caption.split(",") if t.strip()}
            out.setdefault(s.folder, Counter()).update(tags)
        return {k: dict(v) for k, v in out.items()}

    def bucket_info(self) -> dict:
        buckets = {str(i): {"resolution": list(k), "count": self.report.samples(k)}
                   for i, k in enumerate(sorted(self.report.buckets))}
        return {"buckets": buckets, "mean_img_ar_error": self.report.mean_ar_error}


def _apply_subsets(dataset: Dataset, subsets: list[dict]) -> Dataset:
    """The config's [[data.subsets]] pick folders and may override their repeats; without
    any, every concept folder trains with the repeats in its name."""
    if not subsets:
        return dataset
    chosen = []
    for sub in subsets:
        folder, is_reg = sub["folder"], bool(sub.get("is_reg", False))
        concept = dataset.concept(folder, is_reg=is_reg)
        if concept is None:
            where = "regularization" if is_reg else "training"
            raise LorabakeError(f"data.subsets: folder {folder!r} is not in the {where} folder",
                                "rename the subset or rescan the dataset (Concepts screen)")
        repeats = sub.get("repeats", concept.repeats)
        chosen.append(dataclasses.replace(concept, repeats=repeats))
    return dataclasses.replace(dataset, concepts=chosen)


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


def load_train_data(train_dir: Path, reg_dir: Path | None, *, caption_ext: str,
                    subsets: list[dict], buckets: BucketSettings) -> TrainData:
    dataset = scan_dataset(train_dir, reg_dir, caption_ext=caption_ext)
    dataset = _apply_subsets(dataset, subsets)
    entries, left_out = training_entries(dataset)
    if not any(not e.concept.is_reg for e in entries):
        raise LorabakeError(f"{train_dir}: no training images (folders need a repeat prefix "
                            "such as 10_name)", "see the Concepts screen")
    report = assign_all(((e.key, (e.image.width, e.image.height), e.repeats)
                         for e in entries), buckets)
    samples = []
    for e, bimg in zip(entries, report.images, strict=True):
        a = bimg.assignment
        if a.bucket is None:
            left_out.append(f"{e.key}: {a.error}")
            continue
        folder = e.concept.folder
        samples.append(Sample(
            key=("reg/" if e.concept.is_reg else "") + e.key, path=e.image.path,
            caption=_read_caption(e.image.caption_path, e.concept.name), folder=folder,
            is_reg=e.concept.is_reg, repeats=e.repeats, size=bimg.size, bucket=a.bucket,
            resized=a.resized))
    return TrainData(samples, report, buckets.batch_size, left_out)


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


def load_pixels(sample: Sample, *, flip: bool, crop_rng: random.Random | None = None
                ) -> np.ndarray:
    """The image as kohya trains it: RGB scaled to cover its bucket, cropped (centred, or at
    random with random_crop), maybe mirrored; float32 CHW in [-1, 1]. The pixels are the
    stored ones, EXIF orientation ignored, as kohya's load_image does: the bucket was computed
    from the stored size (the scan warns about such images; the image tools make them
    upright)."""
    try:
        image = to_rgb(decode_image(sample.path.read_bytes(), upright=False))
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
    arr = np.asarray(image, dtype=np.float32)
    if flip:
        arr = arr[:, ::-1]
    return np.ascontiguousarray((arr / 127.5 - 1.0).transpose(2, 0, 1))
