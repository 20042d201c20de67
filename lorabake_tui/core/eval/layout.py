"""Where a grid's or a probe's files go, by name, and the order of a grid's cells.

A grid asked for as `DIR/NAME.png` leaves `DIR/NAME.png` (the labelled grid), `DIR/NAME.json`
(the manifest) and the folder `DIR/NAME/`: every cell as a PNG, and the render job's own files
(request.json and the run-folder files of core/run/folder.py: events.jsonl, stdout.log,
exit_code). A probe asked for with `-o DIR` keeps everything in DIR, its manifest `probe.json`.
The Evaluate stage puts a run's grids in `RUN_DIR/grids/`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .request import GridRequest, LoraChoice, ProbeRequest

REQUEST_FILE = "request.json"
PROBE_MANIFEST = "probe.json"
GRIDS_DIR = "grids"  # in a run folder: the grids the Evaluate stage queued


@dataclass(frozen=True, slots=True)
class Cell:
    prompt_index: int
    prompt: str
    seed: int
    row: int
    lora: LoraChoice
    weight: float
    path: Path


def grid_folder(out: Path | str) -> Path:
    """The render folder of a grid: the cells and the job's files."""
    out = Path(out)
    return out.with_suffix("") if out.suffix else out.with_name(out.name + ".d")


def grid_manifest(out: Path | str) -> Path:
    return Path(out).with_suffix(".json")


def render_folder(req: GridRequest | ProbeRequest) -> Path:
    """Where the render job of `req` runs (its run folder, in the jobs' sense)."""
    return grid_folder(req.out) if isinstance(req, GridRequest) else Path(req.out_dir)


def weight_text(w: float) -> str:
    """0.7 -> `0.7`, 1.0 -> `1`: how labels and file names show a weight."""
    return f"{w:g}"


def row_tag(lora: LoraChoice) -> str:
    return f"e{lora.epoch:06d}" if lora.epoch is not None else "final"


def cell_name(prompt_index: int, seed: int, lora: LoraChoice, weight: float) -> str:
    return f"p{prompt_index}-s{seed}-{row_tag(lora)}-w{weight_text(weight)}.png"


def grid_cells(req: GridRequest) -> list[Cell]:
    """Every cell in drawing order: per prompt, per seed, per row (LoRA file), per weight.
    Weight 0 cells are the base model; the render process draws those once per prompt and
    seed and copies them to every row."""
    folder = grid_folder(req.out)
    return [Cell(pi, prompt, seed, row, lora, w, folder / cell_name(pi, seed, lora, w))
            for pi, prompt in enumerate(req.prompts)
            for seed in req.seeds
            for row, lora in enumerate(req.loras)
            for w in req.weights]


def new_grid_path(run_dir: Path | str, now: float | None = None) -> Path:
    """A fresh `RUN_DIR/grids/grid-YYYYmmdd-HHMMSS.png` for the Evaluate stage."""
    base = Path(run_dir) / GRIDS_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path, n = base / f"grid-{stamp}.png", 1
    while path.exists() or grid_folder(path).exists():
        n += 1
        path = base / f"grid-{stamp}-{n}.png"
    return path


# ---- probes -----------------------------------------------------------------------------
def probe_prompts(req: ProbeRequest) -> list[tuple[str, str]]:
    """(group, prompt) pairs a probe draws: the empty prompt (what the model draws for no
    word: the reference for diversity), the word alone, and the word with the subject tag."""
    groups = [("baseline", ""), ("word", req.word.strip())]
    if req.subject.strip():
        groups.append(("with-subject", f"{req.word.strip()}, {req.subject.strip()}"))
    return groups


def probe_image(out_dir: Path | str, group: str, seed: int) -> Path:
    return Path(out_dir) / f"{group}-s{seed}.png"
