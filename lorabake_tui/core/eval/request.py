"""What a render job is asked to draw: a grid (LoRA files x weights, per prompt and seed) or a
trigger probe (a word over several seeds with the base model), with the sampler settings.

The CLI and the Evaluate stage build a request and write it as `request.json` in the render
folder; the render process reads it back (`read_request`). Parsing of the user's texts
(`0,0.4,1`, `512x768`, `all|last|1,3,5`) lives here so that every front end refuses the same
input with the same words.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_write_text
from ..base.errors import LorabakeError
from .samplers import DEFAULT_SAMPLER, canonical_name

DEFAULT_WEIGHTS = (0.0, 0.4, 0.7, 1.0)
MAX_SIDE = 2048
MAX_CELLS = 2000  # a typo like --seeds 1000 should not queue a day of rendering
DTYPES = ("auto", "fp16", "bf16", "fp32")
_SIZE = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")


@dataclass(slots=True)
class RenderSettings:
    """How each image is drawn, as A1111 names them."""

    steps: int = 20
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = DEFAULT_SAMPLER
    negative: str = ""
    clip_skip: int = 1
    dtype: str = "auto"

    def check(self) -> None:
        if not 1 <= self.steps <= 150:
            raise LorabakeError(f"steps {self.steps}: out of range", "give 1 to 150")
        if not (math.isfinite(self.cfg) and 0 <= self.cfg <= 30):
            raise LorabakeError(f"cfg {self.cfg:g}: out of range", "give 0 to 30 (7 is usual)")
        for name, side in (("width", self.width), ("height", self.height)):
            if side % 8 or not 64 <= side <= MAX_SIDE:
                raise LorabakeError(f"{name} {side}: not a multiple of 8 from 64 to {MAX_SIDE}",
                                    "give a size like 512x512 or 512x768")
        if not 1 <= self.clip_skip <= 12:
            raise LorabakeError(f"clip skip {self.clip_skip}: out of range", "give 1 to 12")
        self.sampler = canonical_name(self.sampler)
        if self.dtype not in DTYPES:
            raise LorabakeError(f"precision {self.dtype!r} unknown",
                                f"give one of {', '.join(DTYPES)}")


@dataclass(slots=True)
class LoraChoice:
    """One row of a grid: a LoRA file and how the grid labels it (`epoch 3`, `final`)."""

    path: str
    label: str
    epoch: int | None = None  # None: the final file or a file outside a run


@dataclass(slots=True)
class GridRequest:
    base: str  # the base model, as the trainer's loaders take it
    loras: list[LoraChoice]
    weights: list[float]
    prompts: list[str]
    seeds: list[int]
    out: str  # the grid PNG; layout.py names what goes beside it
    render: RenderSettings = field(default_factory=RenderSettings)
    run_dir: str = ""  # the training run the files come from, if any

    kind = "grid"

    def check(self) -> None:
        if not self.loras:
            raise LorabakeError("no LoRA file to render", "give a run folder with saved "
                                "epochs, or LoRA files")
        if not self.weights:
            raise LorabakeError("no weights", "give --weights like 0,0.5,1")
        if not self.prompts or not all(p.strip() for p in self.prompts):
            raise LorabakeError("a prompt is empty", "give --prompt TEXT")
        if not self.seeds:
            raise LorabakeError("no seeds", "give --seed N")
        self.render.check()
        if (n := cell_count(self)) > MAX_CELLS:
            raise LorabakeError(f"{n} images asked for (over {MAX_CELLS})",
                                "use fewer epochs, weights, prompts or seeds")


@dataclass(slots=True)
class ProbeRequest:
    base: str
    word: str
    seeds: list[int]
    out_dir: str
    subject: str = ""  # the dataset's most common subject tag; "" renders the word alone
    render: RenderSettings = field(default_factory=RenderSettings)

    kind = "probe"

    def check(self) -> None:
        if not self.word.strip():
            raise LorabakeError("the trigger word is empty")
        if len(self.seeds) < 2:
            raise LorabakeError("a probe needs at least 2 seeds",
                                "give --seeds 4: diversity is measured across seeds")
        self.render.check()


def cell_count(req: GridRequest) -> int:
    return len(req.loras) * len(req.weights) * len(req.prompts) * len(req.seeds)


# ---- the user's texts ----------------------------------------------------------------------
def parse_weights(text: str) -> list[float]:
    """`0,0.4,0.7,1` -> [0.0, 0.4, 0.7, 1.0]: in the given order, duplicates dropped."""
    out: list[float] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            w = float(part)
        except ValueError:
            raise LorabakeError(f"weight {part!r} is not a number",
                                "give weights like 0,0.4,0.7,1") from None
        if not math.isfinite(w) or not -4 <= w <= 4:
            raise LorabakeError(f"weight {part}: out of range", "give weights from -4 to 4")
        if w not in out:
            out.append(w)
    if not out:
        raise LorabakeError("no weights given", "give weights like 0,0.4,0.7,1")
    return out


def parse_size(text: str) -> tuple[int, int]:
    """`512x768` -> (512, 768) (width, height); one number is a square."""
    m = _SIZE.match(text)
    if m is None and text.strip().isdigit():
        return int(text), int(text)
    if m is None:
        raise LorabakeError(f"size {text!r} is not WIDTHxHEIGHT", "give a size like 512x768")
    return int(m.group(1)), int(m.group(2))


def seed_list(seed: int, count: int) -> list[int]:
    """`count` seeds from `seed` on, as A1111's X/Y plot numbers them."""
    if count < 1:
        raise LorabakeError(f"{count} seeds", "give --seeds 1 or more")
    return [seed + i for i in range(count)]


