"""The manifests: `NAME.json` beside a grid and `probe.json` in a probe's folder. The render
process writes them (after each cell, so a stopped grid still shows what it drew); `lorabake
grid/probe --json` prints them and the Evaluate stage browses a grid through them.

Grid: {"kind": "grid", "grid": path, "complete": bool, "base", "run_dir", "render": {...},
"rows": [{"label", "epoch", "path"}], "weights": [w], "prompts": [p], "seeds": [s],
"cells": [{"epoch", "label", "weight", "prompt", "prompt_index", "seed", "row", "path"}]}
with only the cells drawn so far. Probe: {"kind": "probe", "word", "subject", "images":
[{"group", "prompt", "seed", "path"}], "diversity", "baseline_diversity", "ratio", "reading",
"tokens"}.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_write_text
from ..base.errors import LorabakeError
from .layout import Cell, grid_manifest
from .request import GridRequest


def cell_json(cell: Cell) -> dict[str, Any]:
    return {"epoch": cell.lora.epoch, "label": cell.lora.label, "weight": cell.weight,
            "prompt": cell.prompt, "prompt_index": cell.prompt_index, "seed": cell.seed,
            "row": cell.row, "path": str(cell.path)}


def grid_json(req: GridRequest, done: list[Cell], *, complete: bool) -> dict[str, Any]:
    return {"kind": "grid", "grid": str(Path(req.out)), "complete": complete,
            "base": req.base, "run_dir": req.run_dir, "render": asdict(req.render),
            "rows": [{"label": c.label, "epoch": c.epoch, "path": c.path} for c in req.loras],
            "weights": list(req.weights), "prompts": list(req.prompts),
            "seeds": list(req.seeds), "cells": [cell_json(c) for c in done]}


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def write_grid_manifest(req: GridRequest, done: list[Cell], *, complete: bool) -> Path:
    path = grid_manifest(req.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, grid_json(req, done, complete=complete))
    return path


@dataclass(frozen=True, slots=True)
class GridView:
    """A grid manifest as the Evaluate stage browses it: one block per (prompt, seed), rows
    are LoRA files, columns weights; `cell(block, row, col)` is a path or None (not drawn)."""

    path: Path
    data: dict[str, Any]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.data["rows"]

    @property
    def weights(self) -> list[float]:
        return self.data["weights"]

    @property
    def blocks(self) -> list[tuple[int, str, int]]:
        """(prompt index, prompt, seed) of each block, in order."""
        return [(i, p, s) for i, p in enumerate(self.data["prompts"])
                for s in self.data["seeds"]]

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    @property
    def grid_image(self) -> Path:
        return Path(self.data["grid"])

    def cell(self, block: int, row: int, col: int) -> dict[str, Any] | None:
        pi, _, seed = self.blocks[block]
        weight = self.weights[col]
        for c in self.data["cells"]:
            if c["prompt_index"] == pi and c["seed"] == seed and c["row"] == row and \
                    c["weight"] == weight:
                return c
        return None


def read_grid(path: Path | str) -> GridView:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != "grid" or not isinstance(data.get("cells"), list):
            raise ValueError("not a grid manifest")
        for key in ("rows", "weights", "prompts", "seeds"):
            if not isinstance(data.get(key), list):
                raise ValueError(f"no {key}")
    except OSError as exc:
        raise LorabakeError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, AttributeError) as exc:
        raise LorabakeError(f"{path}: not a grid manifest ({exc})",
                            "render the grid again") from None
    return GridView(path, data)
