"""The trainer's command line, built once for the trainer and `lorabake train`."""

from __future__ import annotations

import pytest

from lorabake_tui.core.run import exit_codes
from lorabake_tui.core.run.launch import trainer_args, trainer_parser


def test_trainer_args_are_what_the_parser_reads_back(tmp_path):
    p = trainer_parser("t")
    new = p.parse_args(trainer_args(config=tmp_path / "c.toml", run_dir=tmp_path / "run"))
    assert (new.config, new.run_dir, new.resume) == (str(tmp_path / "c.toml"),
                                                      str(tmp_path / "run"), None)
    plain = p.parse_args(trainer_args(config="c.toml"))
    assert (plain.config, plain.run_dir, plain.resume) == ("c.toml", None, None)
    again = p.parse_args(trainer_args(config="ignored.toml", resume=tmp_path / "run"))
    assert (again.config, again.resume) == (None, str(tmp_path / "run"))


def test_the_help_lists_every_exit_code_and_the_lead(capsys):
    p = trainer_parser("lorabake x", lead="Says what x adds.")
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.index("Says what x adds.") < out.index("Train a SD 1.5 LoRA")
    for code, name in exit_codes.NAMES.items():
        assert f"{code} {name}" in out
    assert "--resume RUN_DIR" in out and "RUN_DIR/config.toml" in out
