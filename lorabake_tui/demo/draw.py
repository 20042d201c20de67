"""A small, procedurally drawn demo dataset for trying the workbench without real data.

Everything here is drawn with a handful of Pillow primitives, so the demo needs no network
and no extra packages. The output is a kohya sd-scripts training root holding a made-up
character ("mira") in three outfits, plus a set of deliberate problems that the dataset
checks are expected to find: a folder kohya skips, a GIF kohya cannot read, an image
without a caption, two images sharing one caption, and noisy auto-tagger captions.

Generation is deterministic: one ``random.Random(seed)`` drives every decision, and files
are written with fixed encoder options and no metadata, so the same seed always gives
byte-identical files.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["DEMO_CHARACTER", "build_demo"]

DEMO_CHARACTER = "mira"
"""Trigger word and character tag used at the start of every demo caption."""

# (folder name, outfit key, number of image files). "misc" deliberately lacks the
# "<repeats>_" prefix, so kohya would silently ignore it.
_FOLDERS: tuple[tuple[str, str, int], ...] = (
    ("10_mira_uniform", "uniform", 40),
    ("10_mira_casual", "casual", 18),
    ("10_mira_swimsuit", "swimsuit", 6),
    ("misc", "misc", 8),
)
_OUTFITS = ("uniform", "casual", "swimsuit")
_SHARED_STEM = "shared_pose"

# Image sizes, each with how many of the 72 images get it (7 low-res ones, about 10%).
_SIZE_POOL: tuple[tuple[tuple[int, int], int], ...] = (
    ((512, 768), 22),
    ((768, 512), 14),
    ((640, 640), 10),
    ((512, 512), 13),
    ((960, 540), 6),
    ((180, 240), 4),
    ((200, 200), 3),
)
# File types for every image except the shared-stem pair and the single GIF (69 images).
_EXT_POOL: tuple[tuple[str, int], ...] = ((".png", 53), (".jpg", 11), (".webp", 5))

_OUTFIT_TAGS = {
    "uniform": ["school uniform", "serafuku", "pleated skirt", "red neckerchief"],
    "casual": ["hoodie", "denim shorts", "sneakers"],
    "swimsuit": ["one-piece swimsuit", "beach", "ocean"],
}
_BACKGROUND_WEIGHTS = {
    "uniform": (("indoors", 45), ("outdoors", 35), ("plain", 20)),
    "casual": (("outdoors", 55), ("indoors", 30), ("plain", 15)),
    "swimsuit": (("beach", 100),),
}
_FRAMING_WEIGHTS = (("full", 40), ("upper", 35), ("portrait", 25))

# What a tagger that has gone off the rails spits out; used for the one runaway caption.
# fmt: off
_JUNK_TAGS = (
    "1girl", "solo", "long hair", "school uniform", "serafuku", "skirt", "multiple girls",
    "1boy", "male focus", "text", "english text", "watermark", "signature", "blurry",
    "jpeg artifacts", "monochrome", "greyscale", "comic", "translation request",
    "artist name", "4koma", "speech bubble", "chibi", "multiple views", "reference sheet",
    "animal ears", "cat ears", "tail", "wings", "mecha", "robot", "weapon", "sword",
    "food", "fruit", "no humans", "scenery", "building", "car", "highres",
)
# fmt: on

_README = """\
lorabake demo dataset (seed {seed}): a made-up character "{char}" drawn from simple shapes,
laid out as a kohya sd-scripts training root, one folder per concept, all at 10 repeats and
deliberately uneven (uniform 40, casual 18, swimsuit 6 images). Planted flaws for the checks:
"misc" has no repeat prefix (kohya skips it) and holds a GIF kohya cannot read; one casual image
has no caption; shared_pose.png and shared_pose.jpg share one caption; captions carry tagger
noise (synonyms, underscores, meme and rating tags, one runaway caption of 80+ tags).
"""

Color = tuple[int, int, int]

_SKIN: Color = (255, 226, 208)
_SKIN_SHADE: Color = (232, 190, 172)
_LINE: Color = (74, 62, 84)
_EYE: Color = (52, 112, 214)
_EYE_DARK: Color = (24, 46, 112)
_WHITE: Color = (250, 250, 252)
_GOLD: Color = (230, 192, 74)
_GEM: Color = (96, 206, 232)
_MOUTH: Color = (196, 84, 96)


@dataclass(frozen=True)
class _Spec:
    """Everything needed to draw one image."""

    size: tuple[int, int]
    outfit: str
    framing: str  # "full", "upper" or "portrait"
    sitting: bool
    arms: str  # "down", "wave" or "hips"
    background: str  # "indoors", "outdoors", "beach" or "plain"
    circlet: bool
    smile: bool
    open_mouth: bool
    gaze: float  # horizontal iris offset; 0 means looking at the viewer
    shift: float  # horizontal placement, -1 .. 1
    hair_len: float  # how far the back hair falls, in head radii below the head centre
    hair: Color
    hoodie: Color
    bg_a: Color
    bg_b: Color
    detail: float  # 0 .. 1, places windows, clouds and similar background bits


@dataclass
class _Item:
    folder: str
    stem: str
    ext: str
    spec: _Spec


def build_demo(dest: Path, *, seed: int = 0) -> Path:
    """Create the demo training root at `dest` and return `dest`.

    `dest` must not exist yet, or be an empty directory; anything else raises
    FileExistsError and leaves it untouched. The same `seed` always produces the
    same bytes in every file.
    """
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise FileExistsError(f"cannot build the demo dataset at {dest}: it is a file")
        if any(dest.iterdir()):
            raise FileExistsError(
                f"cannot build the demo dataset at {dest}: the directory is not empty "
                "(choose a new or empty folder)"
            )
        created = False
    else:
        created = True

    items, captions = _plan(random.Random(seed))
    if created:
        dest.mkdir(parents=True)  # fails on a race instead of writing into someone's folder
    try:
        for folder, _outfit, _count in _FOLDERS:
            (dest / folder).mkdir()
        last: tuple[_Spec, Image.Image] | None = None
        for item in items:
            # The shared-stem pair is one drawing saved twice; the two are planned in a row.
            if last is None or last[0] is not item.spec:
                last = (item.spec, _render(item.spec))
            _save(last[1], dest / item.folder / f"{item.stem}{item.ext}")
        for (folder, stem), tags in captions.items():
            text = ", ".join(tags) + "\n"
            (dest / folder / f"{stem}.txt").write_text(text, encoding="utf-8", newline="\n")
        readme = _README.format(seed=seed, char=DEMO_CHARACTER)
        (dest / "README.txt").write_text(readme, encoding="utf-8", newline="\n")
    except BaseException:
        # Do not leave a half-written demo behind; dest was empty or absent before.
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in list(dest.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return dest


# --------------------------------------------------------------------------- planning


def _pool(rng: random.Random, entries: Sequence[tuple[object, int]]) -> list:
    out = [value for value, count in entries for _ in range(count)]
    rng.shuffle(out)
    return out


def _weighted(rng: random.Random, options: Sequence[tuple[str, int]]) -> str:
    values = [value for value, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(values, weights=weights)[0]


def _jitter(rng: random.Random, color: Color, amount: int) -> Color:
    r, g, b = (max(0, min(255, c + rng.randint(-amount, amount))) for c in color)
    return (r, g, b)


def _background_colors(rng: random.Random, background: str) -> tuple[Color, Color]:
    if background == "indoors":
        return _jitter(rng, (238, 226, 204), 10), _jitter(rng, (214, 196, 170), 10)
    if background == "outdoors":
        return _jitter(rng, (120, 176, 236), 14), _jitter(rng, (214, 234, 250), 8)
    if background == "beach":
        return _jitter(rng, (96, 160, 232), 12), _jitter(rng, (200, 226, 248), 8)
    plain = rng.choice([(252, 252, 252), (252, 252, 252), (232, 232, 236)])
    return plain, plain


def _make_spec(rng: random.Random, outfit: str, size: tuple[int, int]) -> _Spec:
    framing = _weighted(rng, _FRAMING_WEIGHTS)
    background = _weighted(rng, _BACKGROUND_WEIGHTS[outfit])
    bg_a, bg_b = _background_colors(rng, background)
    smile, open_mouth = rng.random() < 0.6, rng.random() < 0.4
    return _Spec(
        size=size,
        outfit=outfit,
        framing=framing,
        sitting=framing == "full" and background != "beach" and rng.random() < 0.3,
        arms=_weighted(rng, (("down", 50), ("wave", 25), ("hips", 25))),
        background=background,
        circlet=rng.random() < 0.4,
        smile=smile,
        open_mouth=smile and open_mouth,  # an open mouth only ever comes with a smile
        gaze=rng.choice([0.0, 0.0, 0.0, -0.07, 0.07]),
        shift=rng.uniform(-0.8, 0.8),
        hair_len=rng.uniform(4.4, 6.6),
        hair=_jitter(rng, (208, 220, 238), 8),
        hoodie=rng.choice([(150, 124, 204), (150, 124, 204), (126, 134, 146)]),
        bg_a=bg_a,
        bg_b=bg_b,
        detail=rng.random(),
    )


def _plan(rng: random.Random) -> tuple[list[_Item], dict[tuple[str, str], list[str]]]:
    """Decide every file name, drawing and caption, in a fixed order."""
    total = sum(count for _, _, count in _FOLDERS)
    sizes = _pool(rng, _SIZE_POOL)
    assert len(sizes) == total
    exts = _pool(rng, _EXT_POOL)
    assert len(exts) == total - 3  # shared pair and GIF have fixed types

    gif_index = rng.randrange(8)
    items: list[_Item] = []
    for folder, kind, count in _FOLDERS:
        regular = count - 2 if kind == "uniform" else count
        for n in range(regular):
            outfit = rng.choice(_OUTFITS) if kind == "misc" else kind
            spec = _make_spec(rng, outfit, sizes.pop())
            ext = ".gif" if kind == "misc" and n == gif_index else exts.pop()
            items.append(_Item(folder, f"{kind}_{n + 1:03d}", ext, spec))
        if kind == "uniform":
            # The same picture saved twice in two formats: one caption file for both.
            spec = _make_spec(rng, "uniform", sizes.pop())
            items.append(_Item(folder, _SHARED_STEM, ".png", spec))
            items.append(_Item(folder, _SHARED_STEM, ".jpg", spec))
            sizes.pop()  # keep the pool aligned with the image count
    assert not sizes and not exts

    uncaptioned = rng.choice([i for i in items if i.folder == "10_mira_casual"])
    runaway = rng.choice(
        [i for i in items if i.folder == "10_mira_uniform" and i.stem != _SHARED_STEM]
    )

    # One entry per caption file, in a stable order.
    captioned: dict[tuple[str, str], _Item] = {}
    for item in items:
        if item is not uncaptioned:
            captioned.setdefault((item.folder, item.stem), item)
    normal = [key for key in captioned if captioned[key] is not runaway]

    # Make sure the circlet shows up at least twice so both synonyms can be planted.
    with_circlet = [key for key in normal if captioned[key].spec.circlet]
    for key in normal:
        if len(with_circlet) >= 2:
            break
        if key not in with_circlet:
            _set_spec(items, captioned[key], replace(captioned[key].spec, circlet=True))
            with_circlet.append(key)
    rng.shuffle(with_circlet)
    circlet_word = {key: rng.choice(["circlet", "tiara"]) for key in with_circlet}
    circlet_word[with_circlet[0]] = "circlet"
    circlet_word[with_circlet[1]] = "tiara"

    uncensored = set(rng.sample(normal, 4))
    memes = rng.sample(normal, 2)
    underscored = set(rng.sample(normal, 5))
    parenthesised = set(rng.sample(normal, 8))

    captions: dict[tuple[str, str], list[str]] = {}
    for key, item in captioned.items():
        if item is runaway:
            captions[key] = _runaway_caption(rng)
            continue
        extra: list[str] = []
        if key in uncensored:
            extra.append("uncensored")
        if key == memes[0]:
            extra.append("meme")
        elif key == memes[1]:
            extra += ["wojak (meme)", "meme"]
        captions[key] = _caption(
            rng,
            item.spec,
            circlet=circlet_word.get(key),
            underscores=key in underscored,
            character_tag=key in parenthesised,
            extra=extra,
        )
    return items, captions


def _set_spec(items: list[_Item], target: _Item, spec: _Spec) -> None:
    """Swap a spec everywhere it is used (the shared pair uses one spec twice)."""
    old = target.spec
    for item in items:
        if item.spec is old:
            item.spec = spec


def _caption(
    rng: random.Random,
    spec: _Spec,
    *,
    circlet: str | None,
    underscores: bool,
    character_tag: bool,
    extra: list[str],
) -> list[str]:
    head = [DEMO_CHARACTER]
    if character_tag:
        head.append(f"{DEMO_CHARACTER} (project demo)")
    head += ["1girl", "solo"]

    looks = [
        rng.choice(["long hair", "long hair", "very long hair"]),
        "grey hair" if rng.random() < 0.12 else "silver hair",
        "blue eyes",
    ]
    if rng.random() < 0.2:
        looks.append("light blue hair")
    if underscores:
        looks = [tag.replace(" ", "_") for tag in looks]

    body: list[str] = list(_OUTFIT_TAGS[spec.outfit])
    if spec.outfit == "uniform" and rng.random() < 0.5:
        body.append("kneehighs")
    if spec.outfit == "casual" and rng.random() < 0.4:
        body.append("hood down")
    if spec.outfit == "swimsuit" and rng.random() < 0.5:
        body.append("bare shoulders")
    if circlet:
        body.append(circlet)

    body.append({"full": "full body", "upper": "upper body", "portrait": "portrait"}[spec.framing])
    if spec.framing == "full":
        body.append("sitting" if spec.sitting else "standing")
    elif spec.framing == "upper" and rng.random() < 0.4:
        body.append("standing")
    if spec.arms == "wave":
        body += ["waving", "hand up"]
    elif spec.arms == "hips":
        body.append("hands on hips")
    if spec.smile:
        body.append("smile")
    else:
        body.append(rng.choice(["closed mouth", "expressionless"]))
    if spec.open_mouth:
        body.append("open mouth")
    body.append("looking at viewer" if spec.gaze == 0 else "looking to the side")

    if spec.background == "indoors":
        body.append("indoors")
        if spec.outfit == "uniform" and rng.random() < 0.5:
            body.append("classroom")
        body.append("window")
    elif spec.background == "outdoors":
        body += ["outdoors", "sky", "day"]
        if rng.random() < 0.5:
            body.append("cloud")
    elif spec.background == "beach":
        body += ["outdoors", "sky", "day"]
    else:
        grey = spec.bg_a[0] < 240
        body += ["simple background", "grey background" if grey else "white background"]

    rest = looks + body
    # Taggers order by confidence, not by topic: lightly mix the tail.
    for i in range(len(rest) - 1, 0, -1):
        if rng.random() < 0.35:
            j = rng.randint(max(0, i - 3), i)
            rest[i], rest[j] = rest[j], rest[i]
    out = head + rest + extra
    # A few duplicates from the outfit/location tags (beach) are possible; drop them.
    return list(dict.fromkeys(out))


def _runaway_caption(rng: random.Random) -> list[str]:
    """A broken tagger run: far too many tags, contradictory and repeated."""
    return [DEMO_CHARACTER] + [rng.choice(_JUNK_TAGS) for _ in range(95)]


# --------------------------------------------------------------------------- drawing


class _Pen:
    """Draws in figure units: the head is a circle of radius 1 centred on (0, 0)."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, scale: float) -> None:
        self.draw = draw
        self.cx = cx
        self.cy = cy
        self.s = scale
        self.lw = max(1, round(scale * 0.05))

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.s, self.cy + y * self.s)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [*self.pt(x0, y0), *self.pt(x1, y1)]

    def width(self, w: float) -> int:
        return max(1, round(w * self.s))

    def poly(self, pts: Sequence[tuple[float, float]], fill: Color, outline: bool = True) -> None:
        xy = [self.pt(x, y) for x, y in pts]
        self.draw.polygon(
            xy, fill=fill, outline=_LINE if outline else None, width=self.lw if outline else 1
        )

    def oval(
        self, x0: float, y0: float, x1: float, y1: float, fill: Color, outline: bool = True
    ) -> None:
        self.draw.ellipse(
            self.box(x0, y0, x1, y1), fill=fill, outline=_LINE if outline else None, width=self.lw
        )

    def line(self, pts: Sequence[tuple[float, float]], fill: Color, w: float) -> None:
        self.draw.line(
            [self.pt(x, y) for x, y in pts], fill=fill, width=self.width(w), joint="curve"
        )

    def limb(self, pts: Sequence[tuple[float, float]], fill: Color, w: float) -> None:
        """A thick line with an outline, drawn as a wider dark line under a fill line."""
        self.draw.line(
            [self.pt(x, y) for x, y in pts],
            fill=_LINE,
            width=self.width(w) + 2 * self.lw,
            joint="curve",
        )
        self.line(pts, fill, w)


