"""Exporting a config to kohya sd-scripts or LoRA_Easy_Training_Scripts: the same check and
training plan as the trainer, so the exported files name exactly the folders, repeats and
step count lorabake would train with (core/config/kohya.py and easy.py write them)."""

from __future__ import annotations

from pathlib import Path

from ..base.errors import LorabakeError
from ..config.easy import write_easy
from ..config.file import ConfigDoc
from ..config.kohya import SubsetDir, write_kohya
from .check import check_training
from .plan import TrainingPlan


def export_subsets(plan: TrainingPlan) -> list[SubsetDir]:
    """The trained folders, as the exports name them."""
    return [SubsetDir(pc.concept.path, pc.repeats, pc.concept.is_reg, pc.concept.name)
            for pc in plan.concepts if pc.concept.image_count]


def export_config(doc: ConfigDoc, base_dir: Path, to: str, out: Path | str, *,
                  total_steps: int | None = None, force: bool = False,
                  notes: list[str] | None = None) -> tuple[list[Path], int | None]:
    """Write `doc` as kohya files (`to` = "kohya": OUT is a folder) or a LoRA_Easy TOML
    ("easy"). Refused, with the first error, when the check finds errors. Returns the
    files written and the total steps used (the plan's unless `total_steps`)."""
    notes = [] if notes is None else notes
    result = check_training(doc, base_dir=base_dir, check_paths=False, for_trainer=False)
    if result.errors:
        f = result.errors[0]
        where = f"{doc.source}:{f.line}" if f.line else doc.source
        raise LorabakeError(f"{where}: {f.message}", "fix it first; `lorabake config check "
                            f"{doc.source}` lists every problem")
    if result.plan is None:
        train = result.settings.data.train_dir
        raise LorabakeError(f"cannot read the training folder {train}",
                            "an export names every concept folder: run it where the dataset "
                            "is")
    s, plan = result.settings, result.plan
    total = total_steps if total_steps is not None else plan.total_steps
    subsets = export_subsets(plan)
    if to == "easy":
        path = write_easy(s, subsets, out, force=force, notes=notes)
        written = [path]
        if any(p.strip() for p in s.sampling.prompts):
            from ..config.easy import prompts_path_for

            written.append(prompts_path_for(path))
        return written, total
    cfg_path, ds_path = write_kohya(s, subsets, out, total_steps=total, force=force,
                                    notes=notes)
    written = [cfg_path, ds_path]
    if any(p.strip() for p in s.sampling.prompts):
        from ..config.kohya import PROMPTS_NAME

        written.append(cfg_path.parent / PROMPTS_NAME)
    return written, total
