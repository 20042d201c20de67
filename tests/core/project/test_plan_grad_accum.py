"""Gradient accumulation in the step math: the plan divides each epoch's batches (after the
split over processes) by optimizer.gradient_accumulation_steps, rounded up per epoch as kohya
does, and every reader (the check's summary, max_steps, warmup) takes those numbers."""

from __future__ import annotations

import math

import pytest

from lorabake_tui.core.config.file import dump_config
from lorabake_tui.core.config.presets import new_config
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_text

from ...support.helpers import make_concept


def plan_for(tmp_path, processes: int = 1, gradient_accumulation_steps: int = 1, **general):
    root = tmp_path / "ds"
    if not root.exists():
        make_concept(root, "10_mira", 7)  # 70 samples, one 512 bucket
    cfg = new_config("lora-adamw", scan_dataset(root))
    cfg["general"].update(base_model="builtin:tiny-sd15", batch_size=4, epochs=3, **general)
    cfg["optimizer"]["gradient_accumulation_steps"] = gradient_accumulation_steps
    result = check_text(dump_config(cfg), base_dir=tmp_path, processes=processes)
    assert result.plan is not None and result.ok, result.errors
    return result.plan


@pytest.mark.parametrize(("accum", "per_epoch"), [(1, 18), (2, 9), (4, 5), (5, 4), (18, 1),
                                                  (64, 1)])
def test_steps_per_epoch_divide_by_the_accumulation(tmp_path, accum, per_epoch):
    plan = plan_for(tmp_path, gradient_accumulation_steps=accum)
    assert plan.batches_per_epoch == 18  # ceil(70 / 4): batches do not change
    assert plan.grad_accum == accum
    assert plan.steps_per_epoch == per_epoch
    assert plan.total_steps == 3 * per_epoch
    summary = plan.summary()
    assert summary["steps_per_epoch"] == per_epoch and summary["total_steps"] == 3 * per_epoch
    assert summary["gradient_accumulation_steps"] == accum


def test_processes_split_first_then_accumulation(tmp_path):
    plan = plan_for(tmp_path, processes=2, gradient_accumulation_steps=4)
    assert plan.steps_per_epoch == math.ceil(18 / 2 / 4) == 3


def test_max_steps_and_warmup_count_optimizer_steps(tmp_path):
    plan = plan_for(tmp_path, gradient_accumulation_steps=2, max_steps=20)
    assert plan.steps_per_epoch == 9 and plan.uncut_steps == 27
    assert plan.total_steps == 20 and plan.epochs == 3
    cfg_plan = plan_for(tmp_path, gradient_accumulation_steps=3)
    assert cfg_plan.total_steps == 18


def test_the_cli_summary_shows_the_accumulated_steps(tmp_path, capsys):
    from lorabake_tui.cli import main

    root = tmp_path / "ds"
    make_concept(root, "10_mira", 7)
    cfg = new_config("lora-adamw", scan_dataset(root))
    cfg["general"].update(base_model="builtin:tiny-sd15", batch_size=4, epochs=3)
    cfg["optimizer"]["gradient_accumulation_steps"] = 4
    path = tmp_path / "cfg.toml"
    path.write_text(dump_config(cfg))
    main(["config", "check", str(path)])
    assert "18 batches per epoch, 15 steps over 3 epoch(s)" in capsys.readouterr().out


def test_the_plan_split_over_processes_keeps_the_accumulation(tmp_path):
    import dataclasses

    plan = plan_for(tmp_path, gradient_accumulation_steps=3)
    assert dataclasses.replace(plan, processes=2).steps_per_epoch == math.ceil(18 / 2 / 3)
    # what kohya calls batches per epoch: the same plan without accumulation
    assert dataclasses.replace(plan, grad_accum=1).steps_per_epoch == 18
