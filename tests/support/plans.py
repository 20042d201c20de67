"""The core's training plan for a folder, for tests that need what kohya would train."""

from __future__ import annotations

from pathlib import Path

from lorabake_tui.core.config.schema import TrainingSettings
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.plan import TrainingPlan, plan_training


def plan_of(root: Path, *, reg: Path | None = None, batch: int = 1, **buckets) -> TrainingPlan:
    """Every folder of `root` trained with the default buckets (or `buckets` overrides)."""
    s = TrainingSettings().replace("data", train_dir=Path(root), reg_dir=reg)
    s = s.replace("general", batch_size=batch)
    if buckets:
        s = s.replace("buckets", **buckets)
    return plan_training(s, scan_dataset(root, reg))


def plan_items(root: Path) -> list[tuple[str, tuple[int, int], int]]:
    """(key, size, repeats) of every image kohya would train: what recommend() takes."""
    return [(i.key, i.size, i.repeats) for i in plan_of(root).images]
