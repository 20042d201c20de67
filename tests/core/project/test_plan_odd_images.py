"""What the training plan does with images kohya would stop on for their size, and with folders
kohya skips for repeats below one: the numbers stay kohya's, and each case says why."""

from __future__ import annotations

import os

from lorabake_tui.core.config.schema import Subset, TrainingSettings
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_text
from lorabake_tui.core.project.plan import plan_training

from ...support.crafted import png_claiming
from ...support.helpers import make_concept
from .test_plan import config_for

BIG = "40000x40000 = 1600 MP, over the 179 MP limit"


def plan_of(root, subsets=()):
    s = TrainingSettings().replace("data", train_dir=root, subsets=tuple(
        Subset(concept, repeats=repeats, index=i) for i, (concept, repeats) in
        enumerate(subsets)))
    return plan_training(s, scan_dataset(root))


def test_an_image_over_the_pixel_limit_gets_no_bucket_and_stops_the_plan(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 3, size=(512, 512))
    png_claiming(d / "big.png", 40000, 40000)
    plan = plan_of(root)
    assert sorted(i.key for i in plan.images) == [f"10_c/img_00{i}.png" for i in range(3)]
    assert plan.train_samples == 30  # the big one is not counted
    assert [b.key for b in plan.report.images] == [i.key for i in plan.images]
    assert f"10_c/big.png: {BIG}" in plan.left_out
    [err] = [f for f in plan.findings if f.is_error]
    assert err.key == "data.train_dir"
    assert f"1 image(s) too large to open, e.g. 10_c/big.png: {BIG}" in err.message
    assert "shrink it below the limit" in err.message
    assert not plan.ok


def test_the_config_check_reports_it_so_the_trainer_refuses_to_start(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_c", 2, size=(512, 512))
    text = config_for(root)
    assert check_text(text, base_dir=tmp_path).ok
    png_claiming(root / "10_c" / "big.png", 40000, 40000)
    result = check_text(text, base_dir=tmp_path)
    [err] = result.errors
    assert BIG in err.message and err.line is not None  # located at data.train_dir


def test_a_regularization_image_over_the_limit_stops_the_plan_too(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_c", 2, size=(512, 512))
    reg = tmp_path / "reg"
    make_concept(reg, "1_woman", 2, size=(512, 512))
    png_claiming(reg / "1_woman" / "big.png", 40000, 40000)
    s = TrainingSettings().replace("data", train_dir=root, reg_dir=reg)
    plan = plan_training(s, scan_dataset(root, reg))
    assert "1_woman/big.png" in next(f.message for f in plan.findings if f.is_error)


def test_folders_with_repeats_below_one_say_so_not_no_prefix(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "2_a", 1)
    make_concept(root, "0_x", 1)
    make_concept(root, "-1_y", 1)
    make_concept(root, "misc", 1)
    plan = plan_of(root)
    why = dict(line.split(": ", 1) for line in plan.left_out)
    assert why["0_x/img_000.png"] == "repeats 0: kohya skips folders with fewer than 1 repeat"
    assert why["-1_y/img_000.png"] == "repeats -1: kohya skips folders with fewer than 1 repeat"
    assert why["misc/img_000.png"] == "folder skipped by kohya (no repeat prefix)"
    assert plan.train_samples == 2
    # a subset naming the folder without repeats of its own: the same reason
    errors = " ".join(f.message for f in plan_of(root, [("x", None)]).findings if f.is_error)
    assert "the folder 0_x has repeats 0: kohya skips folders with fewer than 1 repeat" in \
        errors
    assert plan_of(root, [("x", 3)]).train_samples == 3  # the subset's repeats train it


def test_a_linked_concept_folder_trains_its_images_with_its_own_repeats(tmp_path):
    # kohya: 10_c's images 10 times, and again through 20_alias 20 times
    root = tmp_path / "ds"
    make_concept(root, "10_c", 2, size=(512, 512))
    os.symlink("10_c", root / "20_alias")
    plan = plan_of(root)
    assert plan.train_samples == 2 * 10 + 2 * 20
    assert sorted(i.key for i in plan.images) == [
        "10_c/img_000.png", "10_c/img_001.png", "20_alias/img_000.png", "20_alias/img_001.png"]
