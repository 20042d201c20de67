"""The training plan: subsets that follow their folders through renames, the numbers with
buckets on and off, and the findings the trainer would stop on."""

from __future__ import annotations

from lorabake_tui.core.config.file import dump_config, parse_config
from lorabake_tui.core.config.kohya import from_kohya
from lorabake_tui.core.config.presets import new_config
from lorabake_tui.core.dataset.balance import apply_plan, plan_balance
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_text
from lorabake_tui.core.project.project import Project

from ...support.helpers import make_concept, make_image


def config_for(root, subsets=None, **sections) -> str:
    cfg = new_config("lora-adamw", scan_dataset(root))
    cfg["general"]["base_model"] = "builtin:tiny-sd15"
    if subsets is not None:
        cfg["data"]["subsets"] = subsets
    for name, values in sections.items():
        cfg[name].update(values)
    return dump_config(cfg)


def test_balancing_renames_folders_and_the_config_stays_trainable(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_mira_casual", 12)
    make_concept(root, "10_mira_swimsuit", 4)
    project = Project(root)
    project.files.state.mkdir(parents=True)
    project.files.config.write_text(config_for(root))
    before = project.check()
    assert before.ok, before.errors
    assert before.plan.train_samples == 160
    ds = project.scan()
    apply_plan(ds, plan_balance(ds, 1000))
    assert sorted(c.folder for c in project.scan().concepts) == ["250_mira_swimsuit",
                                                                  "84_mira_casual"]
    after = project.check()  # the config was not touched: it names concepts
    assert after.ok, after.errors
    assert after.plan.train_samples == 84 * 12 + 250 * 4
    project.journal.undo()
    assert project.check().plan.train_samples == 160


def test_the_older_folder_form_follows_renames_unless_it_overrides(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "12_mira", 3)
    text = config_for(root, [{"folder": "10_mira", "repeats": 10, "is_reg": False}])
    result = check_text(text, base_dir=tmp_path)
    assert result.ok, result.errors  # repeats = the old prefix: a copy, so the folder counts
    assert result.plan.train_samples == 36
    text = text.replace("repeats = 10", "repeats = 5")
    result = check_text(text, base_dir=tmp_path)
    assert result.plan.train_samples == 15  # a real override
    [warn] = [f for f in result.findings if f.key == "data.subsets[0].repeats"]
    assert "overrides the folder's 12" in warn.message and warn.line == text.splitlines(
    ).index("repeats = 5") + 1


def test_a_subset_naming_no_folder_is_an_error_on_its_line(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "2_mira", 2)
    text = config_for(root) + '\n[[data.subsets]]\nconcept = "mirra"\nis_reg = false\n'
    result = check_text(text, base_dir=tmp_path)
    [err] = [f for f in result.errors if f.key == "data.subsets[1]"]
    assert "no training folder holds the concept 'mirra'" in err.message
    assert "did you mean 'mira'" in err.message
    assert err.line == len(text.splitlines()) - 2


def test_unlisted_and_unprefixed_folders(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "2_mira", 2)
    text = config_for(root)
    make_concept(root, "3_new", 2)  # added after the config was made
    make_concept(root, "extra", 2)  # no prefix: kohya skips it
    result = check_text(text, base_dir=tmp_path)
    assert result.ok
    notes = " ".join(f.message for f in result.findings)
    assert "folder 3_new is in no [[data.subsets]]" in notes
    assert "extra" not in notes  # the Concepts screen reports it; the config can't train it
    left = " ".join(result.plan.left_out)
    assert "3_new/img_000.png: folder not in data.subsets" in left
    assert "extra/img_000.png: folder skipped by kohya" in left
    # a subset can train a folder without a prefix by giving it repeats
    text += '\n[[data.subsets]]\nconcept = "extra"\nrepeats = 4\n'
    assert check_text(text, base_dir=tmp_path).plan.train_samples == 2 * 2 + 2 * 4
    bare = text.replace("repeats = 4\n", "")
    [err] = check_text(bare, base_dir=tmp_path).errors
    assert "extra has no repeat prefix" in err.message


def test_buckets_on_and_off_count_batches_as_the_trainer_runs_them(tmp_path):
    # 9 images of three shapes, batch 2: three buckets of 3 -> 2 + 2 + 2 = 6 batches;
    # buckets off -> one bucket of 9 -> 5 batches (the trainer's count)
    root = tmp_path / "ds"
    for i, size in enumerate([(512, 768)] * 3 + [(768, 512)] * 3 + [(512, 512)] * 3):
        make_image(root / "1_a" / f"i{i}.png", size)
    on = check_text(config_for(root, general={"batch_size": 2}), base_dir=tmp_path).plan
    off = check_text(config_for(root, general={"batch_size": 2}, buckets={"enable": False}),
                     base_dir=tmp_path).plan
    assert (on.batches_per_epoch, len(on.report.buckets)) == (6, 3)
    assert (off.batches_per_epoch, list(off.report.buckets)) == (5, [(512, 512)])
    assert off.summary()["total_steps"] == 5 * 8


def test_max_steps_and_warmup_come_from_the_same_plan(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_a", 10)
    plan = check_text(config_for(root, general={"max_steps": 50, "batch_size": 1},
                                 optimizer={"warmup_ratio": 0.1}), base_dir=tmp_path).plan
    assert (plan.steps_per_epoch, plan.uncut_steps) == (100, 800)
    assert (plan.total_steps, plan.epochs, plan.warmup_steps) == (50, 1, 5)


def test_non_utf8_caption_is_an_error_the_check_and_the_trainer_share(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "2_a", 2)
    (root / "2_a" / "img_001.txt").write_bytes(b"caf\xe9\n")
    [err] = check_text(config_for(root), base_dir=tmp_path).errors
    assert "2_a/img_001.txt" in err.message and "UTF-8" in err.message


def test_kohya_import_keeps_num_repeats_that_differ_from_the_folder(tmp_path):
    root = tmp_path / "t"
    make_concept(root, "4_dog", 2)
    make_concept(root, "3_cat", 2)
    cfg = from_kohya({"pretrained_model_name_or_path": "builtin:tiny-sd15",
                      "output_name": "x"},
                     {"datasets": [{"subsets": [
                         {"image_dir": str(root / "4_dog"), "num_repeats": 4},
                         {"image_dir": str(root / "3_cat"), "num_repeats": 7}]}]})
    assert cfg["data"]["subsets"] == [{"concept": "dog", "is_reg": False},
                                      {"concept": "cat", "is_reg": False, "repeats": 7}]
    result = check_text(dump_config(cfg), base_dir=tmp_path)
    assert result.plan.train_samples == 4 * 2 + 7 * 2
    assert parse_config(dump_config(cfg)).line("data.subsets[1].repeats")
