"""Balancing repeats so every concept gets about the same samples per epoch (the guide's
"Repetitions and Epochs": repeats = ceil(target / images)), and applying it as folder renames.

A concept folder that is a symbolic link is never renamed, and neither is a folder a link
points at: the rename would leave the link pointing nowhere. Both are conflicts of the plan,
checked again on disk just before anything is renamed."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import LorabakeError
from ..base.journal import Entry, Journal, Rename
from .folders import format_folder_name
from .scan import Dataset
from .steps import EpochSummary, epoch_summary

# Samples per concept per epoch the guide recommends for each optimizer; IA3 needs half.
OPTIMIZER_TARGETS = {"adamw": 1000, "prodigy": 500, "ia3": 500, "ia3-prodigy": 250}
DEFAULT_EPOCHS = 8
MAIN_CONCEPT_LIMIT = 6000  # every folder trains the character: above this it tends to burn
FEW_IMAGES = 10  # below this, high repeats mostly memorise the same few pictures


def target_for(optimizer: str) -> int:
    try:
        return OPTIMIZER_TARGETS[optimizer.lower()]
    except KeyError:
        raise LorabakeError(f"unknown optimizer preset '{optimizer}'",
                            f"use one of {', '.join(OPTIMIZER_TARGETS)} or give --target N"
                            ) from None


def target_name(optimizer: str, network: str) -> str:
    """The OPTIMIZER_TARGETS entry for a config's optimizer and network type: Prodigy and
    DAdaptAdam want half AdamW's samples, IA3 half again."""
    adaptive = optimizer in ("Prodigy", "DAdaptAdam")
    if network == "ia3":
        return "ia3-prodigy" if adaptive else "ia3"
    return "prodigy" if adaptive else "adamw"


def repeats_for(images: int, target: int) -> int:
    """The guide's rule: the target divided by the image count, rounded up (never below 1)."""
    if images < 1:
        raise ValueError("a folder without images has no repeats to balance")
    if target < 1:
        raise ValueError("target must be at least 1")
    return max(1, math.ceil(target / images))


@dataclass(frozen=True, slots=True)
class PlanRow:
    folder: str
    images: int
    repeats_before: int | None
    repeats_after: int
    new_folder: str

    @property
    def renames(self) -> bool:
        return self.new_folder != self.folder

    @property
    def samples_after(self) -> int:
        return self.images * self.repeats_after

    def to_json(self) -> dict:
        return {"folder": self.folder, "images": self.images,
                "repeats_before": self.repeats_before, "repeats_after": self.repeats_after,
                "new_folder": self.new_folder}


@dataclass(slots=True)
class BalancePlan:
    target: int
    rows: list[PlanRow]
    summary: EpochSummary  # after the plan
    warnings: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def samples_per_epoch(self) -> int:
        return self.summary.train_samples

    @property
    def renames(self) -> list[PlanRow]:
        return [r for r in self.rows if r.renames]

    def to_json(self) -> dict:
        return {"target": self.target, "plan": [r.to_json() for r in self.rows],
                "samples_per_epoch": self.samples_per_epoch,
                "samples_per_epoch_with_reg": self.summary.samples_per_epoch,
                "epochs": self.summary.epochs, "total_samples": self.summary.total_samples,
                "warnings": self.warnings, "conflicts": self.conflicts}


def plan_balance(dataset: Dataset, target: int, *, epochs: int = DEFAULT_EPOCHS) -> BalancePlan:
    """Plan repeats for every training folder with images (reg folders are kohya-matched)."""
    if target < 1:
        raise LorabakeError(f"target {target} must be at least 1 sample per epoch")
    rows: list[PlanRow] = []
    for c in dataset.train_concepts:
        if c.image_count == 0:
            continue
        repeats = repeats_for(c.image_count, target)
        rows.append(PlanRow(c.folder, c.image_count, c.repeats, repeats,
                            format_folder_name(repeats, c.name)))
    return _finish_plan(dataset, target, rows, epochs)


def plan_set_repeats(dataset: Dataset, folder: str, repeats: int, *,
                     epochs: int = DEFAULT_EPOCHS) -> BalancePlan:
    """One folder's repeats set by hand: the same plan/apply path as balancing."""
    c = dataset.concept(folder)
    if c is None:
        raise LorabakeError(f"no training folder named {folder}")
    if repeats < 1:
        raise LorabakeError(f"repeats must be at least 1 (got {repeats})")
    row = PlanRow(c.folder, c.image_count, c.repeats, repeats, format_folder_name(repeats, c.name))
    return _finish_plan(dataset, repeats * max(c.image_count, 1), [row], epochs)


