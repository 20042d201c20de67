"""kohya's block-wise network arguments and gradient accumulation as settings: checked with a
message naming the key, written by both exports as kohya and LoRA_Easy read them, and read
back by the imports (round trips)."""

from __future__ import annotations

import math
import tomllib

import pytest

from lorabake_tui.core.config import easy, kohya
from lorabake_tui.core.config.blocks import lr_weights, parse_side
from lorabake_tui.core.config.easy import from_easy
from lorabake_tui.core.config.file import dump_config, parse_config
from lorabake_tui.core.config.kohya import from_kohya, parse_kv_list
from lorabake_tui.core.config.presets import new_config
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_text, check_training
from lorabake_tui.core.project.export import export_subsets

from ...support.helpers import make_concept

DOWN = "0,0,0.5,1,1,1,1,1,1,1,1,0.25"
DIMS = [8] * 12 + [4] + [16] * 12
ALPHAS = [4.0] * 12 + [2.0] + [8.0] * 12
CONV_DIMS = list(range(25))
CONV_ALPHAS = [1.5] * 25
BLOCKS = {"down_lr_weight": DOWN, "mid_lr_weight": 0.5, "up_lr_weight": "sine+0.25",
          "block_lr_zero_threshold": 0.1, "block_dims": DIMS, "block_alphas": ALPHAS,
          "conv_block_dims": CONV_DIMS, "conv_block_alphas": CONV_ALPHAS}


@pytest.fixture
def cfg(tmp_path) -> dict:
    root = tmp_path / "ds"
    make_concept(root, "10_mira", 5)
    out = new_config("locon", scan_dataset(root))
    out["general"]["base_model"] = "builtin:tiny-sd15"
    out["saving"]["output_dir"] = str(tmp_path / "out")
    return out


def check(cfg: dict, tmp_path):
    return check_text(dump_config(cfg), base_dir=tmp_path)


def errors(cfg: dict, tmp_path) -> dict[str, str]:
    return {f.key: f.message for f in check(cfg, tmp_path).errors}


# ---- the settings and their checks


def test_presets_and_lists_read_as_kohya_does():
    assert parse_side("") is None
    assert parse_side(" 1, 0.5,0,1,1,1,1,1,1,1,1,2 ") == [1, 0.5, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2]
    sine = parse_side("sine")
    assert sine[0] == 0 and math.isclose(sine[-1], 1) and len(sine) == 12
    assert math.isclose(sine[1], math.sin(math.pi / 22))
    cosine = parse_side("cosine+0.5")
    assert math.isclose(cosine[0], 1.5) and math.isclose(cosine[-1], 0.5)
    assert parse_side("linear")[6] == pytest.approx(6 / 11)
    assert parse_side("reverse_linear")[0] == 1 and parse_side("reverse_linear")[-1] == 0
    assert parse_side("zeros+0.3") == [0.3] * 12


def test_weights_at_or_below_the_threshold_become_zero(cfg, tmp_path):
    cfg["network"].update(down_lr_weight=DOWN, block_lr_zero_threshold=0.25)
    s = check(cfg, tmp_path).settings
    w = lr_weights(s.network)
    assert len(w) == 25
    assert w[:12] == [0, 0, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 0]  # 0.25 is not above 0.25
    assert w[12] == 1 and w[13:] == [1] * 12


def test_good_block_settings_are_clean(cfg, tmp_path):
    cfg["network"].update(BLOCKS)
    cfg["optimizer"]["gradient_accumulation_steps"] = 4
    result = check(cfg, tmp_path)
    assert result.ok, result.errors
    n = result.settings.network
    assert n.block_dims == tuple(DIMS) and n.conv_block_alphas == tuple(CONV_ALPHAS)
    assert result.settings.optimizer.gradient_accumulation_steps == 4


@pytest.mark.parametrize(("key", "value", "words"), [
    ("down_lr_weight", "1,1,1", "must hold 12 numbers (found 3)"),
    ("up_lr_weight", ",".join(["1"] * 13), "must hold 12 numbers (found 13)"),
    ("down_lr_weight", "1,x,1,1,1,1,1,1,1,1,1,1", "'x' is not a number"),
    ("up_lr_weight", "sinus", "unknown preset 'sinus'"),
    ("up_lr_weight", "sine+abc", "offset 'abc'"),
    ("down_lr_weight", "0.5", "must hold 12 numbers (found 1)"),
    ("down_lr_weight", "1,1,1,1,1,1,1,1,1,1,1,nan", "finite"),
    ("mid_lr_weight", -1, "at least 0"),
    ("block_lr_zero_threshold", "0.1", "a number"),
    ("block_dims", [4] * 24, "must hold 25 values"),
    ("block_dims", [4] * 24 + [4.5], "whole number"),
    ("block_dims", [4] * 24 + [-1], "from 0 to 256"),
    ("block_alphas", [1.0] * 26, "must hold 25 values"),
    ("conv_block_dims", "4,4", "must be a list"),
    ("conv_block_alphas", [1] * 24 + [math.inf], "must be a number"),
])
def test_bad_block_values_are_errors_naming_the_key(cfg, tmp_path, key, value, words):
    cfg["network"][key] = value
    found = errors(cfg, tmp_path)
    assert f"network.{key}" in found, found
    assert words in found[f"network.{key}"]
    assert f"network.{key}" in found[f"network.{key}"]


