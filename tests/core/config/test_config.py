"""Training configs: presets, files with line numbers, every validation rule, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorabake_tui.cli import main
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.config.check import check_config
from lorabake_tui.core.config.file import dump_config, line_map, load_config, parse_config
from lorabake_tui.core.config.presets import list_presets, new_config, preset_config
from lorabake_tui.core.config.schema import SETTINGS, defaults
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_training

from ...support.helpers import make_concept, write_safetensors_stub


@pytest.fixture
def model(tmp_path) -> Path:
    p = tmp_path / "model.safetensors"
    write_safetensors_stub(p)
    return p


def good(tmp_path, model, preset="lora-adamw") -> dict:
    ds_root = tmp_path / "ds"
    if not ds_root.exists():
        make_concept(ds_root, "25_mira", 40)
    cfg = new_config(preset, scan_dataset(ds_root))
    cfg["general"]["base_model"] = str(model)
    return cfg


def findings(cfg: dict, **kw):
    return check_config(parse_config(dump_config(cfg)), **kw)


def keys(fs, severity=None) -> set[str]:
    return {f.key for f in fs if severity is None or f.severity == severity}


def test_every_setting_has_help_and_a_valid_default():
    for st in SETTINGS:
        assert st.help and st.help[0].isupper(), st.name
        if st.choices:
            assert st.default in st.choices or st.default == "", st.name
        if st.min is not None and isinstance(st.default, int | float):
            assert st.default >= st.min, st.name


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_passes_check(tmp_path, model, preset):
    fs = findings(good(tmp_path, model, preset))
    assert not [f for f in fs if f.severity == "error"], fs


def test_prodigy_preset_is_the_guides(tmp_path):
    cfg = preset_config("lora-prodigy")
    o = cfg["optimizer"]
    assert (o["type"], o["learning_rate"], o["weight_decay"], o["d_coef"]) == (
        "Prodigy", 1.0, 0.01, 2.0)
    assert o["decouple"] and o["use_bias_correction"] and o["safeguard_warmup"]


def test_new_config_takes_the_data_from_the_dataset(tmp_path, model):
    cfg = good(tmp_path, model)
    # subsets name the concept: the folder's prefix gives the repeats, so renames keep it valid
    assert cfg["data"]["subsets"] == [{"concept": "mira", "is_reg": False}]
    assert cfg["saving"]["output_name"] == "ds"


def test_dump_is_stable_and_round_trips(tmp_path, model):
    cfg = good(tmp_path, model)
    text = dump_config(cfg)
    assert dump_config(parse_config(text).data) == text
    assert text.index("[general]") < text.index("[data]") < text.index("[network]")


def test_line_map_points_at_keys():
    text = '[general]\nseed = 1\n\n[network]\n# c\ndim = 8\n[[data.subsets]]\nfolder = "a"\n'
    lines = line_map(text)
    assert lines["general.seed"] == 2 and lines["network.dim"] == 6
    assert lines["data.subsets"] == 7


def edit(cfg, section, key, value):
    cfg[section][key] = value
    return cfg


@pytest.mark.parametrize(("section", "key", "value", "severity", "finding", "words"), [
    ("optimizer", "scale_weight_norms", 1.0, "error", "optimizer.scale_weight_norms",
     "Prodigy"),
    ("network", "conv_dim", 96, "warning", "network.conv_dim", "above 64"),
    ("network", "conv_alpha", 48, "warning", "network.conv_alpha", "above 32"),
    ("network", "alpha", 64, "warning", "network.alpha", "alpha above dim"),
    ("data", "color_aug", True, "error", "data.color_aug", "cached latents"),
    ("data", "random_crop", True, "error", "data.random_crop", "cached latents"),
    ("saving", "output_name", "", "error", "saving.output_name", "is empty"),
    ("general", "base_model", "model.ckpt", "error", "general.base_model", "pickle"),
    ("general", "mixed_precision", "fp16", "warning", "general.mixed_precision", "bf16"),
    ("general", "clip_skip", 0, "error", "general.clip_skip", "at least 1"),
    ("general", "max_token_length", 100, "error", "general.max_token_length", "one of"),
    ("network", "dim", "32", "error", "network.dim", "must be a whole number"),
    ("buckets", "step", 32, "warning", "buckets.step", "multiple of 64"),
])
def test_each_rule_with_its_line(tmp_path, model, section, key, value, severity, finding,
                                 words):
    cfg = good(tmp_path, model, "lora-prodigy" if "Prodigy" in words else "locon"
               if key.startswith("conv") else "lora-adamw")
    cfg = edit(cfg, section, key, value)
    text = dump_config(cfg)
    doc = parse_config(text)
    fs = [f for f in check_config(doc, check_paths=key != "base_model") if f.key == finding]
    assert fs and fs[0].severity == severity and words in fs[0].message, fs
    expected_line = line_map(text)[f"{section}.{key}"]
    assert fs[0].line == expected_line


def test_loha_dim_ia3_lr_and_dylora_unit(tmp_path, model):
    fs = findings(edit(good(tmp_path, model, "loha"), "network", "dim", 64))
    assert "network.dim" in keys(fs, "warning")
    # the preset sets the UNet's own rate: that is the one checked
    fs = findings(edit(good(tmp_path, model, "ia3"), "general", "unet_lr", 1e-4))
    assert "general.unet_lr" in keys(fs, "warning")
    fs = findings(edit(good(tmp_path, model, "dylora"), "network", "dim", 30))
    assert "network.dylora_unit" in keys(fs, "error")


def test_unknown_keys_suggest(tmp_path, model):
    cfg = good(tmp_path, model)
    cfg["data"]["shufle_caption"] = True
    cfg["netwrk"] = {"dim": 4}
    fs = findings(cfg)
    msgs = {f.key: f.message for f in fs}
    assert "did you mean shuffle_caption?" in msgs["data.shufle_caption"]
    assert "did you mean [network]?" in msgs["netwrk"]


def test_missing_paths(tmp_path, model):
    cfg = edit(good(tmp_path, model), "data", "train_dir", str(tmp_path / "nope"))
    assert "data.train_dir" in keys(findings(cfg), "error")


def test_dataset_checks(tmp_path, model):
    root = tmp_path / "ds2"
    make_concept(root, "1_few", 30)  # 30 samples: far from 1000
    make_concept(root, "300_many", 30)  # 9000 samples: main concept burns
    make_concept(root, "1_odd", 1, size=(64, 160))  # a bucket of its own, 1 sample
    cfg = good(tmp_path, model)
    cfg["general"]["batch_size"] = 64
    cfg["data"]["train_dir"] = str(root)
    cfg["data"]["subsets"] = []  # every folder trains
    fs = check_training(parse_config(dump_config(cfg)), dataset=scan_dataset(root)).findings
    text = " ".join(f.message for f in fs)
    assert "1_few: 30 samples per epoch" in text
    assert "above 6000" in text
    assert "fewer samples than the batch size" in text


def test_bad_toml_is_one_clear_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[general\nseed = 1\n")
    with pytest.raises(LorabakeError, match="not valid TOML"):
        load_config(p)


def test_cli_new_and_check(tmp_path, model, capsys):
    make_concept(tmp_path / "ds", "25_mira", 40)
    out = tmp_path / "c.toml"
    assert main(["config", "new", str(tmp_path / "ds"), "--preset", "lora-prodigy", "-o",
                 str(out)]) == 0
    text = out.read_text().replace('base_model = ""', f'base_model = "{model}"')
    out.write_text(text)
    capsys.readouterr()
    assert main(["config", "check", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["errors"] == []
    out.write_text(text.replace("scale_weight_norms = 0", "scale_weight_norms = 1"))
    assert main(["config", "check", str(out), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    [err] = data["errors"]
    assert err["key"] == "optimizer.scale_weight_norms"
    assert out.read_text().splitlines()[err["line"] - 1].startswith("scale_weight_norms")
    assert main(["config", "new", str(tmp_path / "ds"), "-o", str(out)]) == 1  # no overwrite


def test_defaults_cover_every_section():
    d = defaults()
    assert set(d) == {s.section for s in SETTINGS}


def test_cli_new_into_the_projects_own_folder_or_a_missing_one(tmp_path, capsys):
    ds = tmp_path / "ds"
    make_concept(ds, "10_mira", 2)
    own = ds / ".lorabake" / "training.toml"  # a fresh dataset has no .lorabake yet
    assert main(["config", "new", str(ds), "-o", str(own)]) == 0
    assert own.is_file() and "[general]" in own.read_text()
    capsys.readouterr()
    elsewhere = tmp_path / "nope" / "c.toml"
    assert main(["config", "new", str(ds), "-o", str(elsewhere)]) == 1
    err = capsys.readouterr().err
    assert f"{elsewhere.parent} does not exist" in err and "Traceback" not in err
    assert not elsewhere.parent.exists()
