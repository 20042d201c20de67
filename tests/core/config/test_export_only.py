"""Settings marked export-only in the schema: `config check` says, naming the key, that
lorabake's trainer ignores them, whenever the file gives one a value of its own."""

from __future__ import annotations

import dataclasses

import pytest

from lorabake_tui.core.config.check import check_config
from lorabake_tui.core.config.file import dump_config, line_map, parse_config
from lorabake_tui.core.config.presets import new_config
from lorabake_tui.core.config.schema import SETTINGS
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept

WORDS = "lorabake's trainer ignores it"
# no setting is export-only today (the trainer follows every one): the rule is checked on
# settings marked so for the test, as a future one would be
MARKED = ("network.dylora_unit", "data.color_aug")


@pytest.fixture
def export_only(monkeypatch):
    from lorabake_tui.core.config import check

    table = tuple(dataclasses.replace(st, export_only=True) if st.name in MARKED else st
                  for st in SETTINGS)
    monkeypatch.setattr(check, "SETTINGS", table)
    return [st for st in table if st.export_only]


def _config(tmp_path) -> dict:
    make_concept(tmp_path / "ds", "10_mira", 3)
    cfg = new_config("lora-adamw", scan_dataset(tmp_path / "ds"))
    cfg["general"]["base_model"] = "builtin:tiny-sd15"
    return cfg


def _other_value(st):
    if st.choices:
        return next(c for c in st.choices if c != st.default)
    if st.type == "bool":
        return not st.default
    if st.type in ("int", "float"):
        return st.default + 1 if st.max is None or st.default + 1 <= st.max else st.default - 1
    return st.default + "x"


def test_no_setting_is_export_only_today():
    # the trainer follows every setting (tests/trainer/test_every_setting.py)
    assert [st.name for st in SETTINGS if st.export_only] == []


def test_an_export_only_setting_with_a_value_of_its_own_is_named(tmp_path, export_only):
    EXPORT_ONLY = export_only
    cfg = _config(tmp_path)
    notes = [f for f in check_config(parse_config(dump_config(cfg)), check_paths=False)
             if WORDS in f.message]
    assert notes == []  # every setting at its default: nothing to say
    for st in EXPORT_ONLY:
        cfg[st.section][st.key] = _other_value(st)
    text = dump_config(cfg)
    found = {f.key: f for f in check_config(parse_config(text), check_paths=False)
             if WORDS in f.message}
    lines = line_map(text)
    for st in EXPORT_ONLY:
        f = found[st.name]
        assert f.severity == "warning" and "kohya export" in f.message and st.name in f.message
        assert f.line == lines[st.name]


def test_a_trained_setting_changed_is_not_called_export_only(tmp_path):
    cfg = _config(tmp_path)
    cfg["network"]["dim"] = 16
    cfg["network"]["alpha"] = 8
    fs = check_config(parse_config(dump_config(cfg)), check_paths=False)
    assert not [f for f in fs if WORDS in f.message]
