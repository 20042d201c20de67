"""The trainer's pixels for an EXIF-rotated photo: the stored ones, as kohya trains them and as
the bucket was computed (from the stored size), never the upright ones a viewer shows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from lorabake_tui.trainer.data import Sample, load_pixels, load_train_data  # noqa: E402

from ..support.helpers import make_exif_rotated  # noqa: E402
from ..support.plans import plan_of  # noqa: E402


def phone_sample(tmp_path) -> Sample:
    """A 640x320 JPEG with EXIF orientation 6 (viewers show it 320x640), planned by the core
    and loaded exactly as the trainer does."""
    make_exif_rotated(tmp_path / "2_mira" / "phone.jpg", (640, 320), orientation=6)
    (sample,) = load_train_data(plan_of(tmp_path)).samples
    return sample


def kohya_pixels(path, resized, box) -> np.ndarray:
    """Directly from the stored image: kohya's load_image (Image.open + RGB, no EXIF), scaled
    to `resized`, cropped to `box`, as float32 CHW in [-1, 1]."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    rgb = rgb.resize(resized, Image.Resampling.LANCZOS).crop(box)
    arr = np.asarray(rgb, dtype=np.float32)
    return (arr / 127.5 - 1.0).transpose(2, 0, 1)


def test_load_pixels_trains_the_stored_orientation_the_bucket_was_computed_from(tmp_path):
    s = phone_sample(tmp_path)
    assert s.size == (640, 320)  # the stored size, not the upright 320x640
    assert (s.bucket, s.resized) == ((704, 320), (704, 352))
    pixels = load_pixels(s, flip=False)
    assert pixels.shape == (3, 320, 704) and pixels.dtype == np.float32
    expected = kohya_pixels(s.path, (704, 352), (0, 16, 704, 336))  # centre crop of 32 rows
    assert np.array_equal(pixels, expected)
    assert np.array_equal(load_pixels(s, flip=True), expected[:, :, ::-1])


def test_random_crop_stays_inside_the_stored_resize(tmp_path):
    s = phone_sample(tmp_path)
    pixels = load_pixels(s, flip=False, crop_rng=random.Random(3))
    rng = random.Random(3)  # the same draws: left in 0..0, top in 0..32 (352 - 320)
    left, top = rng.randint(0, 0), rng.randint(0, 32)
    assert np.array_equal(pixels, kohya_pixels(s.path, (704, 352),
                                               (left, top, left + 704, top + 320)))