def _finish_plan(dataset: Dataset, target: int, rows: list[PlanRow], epochs: int) -> BalancePlan:
    after = {r.folder: r.repeats_after for r in rows}
    train = [(c.image_count, after.get(c.folder, c.repeats)) for c in dataset.train_concepts]
    reg = [(c.image_count, c.repeats) for c in dataset.reg_concepts]
    summary = epoch_summary(train, reg, epochs)
    plan = BalancePlan(target, rows, summary)
    plan.warnings = balance_warnings(
        [(r.folder, r.images) for r in rows], summary)
    plan.conflicts = _conflicts(dataset, rows)
    return plan


def balance_warnings(folders: list[tuple[str, int]], summary: EpochSummary) -> list[str]:
    out: list[str] = []
    if summary.train_samples > MAIN_CONCEPT_LIMIT:
        out.append(f"the main concept is trained {summary.train_samples} samples per epoch "
                   f"(> {MAIN_CONCEPT_LIMIT}): it may burn; lower the target or the repeats")
    for folder, images in folders:
        if 0 < images < FEW_IMAGES:
            out.append(f"{folder} has only {images} images: high repeats memorise them; "
                       "add images or accept a lower share")
    if summary.reg_samples:
        out.append(f"regularization adds {summary.reg_samples} samples per epoch: "
                   "each epoch is about twice as long")
    return out


def _conflicts(dataset: Dataset, rows: list[PlanRow]) -> list[str]:
    out: list[str] = []
    seen: dict[str, str] = {}
    moving = {r.folder for r in rows if r.renames}
    existing = {c.folder for c in dataset.train_concepts}
    links = {c.folder: c.link for c in dataset.train_concepts if c.link is not None}
    out += _link_conflicts(dataset.root, [r.folder for r in rows if r.renames], links)
    for r in rows:
        if r.new_folder in seen and seen[r.new_folder] != r.folder:
            out.append(f"{seen[r.new_folder]} and {r.folder} would both become {r.new_folder}: "
                       "give one of them another name")
        seen[r.new_folder] = r.folder
        if r.renames and (r.new_folder in existing and r.new_folder not in moving
                          or (dataset.root / r.new_folder).exists()):
            out.append(f"{r.new_folder} already exists: refusing to rename {r.folder} onto it")
    return out


def apply_plan(dataset: Dataset, plan: BalancePlan, *, op: str = "balance",
               label: str | None = None) -> Entry | None:
    """Rename the folders through the journal. None when nothing needs renaming."""
    if plan.conflicts:
        raise LorabakeError(plan.conflicts[0], "nothing was renamed")
    renames = [Rename(r.folder, r.new_folder) for r in plan.renames]
    if not renames:
        return None
    # the folders as they are now: a link made since the scan is refused all the same
    now = _link_conflicts(dataset.root, [r.src for r in renames], _links_on_disk(dataset.root))
    if now:
        raise LorabakeError(now[0], "nothing was renamed")
    label = label or f"balance to {plan.target} samples per concept ({len(renames)} folders)"
    return Journal(dataset.root).apply(op, label, renames)


def _link_conflicts(root: Path, renaming: list[str], links: dict[str, Path]) -> list[str]:
    """Why each of `renaming` must not be renamed: it is a link, or a link points at it.
    `links`: the root's folders that are links -> their real targets."""
    out: list[str] = []
    targets: dict[Path, str] = {}
    for name, target in links.items():
        targets.setdefault(target, name)
    real_root = root.resolve()
    for folder in renaming:
        if folder in links:
            out.append(f"{folder} is a link to {_shown(links[folder], real_root)}: lorabake "
                       "will not rename it (rename the link yourself, or make it a real "
                       "folder)")
        elif (alias := targets.get(real_root / folder)) is not None:
            out.append(f"{folder} is where the link {alias} points: renaming it would leave "
                       f"{alias} pointing nowhere (remove the link first)")
    return out


def _shown(target: Path, root: Path) -> str:
    return target.name if target.parent == root else str(target)


def _links_on_disk(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    with os.scandir(root) as it:
        for entry in it:
            if entry.is_symlink() and not entry.name.startswith("."):
                out[entry.name] = Path(os.path.realpath(entry.path))
    return out