def select_loras(spec: str, available: list[LoraChoice]) -> list[LoraChoice]:
    """Pick a run's files by `all`, `last` or epoch numbers `1,3,5` (the final file is
    `final`). `last` is the final file when there is one, else the highest epoch."""
    if not available:
        raise LorabakeError("the run has no saved LoRA file yet",
                            "wait for the first epoch's save, or give a file")
    spec = spec.strip().lower() or "all"
    if spec == "all":
        return list(available)
    if spec == "last":
        finals = [c for c in available if c.epoch is None]
        return finals[-1:] or [max(available, key=lambda c: c.epoch or 0)]
    wanted: list[LoraChoice] = []
    by_epoch = {c.epoch: c for c in available if c.epoch is not None}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part == "final":
            choice = next((c for c in available if c.epoch is None), None)
        else:
            try:
                choice = by_epoch.get(int(part))
            except ValueError:
                raise LorabakeError(f"epoch {part!r} is not a number",
                                    "give all, last, or epochs like 1,3,5") from None
        if choice is None:
            have = ", ".join(c.label for c in available)
            raise LorabakeError(f"the run has no file for epoch {part}", f"it has: {have}")
        if choice not in wanted:
            wanted.append(choice)
    if not wanted:
        raise LorabakeError("no epochs given", "give all, last, or epochs like 1,3,5")
    return wanted


# ---- request.json ------------------------------------------------------------------------
def request_json(req: GridRequest | ProbeRequest) -> dict[str, Any]:
    return {"kind": req.kind, **asdict(req)}


def write_request(req: GridRequest | ProbeRequest, path: Path) -> None:
    atomic_write_text(path, json.dumps(request_json(req), indent=1) + "\n")


def read_request(path: Path) -> GridRequest | ProbeRequest:
    """The request a render job was given; a damaged file is one LorabakeError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = data.pop("kind")
        render = RenderSettings(**data.pop("render"))
        if kind == "grid":
            data["loras"] = [LoraChoice(**c) for c in data["loras"]]
            req: GridRequest | ProbeRequest = GridRequest(**data, render=render)
        elif kind == "probe":
            req = ProbeRequest(**data, render=render)
        else:
            raise ValueError(f"unknown kind {kind!r}")
    except OSError as exc:
        raise LorabakeError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LorabakeError(f"{path}: not a render request ({exc})",
                            "queue the grid or probe again") from None
    req.check()
    return req