def _vertical_gradient(size: tuple[int, int], top: Color, bottom: Color) -> Image.Image:
    w, h = size
    column = Image.new("RGB", (1, h))
    last = max(1, h - 1)
    column.putdata(
        [tuple(a + (b - a) * y // last for a, b in zip(top, bottom, strict=True)) for y in range(h)]
    )
    return column.resize(size, Image.Resampling.NEAREST)


def _darker(color: Color, amount: float = 0.8) -> Color:
    return (int(color[0] * amount), int(color[1] * amount), int(color[2] * amount))


def _draw_background(spec: _Spec) -> Image.Image:
    w, h = spec.size
    if spec.background == "plain":
        return Image.new("RGB", spec.size, spec.bg_a)
    image = _vertical_gradient(spec.size, spec.bg_a, spec.bg_b)
    draw = ImageDraw.Draw(image)
    d = spec.detail
    if spec.background == "indoors":
        floor = int(h * 0.74)
        draw.rectangle([0, floor, w, h], fill=(168, 124, 92))
        draw.line([0, floor, w, floor], fill=(120, 86, 64), width=max(1, h // 150))
        wx = int(w * (0.05 + 0.55 * d))
        ww, wy, wh = int(w * 0.36), int(h * 0.12), int(h * 0.36)
        draw.rectangle(
            [wx, wy, wx + ww, wy + wh],
            fill=(190, 222, 248),
            outline=(150, 130, 110),
            width=max(2, w // 90),
        )
        draw.line(
            [wx + ww // 2, wy, wx + ww // 2, wy + wh], fill=(150, 130, 110), width=max(1, w // 150)
        )
    elif spec.background == "outdoors":
        ground = int(h * 0.72)
        draw.rectangle([0, ground, w, h], fill=(118, 178, 96))
        for k in range(2):
            cx = w * ((d + 0.45 * k) % 1.0)
            cy = h * (0.12 + 0.1 * k)
            rx, ry = w * 0.12, h * 0.05
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(250, 250, 252))
    elif spec.background == "beach":
        sea, sand = int(h * 0.55), int(h * 0.7)
        draw.rectangle([0, sea, w, sand], fill=(40, 118, 196))
        draw.line([0, sea, w, sea], fill=(200, 230, 250), width=max(1, h // 200))
        draw.rectangle([0, sand, w, h], fill=(238, 214, 164))
        sx, r = w * (0.1 + 0.8 * d), h * 0.06
        draw.ellipse([sx - r, h * 0.1 - r, sx + r, h * 0.1 + r], fill=(255, 244, 190))
    return image


def _framing(spec: _Spec) -> tuple[float, float, float]:
    """Return (scale, x of the head centre, y of the head centre) in pixels."""
    w, h = spec.size
    top = 1.4  # hair reaches this far above the head centre
    if spec.framing == "full":
        span, margin, half_width = 10.9, 0.06, 2.6
    elif spec.framing == "upper":
        span, margin, half_width = 6.4, 0.06, 2.5
    else:
        span, margin, half_width = 3.9, 0.08, 1.5
    scale = min(h * (1 - 1.6 * margin) / span, w * 0.94 / (2 * half_width))
    cy = h * margin + top * scale
    free = max(0.0, w - 2 * half_width * scale)
    cx = w / 2 + spec.shift * free / 2
    return scale, cx, cy


def _render(spec: _Spec) -> Image.Image:
    image = _draw_background(spec)
    draw = ImageDraw.Draw(image)
    scale, cx, cy = _framing(spec)
    pen = _Pen(draw, cx, cy, scale)
    _draw_figure(pen, spec)
    return image


def _draw_figure(p: _Pen, spec: _Spec) -> None:
    hair, hair_dark = spec.hair, _darker(spec.hair, 0.82)
    outfit = spec.outfit

    # Long hair falling behind the body.
    p.oval(-1.3, -1.4, 1.3, 1.2, hair)
    p.poly(
        [
            (-1.3, -0.1),
            (1.3, -0.1),
            (1.55, spec.hair_len),
            (0.0, spec.hair_len + 0.35),
            (-1.55, spec.hair_len),
        ],
        hair,
    )

    if spec.sitting:
        p.poly([(-2.8, 4.9), (2.8, 4.9), (2.8, 5.5), (-2.8, 5.5)], (150, 104, 70))
        p.line([(-2.5, 5.5), (-2.5, 8.0)], (120, 84, 56), 0.25)
        p.line([(2.5, 5.5), (2.5, 8.0)], (120, 84, 56), 0.25)

    # Legs and shoes.
    hip_y, foot_y = (5.2, 7.8) if spec.sitting else (4.6, 8.9)
    for side in (-1, 1):
        p.limb([(0.45 * side, hip_y), (0.55 * side, foot_y)], _SKIN, 0.55)
        if outfit == "uniform":
            p.limb([(0.53 * side, foot_y - 1.9), (0.55 * side, foot_y)], (36, 36, 48), 0.56)
            shoe = (102, 62, 42)
        elif outfit == "casual":
            shoe = (246, 246, 246)
        else:
            shoe = _SKIN_SHADE
        p.oval(0.55 * side - 0.38, foot_y - 0.1, 0.55 * side + 0.38, foot_y + 0.35, shoe)

    # Torso and lower garment.
    torso = [(-1.3, 1.45), (1.3, 1.45), (0.95, 4.1), (-0.95, 4.1)]
    if outfit == "uniform":
        p.poly([(-0.95, 3.9), (0.95, 3.9), (1.7, 5.7), (-1.7, 5.7)], (42, 54, 104))
        for x in (-0.9, -0.3, 0.3, 0.9):
            p.line([(x * 0.6, 4.0), (x, 5.65)], (28, 36, 74), 0.05)
        p.poly(torso, (246, 246, 250))
        p.poly([(-1.3, 1.45), (1.3, 1.45), (0.95, 2.3), (0.0, 2.75), (-0.95, 2.3)], (36, 48, 96))
        p.line([(-1.05, 1.75), (0.0, 2.45), (1.05, 1.75)], _WHITE, 0.07)
        p.poly([(-0.4, 2.35), (0.4, 2.35), (0.0, 3.15)], (210, 42, 52))
        sleeve = (246, 246, 250)
    elif outfit == "casual":
        p.poly(
            [
                (-1.0, 3.9),
                (1.0, 3.9),
                (1.15, 5.1),
                (0.05, 5.1),
                (0.0, 4.7),
                (-0.05, 5.1),
                (-1.15, 5.1),
            ],
            (72, 104, 164),
        )
        p.oval(-1.1, 1.0, 1.1, 2.0, _darker(spec.hoodie, 0.85))
        p.poly([(-1.35, 1.45), (1.35, 1.45), (1.05, 4.2), (-1.05, 4.2)], spec.hoodie)
        p.poly([(-0.6, 3.2), (0.6, 3.2), (0.75, 3.9), (-0.75, 3.9)], _darker(spec.hoodie, 0.9))
        p.line([(-0.25, 1.6), (-0.3, 2.6)], _WHITE, 0.06)
        p.line([(0.25, 1.6), (0.3, 2.6)], _WHITE, 0.06)
        sleeve = spec.hoodie
    else:
        p.poly(torso, _SKIN)
        suit = (30, 42, 92)
        p.poly(
            [(-0.9, 2.0), (0.9, 2.0), (0.95, 4.0), (0.35, 4.75), (-0.35, 4.75), (-0.95, 4.0)], suit
        )
        p.line([(-0.7, 2.05), (-0.9, 1.45)], suit, 0.14)
        p.line([(0.7, 2.05), (0.9, 1.45)], suit, 0.14)
        sleeve = _SKIN

    # Arms.
    arms = {
        "down": ([(1.25, 1.65), (1.55, 2.9), (1.65, 4.2)], (1.65, 4.35)),
        "wave": ([(1.25, 1.65), (2.05, 1.3), (2.25, -0.3)], (2.25, -0.5)),
        "hips": ([(1.25, 1.65), (2.05, 2.9), (1.05, 3.85)], (1.0, 3.9)),
    }
    for side in (-1, 1):
        key = spec.arms if side == 1 else ("hips" if spec.arms == "hips" else "down")
        pts, hand = arms[key]
        p.limb([(x * side, y) for x, y in pts], sleeve, 0.5)
        hx, hy = hand[0] * side, hand[1]
        p.oval(hx - 0.27, hy - 0.27, hx + 0.27, hy + 0.27, _SKIN)

    # Neck, head and face.
    p.poly([(-0.3, 0.7), (0.3, 0.7), (0.32, 1.5), (-0.32, 1.5)], _SKIN_SHADE, outline=False)
    p.oval(-1.0, -1.0, 1.0, 1.05, _SKIN)
    for side in (-1, 1):
        ex = 0.42 * side
        p.oval(ex - 0.23, -0.05, ex + 0.23, 0.5, _WHITE, outline=False)
        ix = ex + spec.gaze
        p.oval(ix - 0.18, 0.0, ix + 0.18, 0.5, _EYE, outline=False)
        p.oval(ix - 0.08, 0.15, ix + 0.08, 0.4, _EYE_DARK, outline=False)
        p.oval(ix - 0.1, 0.06, ix + 0.0, 0.18, _WHITE, outline=False)
        p.line([(ex - 0.27, -0.02), (ex + 0.27, -0.06 if side > 0 else 0.02)], _LINE, 0.07)
        p.oval(
            ex + 0.05 * side - 0.15,
            0.55,
            ex + 0.05 * side + 0.15,
            0.66,
            (250, 190, 190),
            outline=False,
        )
    if spec.open_mouth:
        p.draw.chord(p.box(-0.17, 0.5, 0.17, 0.82), 0, 180, fill=_MOUTH, outline=_LINE)
    elif spec.smile:
        p.draw.arc(p.box(-0.18, 0.48, 0.18, 0.72), 20, 160, fill=_LINE, width=p.lw)
    else:
        p.line([(-0.1, 0.7), (0.1, 0.7)], _LINE, 0.04)

    # Fringe and side locks over the face.
    p.draw.pieslice(p.box(-1.15, -1.25, 1.15, 0.95), 180, 360, fill=hair, outline=_LINE, width=p.lw)
    for x0 in (-1.0, -0.45, 0.1, 0.6):
        p.poly([(x0, -0.2), (x0 + 0.45, -0.2), (x0 + 0.22, 0.12)], hair, outline=False)
    for side in (-1, 1):
        p.poly(
            [(1.12 * side, -0.25), (0.82 * side, -0.1), (0.95 * side, 2.3), (1.22 * side, 2.0)],
            hair,
        )
    p.line([(-0.5, -0.85), (-0.2, -0.45)], hair_dark, 0.05)
    p.line([(0.4, -0.9), (0.15, -0.5)], hair_dark, 0.05)

    if spec.circlet:
        p.draw.arc(p.box(-1.08, -0.98, 1.08, 0.55), 200, 340, fill=_GOLD, width=p.width(0.12))
        p.oval(-0.13, -0.93, 0.13, -0.65, _GEM)


def _save(image: Image.Image, path: Path) -> None:
    """Write with fixed encoder settings and no metadata, so output bytes are repeatable."""
    ext = path.suffix.lower()
    if ext == ".png":
        image.save(path, format="PNG", compress_level=1)
    elif ext == ".jpg":
        image.save(path, format="JPEG", quality=90)
    elif ext == ".webp":
        image.save(path, format="WEBP", quality=85, method=2)
    elif ext == ".gif":
        paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        paletted.save(path, format="GIF")
    else:  # pragma: no cover - the plan only uses the types above
        raise ValueError(f"unsupported demo image type: {ext}")
