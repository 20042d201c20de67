"""A tiny dataset and config for real trainer runs on CPU (builtin:tiny-sd15, 64 px)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from lorabake_tui.core.config.file import set_value_in_text

CAPTIONS = ["mychar, 1girl, red hair, smile", "mychar, 1girl, red hair, outdoors",
            "mychar, solo, red hair, smile, sky"]


def make_dataset(root: Path, *, images: int = 6, repeats: int = 2, seed: int = 0,
                 reg: int = 0) -> Path:
    rng = random.Random(seed)
    folder = root / "data" / f"{repeats}_mychar"
    folder.mkdir(parents=True)
    for i in range(images):
        w, h = rng.choice([(64, 64), (96, 64), (64, 96)])
        im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
        ImageDraw.Draw(im).ellipse((8, 8, 40, 40), fill=(220, 30, 30))
        im.save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(CAPTIONS[i % len(CAPTIONS)] + "\n")
    if reg:
        rfolder = root / "reg" / "1_woman"
        rfolder.mkdir(parents=True)
        for i in range(reg):
            Image.new("RGB", (64, 64), (rng.randrange(256), 90, 90)).save(rfolder / f"r{i}.png")
    return root / "data"


BASE = '''[general]
base_model = "builtin:tiny-sd15"
epochs = 2
batch_size = 2
mixed_precision = "no"
cache_latents = "memory"
max_token_length = 75
seed = 7

[data]
train_dir = "data"
shuffle_caption = true
keep_tokens = 1

[network]
type = "lora"
dim = 4
alpha = 2

[optimizer]
type = "AdamW"
learning_rate = 1e-3
scheduler = "constant"

[buckets]
resolution = 64
min = 64
max = 128
step = 64

[saving]
output_dir = "out"
output_name = "tiny"
precision = "float"
comment = "trigger: mychar"
'''


def write_config(root: Path, name: str = "cfg.toml", **values) -> Path:
    """BASE with `section__key=value` overrides."""
    text = BASE
    for k, v in values.items():
        section, key = k.split("__")
        text = set_value_in_text(text, section, key, v)
    path = root / name
    path.write_text(text)
    return path
