"""The run folder's names and the questions every reader asks of one, on real folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lorabake_tui.core.run import folder
from lorabake_tui.core.run.folder import (
    RunFolder,
    epoch_lora_name,
    epoch_of_lora,
    final_lora_name,
    lora_kind,
    rank_checksum_name,
    sample_name,
    step_lora_name,
    step_of_lora,
)

README = Path(__file__).resolve().parents[3] / "README.md"


def test_paths_are_the_names_inside_the_folder(tmp_path):
    run = RunFolder(str(tmp_path))  # a str is taken too
    assert run.path == tmp_path and run == RunFolder(tmp_path)
    assert run.events == tmp_path / "events.jsonl"
    assert (run.train_log.name, run.stdout_log.name) == ("train.log", "stdout.log")
    assert (run.state.name, run.state_old.name) == ("state", "state.old")
    assert run.config_snapshot.name == "config.toml" and run.samples.name == "samples"
    assert run.exit_code_file.name == "exit_code"
    assert run.rank_checksum(1) == tmp_path / rank_checksum_name(1) == tmp_path / "rank1.sha256"


def test_lora_and_sample_names():
    assert final_lora_name("mira") == "mira.safetensors"
    assert epoch_lora_name("mira", 3) == "mira-000003.safetensors"
    assert step_lora_name("mira", 120) == "mira-step00000120.safetensors"
    assert sample_name("mira", 2, 0) == "mira-e000002-00.png"
    assert epoch_of_lora("mira", epoch_lora_name("mira", 42)) == 42
    for other in (final_lora_name("mira"), step_lora_name("mira", 3),
                  epoch_lora_name("mira2", 3), epoch_lora_name("mi.a", 3), "mira-3.safetensors"):
        assert epoch_of_lora("mira", other) is None
    assert epoch_of_lora("mi.a", epoch_lora_name("mi.a", 3)) == 3  # the name is literal


def test_which_lora_a_file_is():
    assert step_of_lora("mira", step_lora_name("mira", 119)) == 119
    assert step_of_lora("mira", epoch_lora_name("mira", 3)) is None
    assert step_of_lora("mira", step_lora_name("mira2", 3)) is None
    for name in ("mira", None):  # None: any run's file, by the ending alone
        assert lora_kind(name, epoch_lora_name("mira", 3)) == ("epoch", 3)
        assert lora_kind(name, step_lora_name("mira", 119)) == ("step", 119)
        assert lora_kind(name, final_lora_name("mira")) == ("final", None)
        assert lora_kind(name, "notes.txt") == ("other", None)
    assert lora_kind("mira", final_lora_name("other")) == ("other", None)
    assert lora_kind(None, "my-lora-step00000012.safetensors") == ("step", 12)
    # an output name that itself ends like an epoch file is read right when it is known
    assert lora_kind("mira-000001", final_lora_name("mira-000001")) == ("final", None)


def test_holds_run_and_has_state(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert not run.holds_run() and not run.has_state()  # not even created
    run.path.mkdir()
    run.state.mkdir()
    assert not run.has_state()  # an empty state folder is no state
    (run.state / "progress.json").write_text("{}")
    assert run.has_state()
    run.events.write_text("")
    assert run.holds_run()


def test_log_file_prefers_the_asked_one_then_train_log(tmp_path):
    run = RunFolder(tmp_path)
    assert run.log_file() is None
    run.stdout_log.write_text("Traceback\n")
    assert run.log_file() == run.stdout_log  # no train.log yet
    run.train_log.write_text("step 1\n")
    assert run.log_file() == run.train_log
    assert run.log_file(folder.STDOUT_LOG) == run.stdout_log


def test_exit_code_round_trip(tmp_path):
    run = RunFolder(tmp_path)
    assert run.read_exit_code() is None
    run.write_exit_code(-9)
    assert run.exit_code_file.read_text() == "-9\n" and run.read_exit_code() == -9
    assert [p.name for p in tmp_path.iterdir()] == ["exit_code"]  # no temp file left
    run.exit_code_file.write_text("garbage")
    assert run.read_exit_code() is None
    run.clear_exit_code()
    run.clear_exit_code()  # nothing there: fine
    assert not os.path.exists(run.exit_code_file)


def test_the_readme_names_the_run_folder_files():
    text = " ".join(README.read_text().split())
    para = text.split("**The run folder**", 1)[1].split("**Stop and resume.**", 1)[0]
    for name in (folder.CONFIG_SNAPSHOT, folder.EVENTS_FILE, folder.TRAIN_LOG,
                 folder.STDOUT_LOG, folder.EXIT_CODE_FILE, folder.STATE_DIR,
                 folder.SAMPLES_DIR):
        assert re.search(rf"`{re.escape(name)}/?`", para), f"README's run folder lacks {name}"
