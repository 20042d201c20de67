"""color_aug: kohya's odds (a third of the images) and strengths (hue within 8/180 of the
circle, gamma 0.95-1.05 on the 0-255 values), and the trainer's pixel path applies it."""

from __future__ import annotations

import colorsys
import random

import numpy as np
from PIL import Image

from lorabake_tui.trainer.augment import color_jitter


def _image(rgb=(200, 60, 40)) -> Image.Image:
    return Image.new("RGB", (16, 8), rgb)


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]


def test_a_third_of_the_images_change_by_a_small_hue_shift_or_gamma():
    rng = random.Random(3)
    src = _image()
    base = np.asarray(src)
    changed = hue = gamma = 0
    n = 3000
    for _ in range(n):
        out = color_jitter(src, rng)
        assert out.size == src.size and out.mode == "RGB"
        arr = np.asarray(out)
        if np.array_equal(arr, base):
            continue
        changed += 1
        px = tuple(int(v) for v in arr[0, 0])
        dh = abs(_hue(px) - _hue(tuple(base[0, 0])))
        dh = min(dh, 1 - dh)
        assert dh <= 8 / 180 + 0.02, px  # within kohya's limit (plus 8-bit rounding)
        if dh > 0.005:
            hue += 1
        else:  # gamma: every channel moves the same way, by at most x**1.05 - x
            gamma += 1
            for a, b in zip(px, base[0, 0], strict=True):
                assert abs(int(a) - int(b)) <= max(b ** 1.05 - b, b - b ** 0.95) + 1
    assert 0.28 < changed / n < 0.38  # kohya: p = 0.33
    assert hue > 0.3 * changed and gamma > 0.3 * changed  # the two halves


def test_the_trainers_pixels_change_with_a_colour_rng(tmp_path):
    from lorabake_tui.trainer.data import Sample, load_pixels

    path = tmp_path / "a.png"
    _image().resize((64, 64)).save(path)
    sample = Sample(key="1_a/a.png", path=path, caption="a", folder="1_a", is_reg=False,
                    repeats=1, size=(64, 64), bucket=(64, 64), resized=(64, 64))
    plain = load_pixels(sample, flip=False)
    assert np.array_equal(plain, load_pixels(sample, flip=False, color_rng=None))
    outs = [load_pixels(sample, flip=False, color_rng=random.Random(s)) for s in range(12)]
    assert any(not np.array_equal(plain, o) for o in outs)
    assert any(np.array_equal(plain, o) for o in outs)  # most images stay as they are
