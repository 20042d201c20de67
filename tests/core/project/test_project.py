"""The project model: where its files are, its config read into typed settings, written back
only through the journal, and the caption rules the token counts use."""

from __future__ import annotations

import pytest

from lorabake_tui.core.base.journal import ConflictError
from lorabake_tui.core.project.project import Project

from ...support.helpers import make_concept


def test_token_settings_follow_the_config(tmp_path):
    make_concept(tmp_path, "2_a", 1)
    project = Project(tmp_path)
    s = project.token_settings()
    assert s.max_length == 225 and s.source is None
    assert s.rules.shuffle and s.rules.keep_tokens == 1
    cfg = project.files.config
    cfg.parent.mkdir()
    cfg.write_text("[general]\nmax_token_length = 75\n[data]\nkeep_tokens = 2\n"
                   "shuffle_caption = false\n")
    s = project.token_settings()
    assert s.max_length == 75 and s.rules.keep_tokens == 2 and not s.rules.shuffle
    assert s.source == str(cfg)
    cfg.write_text("[general\n")  # broken: count with the defaults
    assert project.token_settings().max_length == 225


def test_settings_without_a_config_are_the_defaults_on_this_folder(tmp_path):
    make_concept(tmp_path, "2_a", 1)
    s, findings, from_file = Project(tmp_path, caption_ext=".caption").settings()
    assert not from_file and not findings
    assert s.data.train_dir == tmp_path.resolve() and s.data.caption_extension == ".caption"


def test_the_config_names_the_caption_extension_and_reg_root(tmp_path):
    root, reg = tmp_path / "ds", tmp_path / "reg"
    make_concept(root, "2_a", 1)
    make_concept(reg, "1_woman", 1)
    project = Project(root)
    project.files.config.parent.mkdir()
    project.files.config.write_text(f'[data]\nreg_dir = "{reg}"\ncaption_extension = '
                                    '".caption"\n')
    assert project.caption_ext == ".caption" and project.reg_root == reg.resolve()
    assert [c.folder for c in project.scan().reg_concepts] == ["1_woman"]
    # a flag on the command line wins for that run
    assert Project(root, caption_ext=".txt").caption_ext == ".txt"


def test_config_writes_are_journaled_and_refuse_a_file_changed_since_read(tmp_path):
    make_concept(tmp_path, "2_a", 2)
    project = Project(tmp_path)
    entry = project.set_settings({"buckets.resolution": 768}, label="buckets: 768")
    text = project.files.config.read_text()
    assert "resolution = 768" in text and entry.label == "buckets: 768"
    read = project.read_config()
    project.files.config.write_text(text.replace("768", "640"))  # someone else's edit
    with pytest.raises(ConflictError):
        project.write_config(text.replace("768", "896"), read, label="mine")
    assert "resolution = 640" in project.files.config.read_text()  # theirs is kept
    project.files.config.write_text(text)
    project.journal.undo()
    assert not project.files.config.exists()  # the first write created it: undo removes it


def test_a_broken_config_never_stops_the_scan(tmp_path):
    make_concept(tmp_path, "2_a", 1)
    project = Project(tmp_path)
    project.files.config.parent.mkdir()
    for text in ("data = 3\n", "[data\n", '[data]\nreg_dir = 5\ncaption_extension = [1]\n'):
        project.files.config.write_text(text)
        assert project.caption_ext == ".txt" and project.reg_root is None
        assert [c.folder for c in project.scan().concepts] == ["2_a"]
        s, findings, _ = project.settings()
        assert findings and s.general.batch_size == 2  # the defaults stand in
