"""Drawing a grid with one engine: every weight-0 cell (the base model) once per prompt and
seed, copied to every row; then each file at each weight, switching the LoRA in place (no
reload). After each image the cell is saved, the manifest rewritten and a `render` event
written, so a stopped grid or a watching UI always has what was drawn so far.

The engine is anything with `set_lora(path, weight)` and `render(prompt, **settings)`
returning `.image` (trainer/render/engine.py's RenderEngine; tests may give a small stand-in).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL.PngImagePlugin import PngInfo

from ...core.base.atomic import atomic_write_bytes
from ...core.eval.compose import compose_grid
from ...core.eval.layout import Cell, grid_cells, grid_folder, weight_text
from ...core.eval.manifest import write_grid_manifest
from ...core.eval.request import GridRequest, RenderSettings
from ...core.run import exit_codes
from ...core.run.event_writer import EventWriter
from ...core.run.events import EndStatus, EventType


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    message: str


def infotext(prompt: str, r: RenderSettings, seed: int, *, lora: str | None = None,
             weight: float = 0.0, base: str = "") -> str:
    """A1111's `parameters` text, so a cell dropped into its PNG Info tab reads back."""
    if lora and weight:
        prompt = f"{prompt} <lora:{Path(lora).stem}:{weight_text(weight)}>"
    lines = [prompt]
    if r.negative:
        lines.append(f"Negative prompt: {r.negative}")
    lines.append(f"Steps: {r.steps}, Sampler: {r.sampler}, CFG scale: {r.cfg:g}, Seed: {seed}, "
                 f"Size: {r.width}x{r.height}, Model: {Path(base).stem or base}, "
                 f"Clip skip: {r.clip_skip}")
    return "\n".join(lines)


def png_bytes(image, text: str | None = None) -> bytes:
    info = None
    if text:
        info = PngInfo()
        info.add_text("parameters", text)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def render_settings(r: RenderSettings) -> dict:
    return {"negative": r.negative, "steps": r.steps, "cfg": r.cfg, "width": r.width,
            "height": r.height, "sampler": r.sampler}


def run_grid(engine, req: GridRequest, events: EventWriter, stop: Callable[[], bool]) -> Outcome:
    cells = grid_cells(req)
    folder = grid_folder(req.out)
    folder.mkdir(parents=True, exist_ok=True)
    events.emit(EventType.START, total_steps=len(cells), run_dir=str(folder))
    done: list[Cell] = []
    started = time.monotonic()
    settings = render_settings(req.render)

    def finish_cell(cell: Cell, data: bytes) -> None:
        atomic_write_bytes(cell.path, data)
        done.append(cell)
        write_grid_manifest(req, done, complete=False)
        spent = time.monotonic() - started
        each = spent / len(done)
        events.emit(EventType.RENDER, done=len(done), total=len(cells), path=str(cell.path),
                    label=f"{cell.lora.label} · weight {weight_text(cell.weight)} · seed "
                          f"{cell.seed}", s_per_image=round(each, 3),
                    eta_s=round(each * (len(cells) - len(done)), 1))

    # the base model's cells: one image per prompt and seed, whatever the row
    base_cells = [c for c in cells if c.weight == 0]
    first_of: dict[tuple[int, int], bytes] = {}
    if base_cells:
        engine.set_lora(None, 0.0)
    for cell in base_cells:
        if stop():
            return _stopped(req, cells, done, events)
        key = (cell.prompt_index, cell.seed)
        if key in first_of:
            finish_cell(cell, first_of[key])
            continue
        result = engine.render(cell.prompt, seed=cell.seed, **settings)
        first_of[key] = png_bytes(result.image, infotext(cell.prompt, req.render, cell.seed,
                                                         base=req.base))
        finish_cell(cell, first_of[key])
    for row, lora in enumerate(req.loras):
        for weight in (w for w in req.weights if w != 0):
            if stop():
                return _stopped(req, cells, done, events)
            engine.set_lora(Path(lora.path), weight)
            for cell in (c for c in cells if c.row == row and c.weight == weight):
                if stop():
                    return _stopped(req, cells, done, events)
                result = engine.render(cell.prompt, seed=cell.seed, **settings)
                text = infotext(cell.prompt, req.render, cell.seed, lora=lora.path,
                                weight=weight, base=req.base)
                finish_cell(cell, png_bytes(result.image, text))
    return _end(req, cells, done, events, stopped=False,
                message=f"{len(done)} images in {time.monotonic() - started:.1f} s: {req.out}")


def _stopped(req: GridRequest, cells: list[Cell], done: list[Cell],
             events: EventWriter) -> Outcome:
    """A stop between images: the grid shows what was drawn (grey for the rest)."""
    return _end(req, cells, done, events, stopped=True,
                message=f"stopped after {len(done)} of {len(cells)} images: {req.out}")


def _end(req: GridRequest, cells: list[Cell], done: list[Cell], events: EventWriter, *,
         stopped: bool, message: str) -> Outcome:
    """The grid image and the final manifest, then the end event."""
    atomic_write_bytes(Path(req.out), png_bytes(compose_grid(req, cells)))
    write_grid_manifest(req, done, complete=not stopped)
    code = exit_codes.STOPPED if stopped else exit_codes.DONE
    events.emit(EventType.END, status=EndStatus.STOPPED if stopped else EndStatus.DONE,
                message=message, exit_code=code)
    return Outcome(code, message)
