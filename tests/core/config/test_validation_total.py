"""Validation is total: every setting fed a value of the wrong kind, NaN, infinity, -1, a huge
number, a list, a table or nothing gives a finding that names it, never an exception, in the
editor's check, `lorabake config check`, both exports and `lorabake train` (exit 2)."""

from __future__ import annotations

import json
import math

import pytest

from lorabake_tui.cli import main
from lorabake_tui.core.config.file import dump_config, parse_config
from lorabake_tui.core.config.presets import new_config
from lorabake_tui.core.config.schema import SETTINGS, Setting
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_text
from lorabake_tui.core.run import exit_codes

from ...support.helpers import make_concept

# free text where an empty value means "none" (no separator, no comment, default folder)
EMPTY_IS_FINE = {"data.reg_dir", "data.keep_tokens_separator", "saving.output_dir",
                 "saving.resume", "saving.comment",
                 "network.down_lr_weight", "network.up_lr_weight"}  # empty: every weight 1
CASES = ("wrong kind", "nan", "inf", "-1", "huge", "list", "table", "nothing")


def bad_value(st: Setting, case: str):
    return {
        "wrong kind": {"bool": "yes", "int": "two", "float": "two", "list": "x"}.get(st.type,
                                                                                    12),
        "nan": math.nan, "inf": math.inf, "-1": -1, "huge": 10**30,
        "list": [1], "table": {"a": 1}, "nothing": "",
    }[case]


def expects_finding(st: Setting, case: str) -> bool:
    return not (case == "nothing" and st.name in EMPTY_IS_FINE)


@pytest.fixture
def base(tmp_path) -> dict:
    """A config that trains as it is (the built-in tiny model, one concept)."""
    root = tmp_path / "ds"
    make_concept(root, "2_mira", 2)
    cfg = new_config("lora-adamw", scan_dataset(root))
    cfg["general"].update(base_model="builtin:tiny-sd15", mixed_precision="no", max_steps=1)
    cfg["saving"]["output_dir"] = str(tmp_path / "out")
    return cfg


def with_value(cfg: dict, st: Setting, value) -> str:
    """The config's text with one setting replaced by `value` (written as TOML allows)."""
    import copy

    out = copy.deepcopy(cfg)
    out[st.section][st.key] = value
    return dump_config(out)


def test_every_number_has_bounds():
    # a huge number is a finding only if something bounds it
    for st in SETTINGS:
        if st.type in ("int", "float"):
            assert st.choices or (st.min is not None and st.max is not None), st.name


def test_the_base_config_is_clean(base, tmp_path):
    result = check_text(dump_config(base), base_dir=tmp_path)
    assert result.ok, result.errors


@pytest.mark.parametrize("case", CASES)
def test_editor_check_and_config_check_name_every_key(base, tmp_path, case, capsys):
    """One file per case with every setting wrong at once: each gets its own finding."""
    import copy

    cfg = copy.deepcopy(base)
    wanted = set()
    for st in SETTINGS:
        cfg[st.section][st.key] = bad_value(st, case)
        if expects_finding(st, case):
            wanted.add(st.name)
    text = dump_config(cfg)
    result = check_text(text, base_dir=tmp_path)  # what the Config screen runs as you type
    named = {f.key for f in result.errors}
    assert wanted <= named, sorted(wanted - named)
    assert all(f.line for f in result.errors if f.key in wanted)
    path = tmp_path / f"{case.replace(' ', '-')}.toml"
    path.write_text(text)
    assert main(["config", "check", str(path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert wanted <= {e["key"] for e in data["errors"]}


@pytest.mark.parametrize("case", CASES)
def test_exports_refuse_each_bad_value_by_name(base, tmp_path, case, capsys):
    for st in SETTINGS:
        if not expects_finding(st, case):
            continue
        path = tmp_path / "c.toml"
        path.write_text(with_value(base, st, bad_value(st, case)))
        for to, out in (("kohya", tmp_path / "k"), ("easy", tmp_path / "e.toml")):
            assert main(["config", "export", str(path), "--to", to, str(out)]) == 1, st.name
            err = capsys.readouterr().err
            assert st.name in err and "Traceback" not in err, (st.name, case, err)
            assert not out.exists()


@pytest.mark.parametrize("case", ["wrong kind", "nan", "huge", "table"])
def test_train_refuses_each_bad_value_with_exit_2(base, tmp_path, case, capsys):
    # the trainer runs the same check: one process for all settings keeps this quick
    for st in SETTINGS:
        if not expects_finding(st, case):
            continue
        path = tmp_path / "c.toml"
        path.write_text(with_value(base, st, bad_value(st, case)))
        code = main(["train", str(path), "--run-dir", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == exit_codes.CONFIG_ERROR, (st.name, err)
        assert st.name in err and "Traceback" not in err, (st.name, err)
        assert not (tmp_path / "run").exists()


def test_missing_required_settings_are_named(base, tmp_path):
    for section, key in (("general", "base_model"), ("data", "train_dir"),
                         ("saving", "output_name")):
        import copy

        cfg = copy.deepcopy(base)
        del cfg[section][key]
        result = check_text(dump_config(cfg), base_dir=tmp_path)
        assert f"{section}.{key}" in {f.key for f in result.errors}, key


def test_subset_tables_are_checked_too(base, tmp_path):
    for bad, words in (([1], "must be a [[data.subsets]] table"),
                       ([{"concept": 3}], "concept must be text"),
                       ([{"concept": "mira", "repeats": 0}], "repeats must be from 1"),
                       ([{"concept": "mira", "repeats": math.nan}], "repeats must be a whole"),
                       ([{"concept": "mira", "colour": "x"}], "unknown subset setting"),
                       ([{"is_reg": False}], "needs concept"),
                       ([{"concept": "mira"}, {"concept": "mira"}], "names the concept"),
                       ({"concept": "mira"}, "must be a list")):
        cfg = dict(base, data=dict(base["data"], subsets=bad))
        text = dump_config(cfg)
        result = check_text(text, base_dir=tmp_path)
        messages = " ".join(f.message for f in result.errors)
        assert words in messages, (bad, messages)
        assert all(f.key.startswith("data.subsets") for f in result.errors), result.errors


def test_nan_survives_parsing_as_a_finding_not_a_crash(tmp_path):
    doc = parse_config("[optimizer]\nlearning_rate = nan\nweight_decay = inf\n"
                       "[general]\nunet_lr = -inf\n")
    from lorabake_tui.core.config.validate import read_settings

    settings, findings = read_settings(doc, base_dir=tmp_path)
    assert {f.key for f in findings} >= {"optimizer.learning_rate", "optimizer.weight_decay",
                                         "general.unet_lr"}
    assert settings.optimizer.learning_rate == 1e-4  # the default stands in
    assert "optimizer.learning_rate" in settings.invalid