@pytest.mark.parametrize("value", [0, 2000, 2.5, "2"])
def test_bad_accumulation_is_an_error(cfg, tmp_path, value):
    cfg["optimizer"]["gradient_accumulation_steps"] = value
    assert "optimizer.gradient_accumulation_steps" in errors(cfg, tmp_path)


def test_block_settings_need_lora_or_locon(cfg, tmp_path):
    cfg["network"].update(type="loha", block_dims=DIMS)
    assert "block weights" in errors(cfg, tmp_path)["network.block_dims"]
    cfg["network"].update(type="lora")
    assert check(cfg, tmp_path).ok
    cfg["network"]["conv_block_dims"] = CONV_DIMS  # plain LoRA trains no convolutions
    assert "only LoCon" in errors(cfg, tmp_path)["network.conv_block_dims"]


def test_what_kohya_ignores_is_a_warning(cfg, tmp_path):
    cfg["network"]["block_alphas"] = ALPHAS  # no block_dims, no weight: no block mode
    result = check(cfg, tmp_path)
    assert result.ok
    assert any(f.key == "network.block_alphas" for f in result.findings)


def test_the_form_lists_every_new_setting():
    from lorabake_tui.core.config.schema import BY_NAME

    for key in BLOCKS:
        assert f"network.{key}" in BY_NAME and BY_NAME[f"network.{key}"].help
    assert BY_NAME["optimizer.gradient_accumulation_steps"].min == 1


# ---- exports and imports


def typed(cfg: dict):
    result = check_training(parse_config(dump_config(cfg)), check_paths=False,
                            for_trainer=False)
    assert result.plan is not None and result.ok, result.findings
    return result.settings, export_subsets(result.plan), result.plan.total_steps


def test_kohya_export_writes_network_args_as_kohya_reads_them(cfg, tmp_path):
    cfg["network"].update(BLOCKS)
    cfg["optimizer"]["gradient_accumulation_steps"] = 3
    s, subsets, total = typed(cfg)
    config, _ = kohya.to_kohya(s, subsets, total_steps=total)
    assert config["training"]["gradient_accumulation_steps"] == 3
    args = config["network"]["network_args"]
    raw = dict(a.split("=", 1) for a in args)  # kohya hands the strings over unparsed
    assert raw["down_lr_weight"] == DOWN
    assert raw["up_lr_weight"] == "sine+0.25"
    assert raw["mid_lr_weight"] == "0.5" and raw["block_lr_zero_threshold"] == "0.1"
    assert [int(x) for x in raw["block_dims"].split(",")] == DIMS  # kohya's parse_ints
    assert [float(x) for x in raw["block_alphas"].split(",")] == ALPHAS
    assert [int(x) for x in raw["conv_block_dims"].split(",")] == CONV_DIMS
    assert raw["conv_dim"] == str(cfg["network"]["conv_dim"])
    # with accumulation 3, the plan's total counts optimizer steps
    plain = dict(cfg, optimizer=dict(cfg["optimizer"], gradient_accumulation_steps=1))
    assert total == math.ceil(typed(plain)[2] / cfg["general"]["epochs"] / 3) * \
        cfg["general"]["epochs"]


def test_nothing_set_writes_no_block_args(cfg, tmp_path):
    s, subsets, total = typed(cfg)
    config, _ = kohya.to_kohya(s, subsets, total_steps=total)
    keys = {a.split("=")[0] for a in config["network"].get("network_args", [])}
    assert keys == {"conv_dim", "conv_alpha"}
    assert "gradient_accumulation_steps" not in config["training"]


def round_trip_kohya(cfg: dict, tmp_path) -> dict:
    s, subsets, total = typed(cfg)
    cfg_path, ds_path = kohya.write_kohya(s, subsets, tmp_path / "k", total_steps=total)
    return from_kohya(tomllib.loads(cfg_path.read_text()), tomllib.loads(ds_path.read_text()),
                      total_steps=total, base_dir=tmp_path / "k")


