"""Aspect-ratio buckets exactly as kohya sd-scripts computes them (train_util.BucketManager,
model_util.make_bucket_resolutions): the one definition used by the Buckets screen, the CLI,
the config summary and the trainer's data loader.

Two modes. Default (upscale allowed): a fixed list of bucket resolutions of about the
training area; each image goes to the bucket with the nearest aspect ratio, is scaled to
cover it and centre-cropped. `no_upscale`: an image larger than the area is scaled down to
it, a smaller one is kept; the bucket is the size floored to the step (crop, never pad).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..base.errors import LorabakeError


@dataclass(frozen=True, slots=True)
class BucketSettings:
    resolution: tuple[int, int] = (512, 512)
    min_reso: int = 256
    max_reso: int = 1024
    step: int = 64
    no_upscale: bool = False
    batch_size: int = 1

    def adjusted(self) -> BucketSettings:
        """min rounded down and max rounded up to the step, then checked, as kohya does."""
        if self.step < 1:
            raise BucketSettingsError("step", f"the bucket step must be positive (got "
                                      f"{self.step})")
        if self.batch_size < 1:
            raise BucketSettingsError("batch", f"the batch size must be at least 1 (got "
                                      f"{self.batch_size})")
        w, h = self.resolution
        if w < 1 or h < 1:
            raise BucketSettingsError("resolution", f"the resolution must be positive (got "
                                      f"{w}x{h})")
        lo = self.min_reso - self.min_reso % self.step
        hi = self.max_reso if self.max_reso % self.step == 0 else \
            self.max_reso + self.step - self.max_reso % self.step
        if lo > min(w, h):
            raise BucketSettingsError("min", f"the min bucket size {lo} is above the "
                                      f"resolution {w}x{h}: lower it")
        if hi < max(w, h):
            raise BucketSettingsError("max", f"the max bucket size {hi} is below the "
                                      f"resolution {w}x{h}: raise it")
        if lo < 1:
            raise BucketSettingsError("min", f"the min bucket size must be at least one step "
                                      f"({self.step})")
        return BucketSettings((w, h), lo, hi, self.step, self.no_upscale, self.batch_size)

    @classmethod
    def single(cls, resolution: int, batch_size: int) -> BucketSettings:
        """Buckets off: one square bucket at the resolution, every image scaled to cover it
        and centre-cropped (kohya's one predefined bucket without enable_bucket)."""
        return cls((resolution, resolution), resolution, resolution, resolution, False,
                   batch_size)


class BucketSettingsError(LorabakeError):
    """Settings kohya would refuse; `field` names the one to change (resolution, min, max,
    step or batch), so the CLI can name its flag and the config its key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def bucket_resolutions(resolution: tuple[int, int], min_size: int, max_size: int,
                       step: int) -> list[tuple[int, int]]:
    """kohya's predefined buckets: the square of the area, then every width from min to max
    in steps with the tallest height that keeps the area, both ways round; sorted."""
    area = resolution[0] * resolution[1]
    side = int(math.sqrt(area) // step) * step
    resos = {(side, side)}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((area // width) // step) * step)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += step
    return sorted(resos)


@dataclass(frozen=True, slots=True)
class Assignment:
    bucket: tuple[int, int] | None  # None: no bucket (kohya would crash on this image)
    resized: tuple[int, int] | None  # the size the image is scaled to before the crop
    ar_error: float  # bucket aspect ratio minus image aspect ratio
    error: str | None = None

    def crop_box(self) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) kept of the resized image: kohya's centre crop."""
        if self.bucket is None or self.resized is None:
            return None
        (rw, rh), (bw, bh) = self.resized, self.bucket
        left, top = (rw - bw) // 2, (rh - bh) // 2
        return (left, top, left + bw, top + bh)

    def upscale(self, size: tuple[int, int]) -> float:
        return self.resized[0] / size[0] if self.resized else 0.0


class Bucketer:
    """Assigns images to buckets for one set of settings (build once, call per image)."""

    def __init__(self, settings: BucketSettings) -> None:
        self.settings = s = settings.adjusted()
        self.area = s.resolution[0] * s.resolution[1]
        self.resos = [] if s.no_upscale else bucket_resolutions(s.resolution, s.min_reso,
                                                                 s.max_reso, s.step)
        self.reso_set = set(self.resos)
        self.ratios = [w / h for w, h in self.resos]

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.settings.step

    def assign(self, width: int, height: int) -> Assignment:
        if width < 1 or height < 1:
            return Assignment(None, None, 0.0, f"invalid image size {width}x{height}")
        ar = width / height
        if not self.settings.no_upscale:
            if (width, height) in self.reso_set:
                reso = (width, height)
            else:
                # nearest aspect ratio; on a tie the first in sorted order, like numpy argmin
                best = min(range(len(self.ratios)), key=lambda i: abs(self.ratios[i] - ar))
                reso = self.resos[best]
            reso_ar = reso[0] / reso[1]
            scale = reso[1] / height if ar > reso_ar else reso[0] / width
            resized = (int(width * scale + 0.5), int(height * scale + 0.5))
        else:
            if width * height > self.area:
                rw = math.sqrt(self.area * ar)
                rh = self.area / rw
                bw_r = self._round(rw)
                bh_in_wr = self._round(bw_r / ar)
                bh_r = self._round(rh)
                bw_in_hr = self._round(bh_r * ar)
                err_w = abs(bw_r / bh_in_wr - ar) if bh_in_wr else math.inf
                err_h = abs(bw_in_hr / bh_r - ar) if bh_r else math.inf
                if err_w < err_h:
                    resized = (bw_r, int(bw_r / ar + 0.5))
                else:
                    resized = (int(bh_r * ar + 0.5), bh_r)
            else:
                resized = (width, height)
            step = self.settings.step
            reso = (resized[0] - resized[0] % step, resized[1] - resized[1] % step)
            if reso[0] == 0 or reso[1] == 0:
                return Assignment(None, resized, 0.0,
                                  f"{width}x{height} has a side below the bucket step {step}: "
                                  "kohya crashes on it (no-upscale mode); upscale or remove it")
        return Assignment(reso, resized, reso[0] / reso[1] - ar)


@dataclass(frozen=True, slots=True)
class BucketImage:
    key: str  # path relative to the dataset root
    size: tuple[int, int]
    repeats: int
    assignment: Assignment


@dataclass(slots=True)
class BucketReport:
    settings: BucketSettings
    images: list[BucketImage]
    buckets: dict[tuple[int, int], list[BucketImage]] = field(default_factory=dict)

    @property
    def errors(self) -> list[BucketImage]:
        return [i for i in self.images if i.assignment.bucket is None]

    def samples(self, bucket: tuple[int, int]) -> int:
        return sum(i.repeats for i in self.buckets.get(bucket, []))

    @property
    def batches_per_epoch(self) -> int:
        """Sum over buckets of ceil(samples / batch): why steps != images*repeats/batch."""
        b = self.settings.batch_size
        return sum(math.ceil(self.samples(k) / b) for k in self.buckets)

    @property
    def mean_ar_error(self) -> float:
        """kohya's "mean ar error (without repeats)"."""
        errs = [abs(i.assignment.ar_error) for i in self.images if i.assignment.bucket]
        return sum(errs) / len(errs) if errs else 0.0

    def warnings(self, *, max_buckets: int = 5) -> list[str]:
        out = []
        b = self.settings.batch_size
        small = [k for k in self.buckets if self.samples(k) < b]
        if small:
            out.append(f"{len(small)} bucket(s) hold fewer samples than the batch size {b}: "
                       f"{', '.join(f'{w}x{h}' for w, h in sorted(small))}")
        if len(self.buckets) > max_buckets:
            out.append(f"{len(self.buckets)} buckets in use: many small buckets blur the "
                       "result; consider the recommendation (fewer buckets)")
        big = [i for i in self.images if i.assignment.upscale(i.size) > 2]
        if big:
            out.append(f"{len(big)} image(s) will be upscaled more than 2x")
        for i in self.errors:
            out.append(f"{i.key}: {i.assignment.error}")
        return out

    def to_json(self) -> dict:
        def pair(p):
            return list(p) if p else None

        return {
            "buckets": [{"resolution": list(k), "images": len(v), "samples": self.samples(k)}
                        for k, v in sorted(self.buckets.items())],
            "images": [{"path": i.key, "size": list(i.size), "bucket": pair(i.assignment.bucket),
                        "resized": pair(i.assignment.resized), "error": i.assignment.error}
                       for i in self.images],
            "batches_per_epoch": self.batches_per_epoch,
            "mean_ar_error": round(self.mean_ar_error, 6),
        }


def assign_all(items: Iterable[tuple[str, tuple[int, int], int]],
               settings: BucketSettings) -> BucketReport:
    """(key, (width, height), repeats) per image -> the whole distribution."""
    bucketer = Bucketer(settings)
    report = BucketReport(bucketer.settings, [])
    cache: dict[tuple[int, int], Assignment] = {}  # datasets repeat sizes a lot
    for key, size, repeats in items:
        a = cache.get(size)
        if a is None:
            a = cache[size] = bucketer.assign(*size)
        img = BucketImage(key, size, repeats, a)
        report.images.append(img)
        if a.bucket is not None:
            report.buckets.setdefault(a.bucket, []).append(img)
    return report


def bucket_histogram(report: BucketReport) -> list[tuple[tuple[int, int], int, int]]:
    """(bucket, images, samples) sorted by bucket."""
    return [(k, len(v), report.samples(k)) for k, v in sorted(report.buckets.items())]
