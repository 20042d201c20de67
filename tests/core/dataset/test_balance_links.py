"""Renaming concept folders when links are involved: a folder that is a link, or that a link
points at, is never renamed; the refusal names it and comes before anything changes."""

from __future__ import annotations

import os

import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.dataset.balance import apply_plan, plan_balance, plan_set_repeats
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept


def tree(root):
    """Every entry under root (links not followed) with what it is: the test's 'nothing
    changed'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.readlink(p) if os.path.islink(p) else \
                os.path.isdir(p)
    return out


@pytest.fixture
def aliased(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_c", 2)
    make_concept(root, "5_d", 4)
    os.symlink("10_c", root / "20_alias")
    return root


def test_setting_a_linked_folders_repeats_is_refused_naming_it(aliased):
    ds = scan_dataset(aliased)
    plan = plan_set_repeats(ds, "20_alias", 7)
    assert plan.conflicts == ["20_alias is a link to 10_c: lorabake will not rename it "
                              "(rename the link yourself, or make it a real folder)"]
    before = tree(aliased)
    with pytest.raises(LorabakeError, match="20_alias is a link to 10_c") as exc:
        apply_plan(ds, plan)
    assert exc.value.hint == "nothing was renamed"
    assert tree(aliased) == before
    assert Journal(aliased).entries() == []


def test_renaming_the_folder_a_link_points_at_is_refused_too(aliased):
    # renaming 10_c would leave 20_alias pointing nowhere
    ds = scan_dataset(aliased)
    plan = plan_set_repeats(ds, "10_c", 3)
    assert plan.conflicts == ["10_c is where the link 20_alias points: renaming it would leave "
                              "20_alias pointing nowhere (remove the link first)"]
    with pytest.raises(LorabakeError, match="10_c is where the link 20_alias points"):
        apply_plan(ds, plan)
    assert (aliased / "10_c").is_dir() and (aliased / "20_alias").is_dir()


def test_balance_refuses_before_renaming_any_folder(aliased):
    ds = scan_dataset(aliased)
    plan = plan_balance(ds, 100)
    assert {r.folder for r in plan.renames} == {"10_c", "5_d", "20_alias"}
    assert len(plan.conflicts) == 2
    before = tree(aliased)
    with pytest.raises(LorabakeError):
        apply_plan(ds, plan)
    assert tree(aliased) == before  # 5_d, which has nothing to do with the link, kept too
    assert Journal(aliased).entries() == []


def test_a_link_made_after_the_scan_is_refused_at_apply_time(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_c", 2)
    make_concept(root, "5_d", 2)
    ds = scan_dataset(root)
    plan = plan_set_repeats(ds, "10_c", 3)
    assert plan.conflicts == []
    os.symlink("10_c", root / "20_alias")  # someone adds a link meanwhile
    before = tree(root)
    with pytest.raises(LorabakeError, match="10_c is where the link 20_alias points"):
        apply_plan(ds, plan)
    assert tree(root) == before
    assert Journal(root).entries() == []


def test_folders_untouched_by_links_still_rename(aliased):
    ds = scan_dataset(aliased)
    plan = plan_set_repeats(ds, "5_d", 3)
    assert plan.conflicts == []
    apply_plan(ds, plan)
    assert (aliased / "3_d").is_dir() and os.readlink(aliased / "20_alias") == "10_c"


def test_a_link_to_a_folder_outside_the_dataset_is_not_renamed(tmp_path):
    outside = make_concept(tmp_path / "photos", "shoot", 2)
    root = tmp_path / "ds"
    root.mkdir()
    os.symlink(outside, root / "5_shoot")
    ds = scan_dataset(root)
    plan = plan_set_repeats(ds, "5_shoot", 9)
    assert plan.conflicts == [f"5_shoot is a link to {outside}: lorabake will not rename it "
                              "(rename the link yourself, or make it a real folder)"]