def round_trip_easy(cfg: dict, tmp_path) -> dict:
    s, subsets, _ = typed(cfg)
    out = easy.write_easy(s, subsets, tmp_path / "easy.toml")
    return from_easy(tomllib.loads(out.read_text()), base_dir=tmp_path)


@pytest.mark.parametrize("trip", [round_trip_kohya, round_trip_easy])
@pytest.mark.parametrize("net", ["lora", "locon"])
def test_block_settings_and_accumulation_round_trip(cfg, tmp_path, trip, net):
    cfg["network"].update({k: v for k, v in BLOCKS.items()
                           if net == "locon" or not k.startswith("conv_")}, type=net)
    cfg["optimizer"]["gradient_accumulation_steps"] = 5
    back = trip(cfg, tmp_path)
    assert back["optimizer"]["gradient_accumulation_steps"] == 5
    assert back["network"]["type"] == net
    for key, value in BLOCKS.items():
        if net == "lora" and key.startswith("conv_"):
            assert back["network"][key] == []
        else:
            assert back["network"][key] == value, key
    assert check_text(dump_config(back), base_dir=tmp_path).ok


def test_easy_export_keeps_the_strings_its_backend_hands_on(cfg, tmp_path):
    cfg["network"].update(BLOCKS)
    cfg["optimizer"]["gradient_accumulation_steps"] = 2
    s, subsets, _ = typed(cfg)
    data = easy.to_easy(s, subsets)
    assert data["general_args"]["args"]["gradient_accumulation_steps"] == 2
    net_args = data["network_args"]["args"]["network_args"]
    assert net_args["down_lr_weight"] == DOWN and net_args["block_dims"] == ",".join(
        map(str, DIMS))


def test_importing_a_hand_written_kohya_config(tmp_path):
    config = {"network_module": "networks.lora", "network_dim": 8, "network_alpha": 4,
              "gradient_accumulation_steps": 4,
              "network_args": ["down_lr_weight=cosine+0.1", "mid_lr_weight=2",
                               "up_lr_weight=1,1,1,1,1,1,0,0,0,0,0,0",
                               "block_dims=" + ",".join(["4"] * 25),
                               "block_lr_zero_threshold=0.05"]}
    notes: list[str] = []
    out = from_kohya(config, notes=notes)
    n = out["network"]
    assert out["optimizer"]["gradient_accumulation_steps"] == 4
    assert n["down_lr_weight"] == "cosine+0.1" and n["mid_lr_weight"] == 2.0
    assert n["up_lr_weight"] == "1,1,1,1,1,1,0,0,0,0,0,0"
    assert n["block_dims"] == [4] * 25 and n["block_lr_zero_threshold"] == 0.05
    assert not any("not carried" in note for note in notes), notes
    assert parse_kv_list(["x=1,2"], "t") == {"x": (1, 2)}  # why the import joins tuples


def test_new_configs_leave_them_out_and_the_form_edits_them(cfg, tmp_path):
    from lorabake_tui.core.config.file import set_value_in_text
    from lorabake_tui.core.config.schema import BY_NAME
    from lorabake_tui.ui.screens.settings_dialog import parse_value, rows

    text = dump_config(cfg)
    assert "block_dims" not in text and "gradient_accumulation_steps" not in text
    listed = {r.name for r in rows() if not isinstance(r, str)}
    assert {f"network.{k}" for k in BLOCKS} | {"optimizer.gradient_accumulation_steps"} \
        <= listed
    st = BY_NAME["network.block_dims"]
    value = parse_value(st, "[" + ", ".join(map(str, DIMS)) + "]")  # what the form reads
    text = set_value_in_text(text, "network", "block_dims", value)
    text = set_value_in_text(text, "network", "down_lr_weight",
                             parse_value(BY_NAME["network.down_lr_weight"], "sine+0.5"))
    result = check_text(text, base_dir=tmp_path)
    assert result.ok, result.errors
    assert result.settings.network.block_dims == tuple(DIMS)
    assert result.settings.network.down_lr_weight == "sine+0.5"


def test_the_form_row_of_the_longest_key_keeps_a_space_before_its_value(cfg):
    from lorabake_tui.core.config.file import parse_config
    from lorabake_tui.core.config.schema import BY_NAME
    from lorabake_tui.ui.screens.settings_dialog import SettingsDialog

    text = dump_config(cfg)
    dialog = SettingsDialog(parse_config(text), text)
    row = dialog._row(BY_NAME["optimizer.gradient_accumulation_steps"], 80).plain
    assert row == "  gradient_accumulation_steps 1"
    assert dialog._row(BY_NAME["network.dim"], 80).plain.startswith("  dim" + " " * 23)
