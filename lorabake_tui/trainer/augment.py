"""Colour augmentation at train time (data.color_aug), with kohya's odds and strengths: a
third of the images get one change, either a hue shift of up to 8/180 of the colour circle
or a gamma between 0.95 and 1.05 applied to the 0-255 values as kohya does (so it brightens
or darkens a little too). Pixels change every step, so such a run never caches latents
(config check refuses the combination, as kohya does)."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

CHANCE = 0.33
HUE_LIMIT = 8 / 180  # a fraction of the hue circle
GAMMA = (0.95, 1.05)


def color_jitter(image: Image.Image, rng: random.Random) -> Image.Image:
    """An RGB image, maybe with its hue shifted or a gamma applied (draws from `rng`)."""
    if rng.random() > CHANCE:
        return image
    if rng.random() > 0.5:
        shift = rng.uniform(-HUE_LIMIT, HUE_LIMIT)
        hsv = np.asarray(image.convert("HSV"), dtype=np.int16).copy()
        # Pillow's hue runs over 0-255 for the whole circle
        hsv[..., 0] = (hsv[..., 0] + round(shift * 256)) % 256
        return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    gamma = rng.uniform(*GAMMA)
    arr = np.asarray(image, dtype=np.float32) ** gamma
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
