"""The labelled grid image, laid out like A1111's X/Y plot: one block per prompt and seed
(titled with both), the weights across the top, one row per LoRA file labelled at the left.
A cell not drawn (a stopped grid) is a grey square, so the layout never shifts."""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .layout import Cell, weight_text
from .request import GridRequest

_BG = (255, 255, 255)
_INK = (20, 20, 20)
_MISSING = (200, 200, 200)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def compose_grid(req: GridRequest, cells: list[Cell]) -> Image.Image:
    """The grid of `cells` (grid_cells(req), drawn or not: a missing file is grey)."""
    w, h = req.render.width, req.render.height
    size = max(14, min(w, h) // 16)
    font, pad = _font(size), size // 2
    line = size + pad
    label_w = max(int(font.getlength(c.label)) for c in req.loras) + 2 * pad
    cols, rows = len(req.weights), len(req.loras)
    width = label_w + cols * w
    chars = max(20, int(width / (size * 0.55)))
    titles = [textwrap.wrap(f"{p}  ·  seed {s}", chars)[:3] or [""]
              for p in req.prompts for s in req.seeds]
    block_h = [len(t) * line + line + rows * h for t in titles]  # title, weights, rows
    img = Image.new("RGB", (width, sum(block_h) + pad), _BG)
    draw = ImageDraw.Draw(img)
    by_key = {(c.prompt_index, c.seed, c.row, c.weight): c for c in cells}
    y = 0
    blocks = [(pi, seed) for pi in range(len(req.prompts)) for seed in req.seeds]
    for b, (pi, seed) in enumerate(blocks):
        for text in titles[b]:
            draw.text((pad, y + pad // 2), text, fill=_INK, font=font)
            y += line
        for col, weight in enumerate(req.weights):
            text = f"weight {weight_text(weight)}"
            x = label_w + col * w + (w - int(font.getlength(text))) // 2
            draw.text((x, y + pad // 2), text, fill=_INK, font=font)
        y += line
        for row, lora in enumerate(req.loras):
            draw.text((pad, y + (h - size) // 2), lora.label, fill=_INK, font=font)
            for col, weight in enumerate(req.weights):
                cell = by_key.get((pi, seed, row, weight))
                box = (label_w + col * w, y)
                _paste(img, draw, cell.path if cell else None, box, (w, h))
            y += h
    return img


def _paste(img: Image.Image, draw: ImageDraw.ImageDraw, path: Path | None,
           box: tuple[int, int], size: tuple[int, int]) -> None:
    try:
        if path is None:
            raise FileNotFoundError
        with Image.open(path) as cell:
            cell = cell.convert("RGB")
            if cell.size != size:
                cell = cell.resize(size)
            img.paste(cell, box)
    except (OSError, ValueError):
        x, y = box
        draw.rectangle((x + 1, y + 1, x + size[0] - 2, y + size[1] - 2), fill=_MISSING)
