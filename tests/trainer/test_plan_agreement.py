"""One derivation of the numbers: for the demo's config with buckets on and off,
`lorabake buckets DIR --json`, the `config check --json` summary and the trainer's start
event give the same batches per epoch (and steps)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from lorabake_tui.cli import main  # noqa: E402
from lorabake_tui.core.base.project_files import ProjectFiles  # noqa: E402
from lorabake_tui.core.config.file import set_value_in_text  # noqa: E402
from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.demo.project import ensure_demo  # noqa: E402


@pytest.mark.parametrize("buckets", [True, False])
def test_buckets_check_and_trainer_count_the_same_batches(tmp_path, capsys, buckets):
    root, _ = ensure_demo(tmp_path / "demo")
    config = ProjectFiles(root).config
    text = set_value_in_text(config.read_text(), "buckets", "enable", buckets)
    config.write_text(set_value_in_text(text, "general", "max_steps", 1))

    assert main(["buckets", str(root), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert main(["config", "check", str(config), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)["summary"]
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    start = next(e for e in read_all_events(RunFolder(run).events) if e["type"] == "start")

    batches = shown["batches_per_epoch"]
    assert batches == shown["summary"]["batches_per_epoch"] == checked["batches_per_epoch"]
    assert start["batches_per_epoch"] == batches
    assert start["total_steps"] == checked["total_steps"] == shown["total_steps"] == 1
    assert start["train_samples"] == checked["train_samples"]
    assert (len(shown["buckets"]) == 1) == (not buckets)
