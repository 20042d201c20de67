"""Create a deterministic kohya-style dataset for benchmarks.

    python bench/make_dataset.py DIR [--images 10000] [--folders 8] [--force]

DIR gets folders named N_concept_XX (N = repeats) holding small real images (PNG mostly, some
JPEG and WEBP, 64-128 px, a third of them noisy enough to weigh 5-40 KiB, the rest a few
hundred bytes) each with a .txt caption of about 20 danbooru-like tags. Every
distinct (size, format, variant) is encoded once with Pillow and its bytes are copied, so 10k
images take a second or two. Same arguments, same bytes on disk.

Importable: make_dataset(dir, images, folders) and ensure_dataset(...) (reuse when it matches).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
from pathlib import Path

GENERATOR_VERSION = 2
STAMP = ".bench-dataset.json"  # a dotfile: lorabake's scan (like kohya) skips it
SEED = 20240601
IMAGE_EXTS = (".png", ".jpg", ".webp")

# (width, height) -> weight; all small so files stay a few KiB
SIZES = {(64, 64): 6, (96, 64): 2, (64, 96): 2, (80, 80): 1, (128, 96): 1}
# format -> (extension, weight): mostly PNG
FORMATS = {"PNG": (".png", 80), "JPEG": (".jpg", 12), "WEBP": (".webp", 8)}
VARIANTS = 3  # pictures per (size, format); the last one is noisy, see _encode
REPEATS = (10, 5, 20, 3, 8, 15, 2, 12)

_TAG_TEXT = """1girl 1boy solo looking_at_viewer smile open_mouth blush short_hair long_hair
brown_hair black_hair blonde_hair blue_eyes brown_eyes green_eyes red_eyes simple_background
white_background outdoors indoors sky cloud day night tree grass flower water upper_body
full_body cowboy_shot portrait standing sitting holding shirt white_shirt jacket skirt dress
hat glasses jewelry earrings necklace school_uniform hoodie scarf gloves boots bag closed_eyes
closed_mouth teeth hand_up arms_crossed from_side from_above from_below depth_of_field
blurry_background sunlight shadow lens_flare motion_blur city street building window curtains
bed chair table cup food book phone sword umbrella animal cat dog bird rain snow autumn_leaves
cherry_blossoms beach ocean mountain forest night_sky star_(sky) moon sunset masterpiece
best_quality highres absurdres detailed_background realistic anime_coloring sketch monochrome
greyscale watercolor_(medium) traditional_media hair_ornament hairclip ponytail twintails
braid bangs ahoge hair_between_eyes multicolored_hair streaked_hair medium_breasts collarbone
bare_shoulders sleeves_past_wrists long_sleeves short_sleeves thighhighs pantyhose sneakers
belt ribbon bow necktie backpack headphones wind floating_hair petals light_particles"""
TAGS = _TAG_TEXT.split()


def _encode(size: tuple[int, int], fmt: str, variant: int) -> bytes:
    from PIL import Image, ImageDraw

    w, h = size
    rng = random.Random(f"{size}-{fmt}-{variant}")
    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = rng.randrange(x0, w + 1), rng.randrange(y0, h + 1)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    if variant == VARIANTS - 1:
        # Photo-like entropy: these files outgrow one 4 KiB read (most are 5-40 KiB), so a
        # scan also takes the paths that real, larger images take (e.g. a separate tail read).
        noise = Image.frombytes("RGB", size, rng.randbytes(w * h * 3))
        im = Image.blend(im, noise, 0.5)
    buf = io.BytesIO()
    options = {"quality": 85} if fmt in ("JPEG", "WEBP") else {}
    im.save(buf, fmt, **options)
    return buf.getvalue()


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` uneven (0.5x..1.5x of the mean) but deterministic counts."""
    weights = [0.5 + rng.random() for _ in range(parts)]
    counts = [int(total * w / sum(weights)) for w in weights]
    for i in range(total - sum(counts)):
        counts[i % parts] += 1
    return counts


def _caption(rng: random.Random, concept: str) -> str:
    return ", ".join([concept, *rng.sample(TAGS, 19)]) + "\n"


def folder_names(folders: int) -> list[str]:
    return [f"{REPEATS[i % len(REPEATS)]}_concept_{i:02d}" for i in range(folders)]


def make_dataset(dir: Path | str, images: int = 10000, folders: int = 8, *,
                 overwrite: bool = False) -> Path:
    """Write the dataset into `dir` (created; must be empty unless overwrite=True)."""
    if images < 0 or folders < 1:
        raise ValueError("need images >= 0 and folders >= 1")
    root = Path(dir)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty (use --force to replace it)")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)

    rng = random.Random(SEED)
    blobs = {(size, fmt, v): _encode(size, fmt, v)
             for size in SIZES for fmt in FORMATS for v in range(VARIANTS)}
    sizes, size_w = list(SIZES), list(SIZES.values())
    fmts, fmt_w = list(FORMATS), [w for _, w in FORMATS.values()]

    n = 0
    for name, count in zip(folder_names(folders), _split(images, folders, rng), strict=True):
        folder = root / name
        folder.mkdir()
        concept = name.split("_", 1)[1]
        for _ in range(count):
            size = rng.choices(sizes, size_w)[0]
            fmt = rng.choices(fmts, fmt_w)[0]
            data = blobs[(size, fmt, rng.randrange(VARIANTS))]
            stem = f"img_{n:05d}"
            (folder / (stem + FORMATS[fmt][0])).write_bytes(data)
            (folder / (stem + ".txt")).write_text(_caption(rng, concept), "utf-8")
            n += 1
    stamp = {"version": GENERATOR_VERSION, "images": images, "folders": folders}
    (root / STAMP).write_text(json.dumps(stamp), "utf-8")
    return root


def dataset_matches(dir: Path | str, images: int, folders: int) -> bool:
    """True if `dir` holds exactly what make_dataset(dir, images, folders) writes."""
    root = Path(dir)
    try:
        stamp = json.loads((root / STAMP).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if stamp != {"version": GENERATOR_VERSION, "images": images, "folders": folders}:
        return False
    names = folder_names(folders)
    present = sorted(e.name for e in os.scandir(root) if not e.name.startswith("."))
    if present != sorted(names):
        return False
    n_img = n_cap = 0
    for name in names:
        with os.scandir(root / name) as it:
            for e in it:
                ext = os.path.splitext(e.name)[1]
                n_img += ext in IMAGE_EXTS
                n_cap += ext == ".txt"
    return n_img == images and n_cap == images


def ensure_dataset(dir: Path | str, images: int = 10000, folders: int = 8) -> tuple[Path, bool]:
    """(root, built): reuse `dir` if it already matches, else (re)build it."""
    if dataset_matches(dir, images, folders):
        return Path(dir), False
    return make_dataset(dir, images, folders, overwrite=True), True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--folders", type=int, default=8)
    p.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    args = p.parse_args(argv)
    try:
        root = make_dataset(args.dir, args.images, args.folders, overwrite=args.force)
    except (FileExistsError, ValueError) as exc:
        print(f"make_dataset: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.images} images in {args.folders} folders to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
