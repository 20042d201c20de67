"""Balancing math and plans (the guide: repeats = ceil(target / images))."""

from __future__ import annotations

import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.dataset.balance import (
    MAIN_CONCEPT_LIMIT,
    OPTIMIZER_TARGETS,
    plan_balance,
    plan_set_repeats,
    repeats_for,
    target_for,
)
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept


@pytest.mark.parametrize(("images", "target", "repeats"), [
    (100, 1000, 10), (50, 1000, 20), (10, 1000, 100),  # the guide's worked example
    (40, 1000, 25), (18, 1000, 56), (6, 1000, 167), (7, 500, 72),
    (2000, 1000, 1),  # more images than the target: never below 1
    (1, 1, 1), (3, 250, 84),
])
def test_repeats_is_target_over_images_rounded_up(images, target, repeats):
    assert repeats_for(images, target) == repeats
    assert images * repeats >= target
    assert repeats == 1 or images * (repeats - 1) < target


def test_optimizer_presets_follow_the_guide():
    assert target_for("adamw") == 1000
    assert target_for("Prodigy") == 500
    assert target_for("ia3") == OPTIMIZER_TARGETS["adamw"] // 2
    assert target_for("ia3-prodigy") == OPTIMIZER_TARGETS["prodigy"] // 2
    with pytest.raises(LorabakeError, match="unknown optimizer"):
        target_for("sgd")


def test_repeats_rejects_nonsense():
    with pytest.raises(ValueError):
        repeats_for(0, 1000)
    with pytest.raises(ValueError):
        repeats_for(5, 0)


def test_plan_per_concept_and_totals(small_dataset):
    ds = scan_dataset(small_dataset)
    plan = plan_balance(ds, 1000, epochs=8)
    rows = {r.folder: r for r in plan.rows}
    assert rows["10_outfit_a"].repeats_after == 25
    assert rows["10_outfit_a"].new_folder == "25_outfit_a"
    assert rows["10_outfit_b"].new_folder == "56_outfit_b"
    assert rows["10_outfit_c"].new_folder == "167_outfit_c"
    # a folder without a prefix gets one: balancing is also how it starts being trained
    assert rows["misc"].repeats_before is None
    assert rows["misc"].new_folder == "200_misc"
    expected = 40 * 25 + 18 * 56 + 6 * 167 + 5 * 200
    assert plan.samples_per_epoch == expected
    assert plan.summary.total_samples == expected * 8
    data = plan.to_json()
    assert data["target"] == 1000 and data["samples_per_epoch"] == expected
    assert set(data["plan"][0]) >= {"folder", "images", "repeats_before", "repeats_after",
                                    "new_folder"}
    # nothing on disk changed by planning
    assert sorted(p.name for p in small_dataset.iterdir()) == [
        "10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]


def test_already_balanced_plan_renames_nothing(tmp_path):
    make_concept(tmp_path, "10_a", 100)
    make_concept(tmp_path, "20_b", 50)
    plan = plan_balance(scan_dataset(tmp_path), 1000)
    assert plan.renames == []


def test_warnings_main_concept_few_images_and_reg(tmp_path):
    root, reg = tmp_path / "train", tmp_path / "reg"
    for i in range(7):
        make_concept(root, f"1_c{i}", 12)
    make_concept(root, "1_tiny", 3)
    make_concept(reg, "1_person", 4)
    plan = plan_balance(scan_dataset(root, reg), 1000)
    text = "\n".join(plan.warnings)
    assert plan.samples_per_epoch > MAIN_CONCEPT_LIMIT
    assert "main concept" in text
    assert "1_tiny has only 3 images" in text
    assert "regularization" in text and "twice" in text
    # kohya repeats reg images up to the training samples: the epoch doubles
    assert plan.summary.reg_samples == plan.samples_per_epoch


def test_no_main_concept_warning_below_limit(small_dataset):
    plan = plan_balance(scan_dataset(small_dataset), 500)
    assert not any("main concept" in w for w in plan.warnings)


def test_duplicate_target_names_are_conflicts(tmp_path):
    make_concept(tmp_path, "1_a", 4)
    make_concept(tmp_path, "2_a", 4)
    plan = plan_balance(scan_dataset(tmp_path), 1000)
    assert plan.conflicts and "would both become 250_a" in plan.conflicts[0]


def test_target_name_taken_by_an_empty_folder_is_a_conflict(tmp_path):
    make_concept(tmp_path, "10_a", 4)
    (tmp_path / "250_a").mkdir()
    plan = plan_balance(scan_dataset(tmp_path), 1000)
    assert any("250_a already exists" in c for c in plan.conflicts)


def test_set_repeats_for_one_folder(small_dataset):
    ds = scan_dataset(small_dataset)
    plan = plan_set_repeats(ds, "10_outfit_c", 30)
    assert [r.new_folder for r in plan.rows] == ["30_outfit_c"]
    # totals count the other folders at their current repeats
    assert plan.samples_per_epoch == 40 * 10 + 18 * 10 + 6 * 30
    with pytest.raises(LorabakeError):
        plan_set_repeats(ds, "10_outfit_c", 0)
    with pytest.raises(LorabakeError):
        plan_set_repeats(ds, "nope", 3)


def test_folder_named_only_a_number_keeps_an_empty_class_token(tmp_path):
    make_concept(tmp_path, "10", 4)
    plan = plan_balance(scan_dataset(tmp_path), 1000)
    assert plan.rows[0].repeats_before == 10
    assert plan.rows[0].new_folder == "250"
