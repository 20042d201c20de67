"""Recommending a few buckets for a dataset: the guide's advice that many buckets blur the
result, made concrete. Pick K bucket resolutions that cover the images with the least crop
and upscaling, and say for each image where it goes and what it loses."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .assign import Bucketer, BucketSettings

EXHAUSTIVE_LIMIT = 20000  # combinations tried one by one; above this, a greedy search
UPSCALE_WEIGHT = 0.1


def crop_fraction(size: tuple[int, int], bucket: tuple[int, int]) -> float:
    """Share of the image cut away when it is scaled to cover the bucket and centre-cropped."""
    ar_i, ar_b = size[0] / size[1], bucket[0] / bucket[1]
    return 1.0 - min(ar_i / ar_b, ar_b / ar_i)


def upscale_factor(size: tuple[int, int], bucket: tuple[int, int]) -> float:
    return max(bucket[0] / size[0], bucket[1] / size[1])


def cost(size: tuple[int, int], bucket: tuple[int, int]) -> float:
    return crop_fraction(size, bucket) + UPSCALE_WEIGHT * max(
        0.0, math.log2(upscale_factor(size, bucket)))


@dataclass(frozen=True, slots=True)
class PlannedImage:
    key: str
    size: tuple[int, int]
    bucket: tuple[int, int]
    crop: float  # share of the picture cut away
    upscale: float  # > 1: enlarged


@dataclass(slots=True)
class BucketPlan:
    buckets: list[tuple[int, int]]
    images: list[PlannedImage]

    @property
    def mean_crop(self) -> float:
        return sum(i.crop for i in self.images) / len(self.images) if self.images else 0.0

    def counts(self) -> dict[tuple[int, int], int]:
        out = {b: 0 for b in self.buckets}
        for i in self.images:
            out[i.bucket] += 1
        return out

    def to_json(self) -> dict:
        return {"buckets": [list(b) for b in self.buckets],
                "mean_crop": round(self.mean_crop, 4),
                "images": [{"path": i.key, "size": list(i.size), "bucket": list(i.bucket),
                            "crop": round(i.crop, 4), "upscale": round(i.upscale, 3)}
                           for i in self.images]}


def recommend(items: list[tuple[str, tuple[int, int], int]], settings: BucketSettings,
              k: int = 4) -> BucketPlan:
    """Choose `k` of kohya's bucket resolutions (for these settings, upscale mode) that
    minimise crop and upscaling over the images, weighted by repeats."""
    if k < 1:
        raise ValueError("the number of buckets must be at least 1")
    s = BucketSettings(settings.resolution, settings.min_reso, settings.max_reso,
                       settings.step, False, settings.batch_size)
    candidates = Bucketer(s).resos
    weights: dict[tuple[int, int], int] = {}
    for _, size, repeats in items:
        weights[size] = weights.get(size, 0) + max(repeats, 1)
    sizes = list(weights)
    table = [[cost(sz, c) for c in candidates] for sz in sizes]
    k = min(k, len(candidates))

    def total(combo: tuple[int, ...]) -> float:
        return sum(weights[sz] * min(row[j] for j in combo) for sz, row in zip(sizes, table,
                                                                              strict=True))

    if not sizes:
        chosen: tuple[int, ...] = ()
    elif math.comb(len(candidates), k) * len(sizes) <= EXHAUSTIVE_LIMIT * 50:
        chosen = min(itertools.combinations(range(len(candidates)), k), key=total)
    else:
        chosen = _greedy(total, len(candidates), k)
    buckets = sorted(candidates[j] for j in chosen)
    images = []
    for key, size, _ in items:
        best = min(buckets, key=lambda b, sz=size: cost(sz, b))
        images.append(PlannedImage(key, size, best, crop_fraction(size, best),
                                   upscale_factor(size, best)))
    return BucketPlan(buckets, images)


def _greedy(total, n: int, k: int) -> tuple[int, ...]:
    """Add the best bucket one at a time, then swap while that helps."""
    chosen: list[int] = []
    for _ in range(k):
        chosen.append(min((j for j in range(n) if j not in chosen),
                          key=lambda j: total((*chosen, j))))
    improved = True
    while improved:
        improved = False
        for i in range(k):
            for j in range(n):
                if j in chosen:
                    continue
                trial = chosen.copy()
                trial[i] = j
                if total(tuple(trial)) < total(tuple(chosen)) - 1e-12:
                    chosen, improved = trial, True
    return tuple(chosen)
