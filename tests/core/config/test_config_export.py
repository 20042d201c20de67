"""Config export/import: kohya sd-scripts' config + dataset TOML, LoRA_Easy_Training_Scripts'
nested TOML, round trips for every preset, kohya's dataset schema, the CLI."""

from __future__ import annotations

import ast
import math
import tomllib
from pathlib import Path

import pytest
import tomli_w

from lorabake_tui.cli import main
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.config import easy, kohya
from lorabake_tui.core.config.easy import from_easy, is_easy
from lorabake_tui.core.config.file import dump_config, load_config, parse_config
from lorabake_tui.core.config.kohya import (
    TORCH_WARM_RESTARTS,
    from_kohya,
    full_config,
)
from lorabake_tui.core.config.presets import list_presets, new_config
from lorabake_tui.core.config.schema import SETTINGS
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.project.check import check_training
from lorabake_tui.core.project.export import export_subsets

from ...support.helpers import make_concept

# ---- kohya's --dataset_config schema, as the reference (section 5) and its
# library/config_util.py state it for train_network.py (DreamBooth subsets, dropout on).
# Unknown keys fail there with "extra keys not allowed @ data[...]".


def _bool(v) -> bool:
    return isinstance(v, bool)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:  # voluptuous Any(float, int)
    return isinstance(v, int | float) and not isinstance(v, bool)


def _float(v) -> bool:
    return isinstance(v, float)


def _str(v) -> bool:
    return isinstance(v, str)


def _resolution(v) -> bool:  # int or [w, h]
    return _int(v) or (isinstance(v, list) and len(v) == 2 and all(map(_int, v)))


def _float_pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(map(_float, v))


SUBSET_ASCENDABLE = {
    "color_aug": _bool, "face_crop_aug_range": _float_pair, "flip_aug": _bool,
    "num_repeats": _int, "random_crop": _bool, "shuffle_caption": _bool, "keep_tokens": _int,
    "keep_tokens_separator": _str, "secondary_separator": _str, "enable_wildcard": _bool,
    "token_warmup_min": _int, "token_warmup_step": _num, "caption_prefix": _str,
    "caption_suffix": _str,
    # dropout
    "caption_dropout_every_n_epochs": _int, "caption_dropout_rate": _num,
    "caption_tag_dropout_rate": _num,
    # DreamBooth
    "caption_extension": _str, "class_tokens": _str, "cache_info": _bool,
}
DATASET_ASCENDABLE = {
    "batch_size": _int, "bucket_no_upscale": _bool, "bucket_reso_steps": _int,
    "enable_bucket": _bool, "max_bucket_reso": _int, "min_bucket_reso": _int,
    "resolution": _resolution, "network_multiplier": _float,
}
GENERAL_KEYS = DATASET_ASCENDABLE | SUBSET_ASCENDABLE
SUBSET_KEYS = SUBSET_ASCENDABLE | {"image_dir": _str, "is_reg": _bool}


def kohya_dataset_errors(data: dict) -> list[str]:
    errors: list[str] = []

    def check(table, allowed: dict, where: str, skip=()) -> None:
        if not isinstance(table, dict):
            errors.append(f"expected a table @ data[{where}]")
            return
        for key, value in table.items():
            if key in skip:
                continue
            if key not in allowed:
                errors.append(f"extra keys not allowed @ data[{where}][{key!r}]")
            elif not allowed[key](value):
                errors.append(f"wrong type @ data[{where}][{key!r}]: {value!r}")

    for key in data:
        if key not in ("general", "datasets"):
            errors.append(f"extra keys not allowed @ data[{key!r}]")
    check(data.get("general", {}), GENERAL_KEYS, "'general'")
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list):
        return errors + ["datasets must be a list"]
    for i, ds in enumerate(datasets):
        check(ds, GENERAL_KEYS, f"'datasets'][{i}", skip=("subsets",))
        for j, sub in enumerate(ds.get("subsets", [])):
            where = f"'datasets'][{i}]['subsets'][{j}"
            check(sub, SUBSET_KEYS, where)
            if "image_dir" not in sub:
                errors.append(f"required key not provided @ data[{where}]['image_dir']")
    return errors


def test_the_validator_rejects_what_kohya_rejects():
    good = {"general": {"enable_bucket": True}, "datasets": [
        {"resolution": [512, 768], "subsets": [{"image_dir": "/a", "num_repeats": 2}]}]}
    assert kohya_dataset_errors(good) == []
    bad = {"general": {"enable_buckets": True, "image_dir": "/x"}, "datasets": [
        {"resolution": 512.0, "subsets": [{"num_repeats": "2", "is_reg": 1, "folder": "a"}]}]}
    errs = " ".join(kohya_dataset_errors(bad))
    for words in ("'enable_buckets'", "'image_dir'", "resolution", "num_repeats", "is_reg",
                  "'folder'", "required key"):
        assert words in errs, words


# ---- the exports read typed settings and the plan's folders: from a config dict here


def typed(cfg: dict):
    """(settings, trained folders, total steps) of a config, as `config export` builds them."""
    result = check_training(parse_config(dump_config(cfg)), check_paths=False,
                            for_trainer=False)
    assert result.plan is not None, result.findings
    return result.settings, export_subsets(result.plan), result.plan.total_steps


def estimate_total_steps(cfg: dict) -> int:
    return typed(cfg)[2]


def to_kohya(cfg: dict, **kw):
    s, subsets, _ = typed(cfg)
    return kohya.to_kohya(s, subsets, **kw)


def write_kohya(cfg: dict, outdir, **kw):
    s, subsets, _ = typed(cfg)
    return kohya.write_kohya(s, subsets, outdir, **kw)


def to_easy(cfg: dict, **kw):
    s, subsets, _ = typed(cfg)
    return easy.to_easy(s, subsets, **kw)


def write_easy(cfg: dict, out, **kw):
    s, subsets, _ = typed(cfg)
    return easy.write_easy(s, subsets, out, **kw)



# ---- fixtures


@pytest.fixture
def dataset(tmp_path):
    root, reg = tmp_path / "ds", tmp_path / "reg"
    make_concept(root, "10_mira", 4)
    make_concept(root, "5_outfit_a", 3, size=(64, 96))
    make_concept(reg, "1_woman", 2)
    return scan_dataset(root, reg)


def preset_cfg(preset: str, ds, tmp_path) -> dict:
    cfg = new_config(preset, ds)
    cfg["general"]["base_model"] = str(tmp_path / "model.safetensors")
    cfg["saving"]["output_dir"] = str(tmp_path / "lora-out")
    return cfg


def differences(a: dict, b: dict, skip=()) -> list[str]:
    fa, fb = full_config(a), full_config(b)
    out = [f"{st.name}: {fa[st.section][st.key]!r} -> {fb[st.section][st.key]!r}"
           for st in SETTINGS if st.name not in skip
           and fa[st.section][st.key] != fb[st.section][st.key]]
    if fa["data"]["subsets"] != fb["data"]["subsets"]:
        out.append(f"subsets: {fa['data']['subsets']} -> {fb['data']['subsets']}")
    return out


def kohya_round_trip(cfg: dict, outdir: Path, total: int | None, notes=None) -> dict:
    cfg_path, ds_path = write_kohya(cfg, outdir, total_steps=total, notes=notes)
    config = tomllib.loads(cfg_path.read_text())
    dataset = tomllib.loads(ds_path.read_text())
    assert kohya_dataset_errors(dataset) == []
    return from_kohya(config, dataset, total_steps=total, base_dir=outdir)


def easy_round_trip(cfg: dict, out: Path) -> dict:
    write_easy(cfg, out)
    data = tomllib.loads(out.read_text())
    assert is_easy(data)
    return from_easy(data, base_dir=out.parent)


# ---- round trips


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_round_trips_through_kohya(tmp_path, dataset, preset):
    cfg = preset_cfg(preset, dataset, tmp_path)
    cfg["sampling"].update({"every_n_epochs": 2, "prompts": ["mira, 1girl --n lowres"],
                            "steps": 24})
    total = estimate_total_steps(cfg)
    assert total and total > 0
    back = kohya_round_trip(cfg, tmp_path / "kohya", total)
    assert differences(cfg, back) == []
    assert back["data"]["train_dir"] == str(dataset.root)
    assert back["data"]["reg_dir"] == str(dataset.reg_root)


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_round_trips_through_lora_easy(tmp_path, dataset, preset):
    cfg = preset_cfg(preset, dataset, tmp_path)
    cfg["sampling"].update({"every_n_epochs": 1, "prompts": ["mira smiling"], "steps": 30})
    cfg["optimizer"]["warmup_ratio"] = 0.05
    back = easy_round_trip(cfg, tmp_path / "easy.toml")
    assert differences(cfg, back) == []


# which settings each optimizer / network type takes (the others have no place in the files)
OPT_TAKES = {
    "AdamW": {"weight_decay", "betas"}, "AdamW8bit": {"weight_decay", "betas"},
    "Prodigy": {"weight_decay", "betas", "decouple", "use_bias_correction",
                "safeguard_warmup", "d_coef"},
    "DAdaptAdam": {"weight_decay", "betas", "decouple", "use_bias_correction"},
}
OPT_ONLY = {"decouple", "use_bias_correction", "safeguard_warmup", "d_coef"}
NET_TAKES = {"lora": set(), "locon": {"conv_dim", "conv_alpha"},
             "loha": {"conv_dim", "conv_alpha"}, "lokr": {"conv_dim", "conv_alpha"},
             "ia3": {"conv_dim", "conv_alpha"}, "dylora": {"dylora_unit"}}


def changed_cfg(ds, tmp_path, net: str, opt: str, sched: str, warmup: float) -> dict:
    """Every setting away from its default."""
    cfg = new_config("lora-adamw", ds)
    cfg["general"].update({
        "base_model": str(tmp_path / "m.safetensors"), "clip_skip": 1, "seed": 7,
        "mixed_precision": "fp16", "batch_size": 3, "max_token_length": 150, "epochs": 5,
        "gradient_checkpointing": True, "attention": "xformers", "cache_latents": "none",
        "train": "unet", "unet_lr": 2e-4, "text_encoder_lr": 3e-5})
    cfg["data"].update({
        "caption_extension": ".caption", "shuffle_caption": False, "keep_tokens": 2,
        "keep_tokens_separator": "|||", "caption_dropout_rate": 0.05,
        "caption_tag_dropout_rate": 0.1, "token_warmup_min": 2, "token_warmup_step": 100,
        "flip_aug": True, "color_aug": True, "random_crop": True})
    cfg["network"].update({"type": net, "dim": 24, "alpha": 6.0, "conv_dim": 12,
                           "conv_alpha": 3.0, "dropout": 0.1, "dylora_unit": 8})
    cfg["optimizer"].update({
        "type": opt, "learning_rate": 0.8, "weight_decay": 0.02, "betas": [0.85, 0.99],
        "max_grad_norm": 0.0, "d_coef": 1.5, "decouple": False, "use_bias_correction": False,
        "safeguard_warmup": False, "scheduler": sched, "scheduler_cycles": 3,
        "warmup_ratio": warmup, "min_snr_gamma": 5.0, "scale_weight_norms": 1.0})
    cfg["noise"].update({"offset": 0.05, "multires_iterations": 6, "multires_discount": 0.4})
    cfg["buckets"].update({"enable": False, "resolution": 768, "min": 320, "max": 1280,
                           "step": 128, "no_upscale": True})
    cfg["saving"].update({
        "output_dir": str(tmp_path / "o"), "output_name": "mira_v2", "precision": "bf16",
        "every_n_epochs": 2, "keep_last": 3, "save_state": True,
        "resume": str(tmp_path / "state"), "comment": "mira, trigger"})
    cfg["sampling"].update({"every_n_epochs": 2, "prompts": ["mira --n lowres", "mira smiling"],
                            "steps": 20})
    cfg["logging"]["tensorboard"] = True
    return cfg


CASES = [("lora", "AdamW", "cosine", 0.1), ("locon", "AdamW8bit", "linear", 0.05),
         ("loha", "Prodigy", "cosine_annealing_warm_restarts", 0.0),
         ("lokr", "DAdaptAdam", "polynomial", 0.2), ("ia3", "AdamW", "constant_with_warmup", 0.1),
         ("dylora", "Prodigy", "cosine_with_restarts", 0.1), ("lora", "AdamW", "constant", 0.0)]


@pytest.mark.parametrize(("net", "opt", "sched", "warmup"), CASES)
def test_every_shared_field_survives_both_formats(tmp_path, dataset, net, opt, sched, warmup):
    cfg = changed_cfg(dataset, tmp_path, net, opt, sched, warmup)
    not_carried = {f"optimizer.{k}" for k in OPT_ONLY - OPT_TAKES[opt]} | {
        f"network.{k}" for k in {"conv_dim", "conv_alpha", "dylora_unit"} - NET_TAKES[net]}
    back = kohya_round_trip(cfg, tmp_path / "k", 1000)
    assert differences(cfg, back, skip=not_carried) == []
    back = easy_round_trip(cfg, tmp_path / "e.toml")
    assert differences(cfg, back, skip=not_carried) == []


def test_cache_and_training_parts_map_both_ways(tmp_path, dataset):
    for cache, train in (("memory", "text_encoder"), ("disk", "both"), ("none", "unet")):
        cfg = preset_cfg("lora-adamw", dataset, tmp_path)
        cfg["general"].update({"cache_latents": cache, "train": train})
        config, _ = to_kohya(cfg)
        t, n = config["training"], config["network"]
        assert t["cache_latents"] == (cache != "none")
        assert t["cache_latents_to_disk"] == (cache == "disk")
        assert n.get("network_train_unet_only", False) == (train == "unet")
        assert n.get("network_train_text_encoder_only", False) == (train == "text_encoder")
        back = from_kohya(config, _)
        assert (back["general"]["cache_latents"], back["general"]["train"]) == (cache, train)


# ---- what the kohya files hold


def test_kohya_dataset_toml_is_valid_and_explicit(tmp_path, dataset):
    cfg = preset_cfg("style", dataset, tmp_path)
    cfg["data"]["keep_tokens_separator"] = ""
    config, ds = to_kohya(cfg)
    assert kohya_dataset_errors(ds) == []
    assert ds["general"]["enable_bucket"] is True
    assert ds["general"]["caption_extension"] == ".txt"
    assert "keep_tokens_separator" not in ds["general"]  # only when set
    [entry] = ds["datasets"]
    assert (entry["resolution"], entry["batch_size"]) == (512, 2)
    assert entry["batch_size"] == config["training"]["train_batch_size"]
    subs = entry["subsets"]
    assert [(Path(s["image_dir"]), s["num_repeats"], s["is_reg"], s["class_tokens"])
            for s in subs] == [
        (dataset.root / "10_mira", 10, False, "mira"),
        (dataset.root / "5_outfit_a", 5, False, "outfit_a"),
        (dataset.reg_root / "1_woman", 1, True, "woman")]
    assert all(Path(s["image_dir"]).is_absolute() for s in subs)
    cfg["buckets"]["enable"] = False
    cfg["data"]["keep_tokens_separator"] = "|||"
    _, ds = to_kohya(cfg)
    assert ds["general"]["enable_bucket"] is False
    assert ds["general"]["keep_tokens_separator"] == "|||"
    assert kohya_dataset_errors(ds) == []


def kv(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = ast.literal_eval(value)
    return out


def test_prodigy_args_are_python_literals(tmp_path, dataset):
    config, _ = to_kohya(preset_cfg("lora-prodigy", dataset, tmp_path))
    o = config["optimizer"]
    assert (o["optimizer_type"], o["learning_rate"]) == ("Prodigy", 1.0)
    assert "decouple=True" in o["optimizer_args"]
    assert "betas=(0.9, 0.999)" in o["optimizer_args"]
    assert kv(o["optimizer_args"]) == {
        "weight_decay": 0.01, "betas": (0.9, 0.999), "decouple": True,
        "use_bias_correction": True, "safeguard_warmup": True, "d_coef": 2.0}
    assert "scale_weight_norms" not in o  # 0 = off: left out


def test_adamw_args(tmp_path, dataset):
    config, _ = to_kohya(preset_cfg("lora-adamw", dataset, tmp_path))
    assert kv(config["optimizer"]["optimizer_args"]) == {"weight_decay": 0.01,
                                                         "betas": (0.9, 0.999)}


@pytest.mark.parametrize(("preset", "module", "args"), [
    ("lora-adamw", "networks.lora", None),
    ("locon", "networks.lora", ["conv_dim=16", "conv_alpha=8.0"]),
    ("loha", "lycoris.kohya", ["algo=loha", "conv_dim=8", "conv_alpha=4.0"]),
    ("lokr", "lycoris.kohya", ["algo=lokr", "conv_dim=8", "conv_alpha=4.0"]),
    ("ia3", "lycoris.kohya", ["algo=ia3", "conv_dim=0", "conv_alpha=0.0"]),
    ("dylora", "networks.dylora", ["unit=4"]),
])
def test_network_module_and_args(tmp_path, dataset, preset, module, args):
    config, _ = to_kohya(preset_cfg(preset, dataset, tmp_path))
    n = config["network"]
    assert n["network_module"] == module
    assert n.get("network_args") == args


def test_scheduler_and_warmup_mapping(tmp_path, dataset):
    cfg = preset_cfg("lora-prodigy", dataset, tmp_path)
    o = cfg["optimizer"]
    o.update({"scheduler": "cosine_annealing_warm_restarts", "scheduler_cycles": 3})
    config, _ = to_kohya(cfg, total_steps=1000)
    s = config["optimizer"]
    assert s["lr_scheduler_type"] == TORCH_WARM_RESTARTS and "lr_scheduler" not in s
    assert s["lr_scheduler_args"] == [f"T_0={math.ceil(1000 / 3)}"]
    assert (s["lr_scheduler_num_cycles"], s["lr_warmup_steps"]) == (3, 0)
    notes: list[str] = []
    config, _ = to_kohya(cfg, notes=notes)  # no total: the built-in with the same curve
    assert config["optimizer"]["lr_scheduler"] == "cosine_with_restarts"
    assert "lr_scheduler_type" not in config["optimizer"]
    assert any("no total step count" in n for n in notes)
    o["warmup_ratio"] = 0.1
    notes = []
    config, _ = to_kohya(cfg, total_steps=1000, notes=notes)  # kohya: no warmup for a class
    assert config["optimizer"]["lr_scheduler"] == "cosine_with_restarts"
    assert config["optimizer"]["lr_warmup_steps"] == 100
    assert any("refuses warmup" in n for n in notes)
    o["scheduler"] = "cosine"
    notes = []
    config, _ = to_kohya(cfg, notes=notes)
    assert config["optimizer"]["lr_warmup_steps"] == 0
    assert any("warmup_ratio 0.1 needs the run's total steps" in n for n in notes)
    o["scheduler"] = "constant"
    config, _ = to_kohya(cfg, total_steps=500)
    assert config["optimizer"]["lr_scheduler"] == "constant_with_warmup"
    assert config["optimizer"]["lr_warmup_steps"] == 50


def test_zero_means_off_is_left_out(tmp_path, dataset):
    config, _ = to_kohya(preset_cfg("lora-adamw", dataset, tmp_path))
    flat = {k: v for sec in config.values() for k, v in sec.items()}
    for key in ("noise_offset", "multires_noise_iterations", "min_snr_gamma",
                "scale_weight_norms", "save_last_n_epochs", "sample_prompts", "log_with"):
        assert key not in flat, key
    assert flat["max_grad_norm"] == 1.0 and flat["sdpa"] is True


def test_no_training_subsets_is_refused(tmp_path, dataset):
    cfg = preset_cfg("lora-adamw", dataset, tmp_path)
    cfg["data"]["subsets"] = [s for s in cfg["data"]["subsets"] if s["is_reg"]]
    with pytest.raises(LorabakeError, match="no training folders"):
        to_kohya(cfg)


# ---- what the LoRA_Easy file holds


def test_lora_easy_layout(tmp_path, dataset):
    cfg = preset_cfg("loha", dataset, tmp_path)
    cfg["optimizer"].update({"type": "Prodigy", "scheduler": "cosine_annealing_warm_restarts",
                             "scheduler_cycles": 2, "warmup_ratio": 0.05})
    cfg["network"]["dropout"] = 0.1
    data = tomllib.loads(tomli_w.dumps(to_easy(cfg)))
    assert data["train_mode"] == {"train_mode": "lora"}
    args = data["general_args"]["args"]
    assert args["pretrained_model_name_or_path"].endswith("model.safetensors")
    assert args["sdpa"] is True and args["max_token_length"] == 225
    assert data["general_args"]["dataset_args"] == {"resolution": 512, "batch_size": 2}
    net = data["network_args"]["args"]
    assert (net["network_dim"], net["network_alpha"]) == (16, 8.0)
    assert net["network_args"] == {"algo": "loha", "conv_dim": 8, "conv_alpha": 4.0,
                                   "dropout": 0.1}
    opt = data["optimizer_args"]["args"]
    assert opt["warmup_ratio"] == 0.05 and opt["lr_scheduler_num_cycles"] == 2
    assert opt["lr_scheduler_type"].endswith("CosineAnnealingWarmupRestarts")
    values = opt["optimizer_args"]
    assert all(isinstance(v, str) for v in values.values())
    assert {k: ast.literal_eval(v) for k, v in values.items()} == {
        "weight_decay": 0.01, "betas": (0.9, 0.999), "decouple": True,
        "use_bias_correction": True, "safeguard_warmup": True, "d_coef": 2.0}
    assert values["decouple"] == "True" and values["weight_decay"] == "0.01"
    assert data["saving_args"]["args"]["save_model_as"] == "safetensors"
    assert data["saving_args"]["args"]["tag_occurrence"] is True
    assert data["bucket_args"]["dataset_args"]["enable_bucket"] is True
    assert data["noise_args"]["args"] == {"multires_noise_discount": 0.3}
    first = data["subsets"][0]
    assert first["name"] == "10_mira" and first["num_repeats"] == 10
    assert Path(first["image_dir"]) == dataset.root / "10_mira"
    assert [s["is_reg"] for s in data["subsets"]] == [False, False, True]
    assert "sample_args" not in data and "logging_args" not in data


def test_lora_easy_file_as_its_ui_saves_it(tmp_path):
    """Numbers where its widgets keep numbers, a float weight decay, betas without brackets,
    lowercase booleans in optimizer args, xformers."""
    img = tmp_path / "train" / "3_cat"
    make_concept(img.parent, img.name, 2)
    text = f"""
[[subsets]]
num_repeats = 3
keep_tokens = 0
caption_extension = ".txt"
shuffle_caption = true
flip_aug = false
color_aug = false
random_crop = false
is_reg = false
image_dir = "{img}"
name = "cats"

[noise_args]

[sample_args]

[logging_args]

[general_args.args]
pretrained_model_name_or_path = "/models/any.safetensors"
mixed_precision = "fp16"
seed = 23
clip_skip = 2
xformers = true
max_train_epochs = 1
max_token_length = 225
prior_loss_weight = 1.0

[general_args.dataset_args]
resolution = 512
batch_size = 1

[network_args.args]
network_dim = 32
network_alpha = 16.0

[network_args.args.network_args]
conv_dim = 32
conv_alpha = 16.0

[optimizer_args.args]
optimizer_type = "AdamW"
lr_scheduler = "cosine"
learning_rate = 0.0001

[saving_args.args]
output_dir = "/out"
save_precision = "fp16"
save_model_as = "safetensors"

[bucket_args.dataset_args]
enable_bucket = true
min_bucket_reso = 256
max_bucket_reso = 1024
bucket_reso_steps = 64

[optimizer_args.args.optimizer_args]
weight_decay = 0.1
betas = "0.9,0.99"
foreach = "false"
"""
    notes: list[str] = []
    cfg = from_easy(tomllib.loads(text), notes=notes)
    assert cfg["network"]["type"] == "locon"
    assert (cfg["network"]["conv_dim"], cfg["network"]["conv_alpha"]) == (32, 16.0)
    o = cfg["optimizer"]
    assert (o["weight_decay"], o["betas"], o["scheduler"]) == (0.1, [0.9, 0.99], "cosine")
    assert cfg["general"]["attention"] == "xformers"
    assert cfg["general"]["cache_latents"] == "none"
    # the concept, following its folder: num_repeats equals the folder's prefix
    assert cfg["data"]["subsets"] == [{"concept": "cat", "is_reg": False}]
    assert cfg["data"]["train_dir"] == str(img.parent)
    assert cfg["saving"]["tag_occurrence"] is False
    assert cfg["saving"]["output_name"] == "last"
    assert any("foreach" in n for n in notes)
    assert dump_config(cfg)  # a writable config


# ---- import of hand-written kohya files


def test_kohya_import_uses_kohyas_defaults(tmp_path):
    config = {"pretrained_model_name_or_path": "/m.safetensors", "network_module":
              "lycoris.kohya", "network_args": ["algo=locon", "conv_dim=4"],
              "optimizer_type": "prodigy", "learning_rate": 1, "lr_warmup_steps": 0.1,
              "max_train_epochs": 4, "output_name": "x"}
    dataset = {"datasets": [{"resolution": [512, 768], "subsets": [
        {"image_dir": str(tmp_path / "t" / "4_dog"), "num_repeats": 4, "class_tokens": "sks"},
        {"image_dir": str(tmp_path / "r" / "1_dog"), "is_reg": True}]}]}
    notes: list[str] = []
    cfg = from_kohya(config, dataset, notes=notes)
    d = cfg["data"]
    assert (d["caption_extension"], d["shuffle_caption"], d["keep_tokens"]) == (
        ".caption", False, 0)
    assert cfg["buckets"]["enable"] is False
    assert cfg["buckets"]["resolution"] == math.isqrt(512 * 768)
    assert cfg["network"]["type"] == "locon" and cfg["network"]["conv_dim"] == 4
    assert (cfg["network"]["dim"], cfg["network"]["alpha"]) == (4, 1.0)
    o = cfg["optimizer"]
    assert (o["type"], o["warmup_ratio"], o["scheduler"]) == ("Prodigy", 0.1, "constant")
    assert (o["d_coef"], o["use_bias_correction"], o["weight_decay"]) == (1.0, False, 0.0)
    assert cfg["general"]["mixed_precision"] == "no" and cfg["general"]["clip_skip"] == 1
    assert cfg["saving"]["every_n_epochs"] == 4  # no intermediate saves: at the end only
    assert d["subsets"] == [{"concept": "dog", "is_reg": False},
                            {"concept": "dog", "is_reg": True}]
    assert (d["train_dir"], d["reg_dir"]) == (str(tmp_path / "t"), str(tmp_path / "r"))
    text = " ".join(notes)
    for words in ("LyCORIS LoCon", "class_tokens 'sks'", "resolution 512x768", "random one"):
        assert words in text, words


@pytest.mark.parametrize(("config", "words"), [
    ({"optimizer_type": "Lion"}, "optimizer_type 'Lion'"),
    ({"network_module": "networks.oft"}, "network_module 'networks.oft'"),
    ({"network_module": "lycoris.kohya", "network_args": ["algo=full"]}, "algo 'full'"),
    ({"lr_scheduler": "adafactor"}, "lr_scheduler 'adafactor'"),
    ({"lr_scheduler_type": "torch.optim.lr_scheduler.StepLR"}, "StepLR"),
    ({"optimizer_args": ["weight_decay"]}, "not key=value"),
])
def test_kohya_import_refuses_what_has_no_equivalent(config, words):
    with pytest.raises(LorabakeError, match=words):
        from_kohya(config)


def test_subsets_in_two_training_folders_are_refused(tmp_path):
    dataset = {"datasets": [{"subsets": [{"image_dir": "/a/1_x"}, {"image_dir": "/b/1_y"}]}]}
    with pytest.raises(LorabakeError, match="2 different folders"):
        from_kohya({}, dataset)


def test_warmup_steps_become_a_ratio_with_the_total():
    cfg = from_kohya({"lr_scheduler": "cosine", "lr_warmup_steps": 50}, total_steps=1000)
    assert cfg["optimizer"]["warmup_ratio"] == 0.05
    notes: list[str] = []
    cfg = from_kohya({"lr_scheduler": "cosine", "lr_warmup_steps": 50}, notes=notes)
    assert cfg["optimizer"]["warmup_ratio"] == 0.0
    assert any("lr_warmup_steps = 50" in n for n in notes)
    cfg = from_kohya({"lr_scheduler_type": TORCH_WARM_RESTARTS,
                      "lr_scheduler_args": ["T_0=250"]}, total_steps=1000)
    assert cfg["optimizer"]["scheduler"] == "cosine_annealing_warm_restarts"
    assert cfg["optimizer"]["scheduler_cycles"] == 4


# ---- CLI


def write_own(tmp_path, dataset, preset="lora-prodigy") -> Path:
    cfg = preset_cfg(preset, dataset, tmp_path)
    cfg["sampling"].update({"every_n_epochs": 1, "prompts": ["mira, 1girl"]})
    path = tmp_path / "mine.toml"
    path.write_text(dump_config(cfg))
    return path


def test_cli_export_kohya_and_refuse_overwrite(tmp_path, dataset, capsys):
    src = write_own(tmp_path, dataset)
    out = tmp_path / "kohya"
    assert main(["config", "export", str(src), "--to", "kohya", str(out)]) == 0
    cap = capsys.readouterr()
    files = {p.name for p in out.iterdir()}
    assert files == {"config.toml", "dataset.toml", "prompts.txt"}
    assert cap.out.strip() == (f"accelerate launch train_network.py --config_file "
                               f"{out / 'config.toml'} --dataset_config {out / 'dataset.toml'}")
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["model"]["dataset_config"] == str(out / "dataset.toml")
    assert config["sampling"]["sample_prompts"] == str(out / "prompts.txt")
    assert (out / "prompts.txt").read_text() == "mira, 1girl --s 28\n"
    assert kohya_dataset_errors(tomllib.loads((out / "dataset.toml").read_text())) == []
    before = (out / "config.toml").read_text()
    assert main(["config", "export", str(src), "--to", "kohya", str(out),
                 "--total-steps", "9"]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "config.toml").read_text() == before
    assert main(["config", "export", str(src), str(out), "--to", "kohya", "--force",
                 "--total-steps", "9"]) == 0
    assert (out / "config.toml").read_text() != before


def test_cli_export_easy_and_refuse_overwrite(tmp_path, dataset, capsys):
    src = write_own(tmp_path, dataset)
    out = tmp_path / "easy.toml"
    assert main(["config", "export", str(src), "--to", "easy", str(out)]) == 0
    data = tomllib.loads(out.read_text())
    assert is_easy(data)
    prompts = tmp_path / "easy-prompts.txt"
    assert data["sample_args"]["args"]["sample_prompts"] == str(prompts)
    assert prompts.read_text() == "mira, 1girl --s 28\n"
    capsys.readouterr()
    assert main(["config", "export", str(src), "--to", "easy", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_cli_export_refuses_a_config_with_errors(tmp_path, dataset, capsys):
    src = write_own(tmp_path, dataset)
    src.write_text(src.read_text().replace('type = "Prodigy"', 'type = "Lion"'))
    assert main(["config", "export", str(src), "--to", "kohya", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert f"{src}:" in err and "optimizer.type must be one of" in err
    assert not (tmp_path / "k").exists()


def test_cli_import_round_trips(tmp_path, dataset, capsys):
    src = write_own(tmp_path, dataset, "loha")
    original = load_config(src).merged()
    out = tmp_path / "kohya"
    assert main(["config", "export", str(src), "--to", "kohya", str(out)]) == 0
    # the config alone: it names its dataset_config
    assert main(["config", "import", str(out / "config.toml"), "-o",
                 str(tmp_path / "a.toml")]) == 0
    assert differences(original, load_config(tmp_path / "a.toml").merged()) == []
    # the config with --dataset, and the dataset TOML on its own
    assert main(["config", "import", str(out / "config.toml"), "--dataset",
                 str(out / "dataset.toml"), "-o", str(tmp_path / "b.toml")]) == 0
    assert differences(original, load_config(tmp_path / "b.toml").merged()) == []
    capsys.readouterr()
    assert main(["config", "import", str(out / "dataset.toml")]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["data"]["subsets"] == original["data"]["subsets"]
    # LoRA_Easy
    assert main(["config", "export", str(src), "--to", "easy", str(tmp_path / "e.toml")]) == 0
    assert main(["config", "import", str(tmp_path / "e.toml"), "-o",
                 str(tmp_path / "c.toml")]) == 0
    assert differences(original, load_config(tmp_path / "c.toml").merged()) == []
    capsys.readouterr()
    assert main(["config", "import", str(tmp_path / "e.toml"), "-o",
                 str(tmp_path / "c.toml")]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["config", "import", str(tmp_path / "e.toml"), "-o", str(tmp_path / "c.toml"),
                 "--force"]) == 0
    # the imported LoHa config is one our own trainer runs too: the check passes
    capsys.readouterr()
    assert main(["config", "check", str(tmp_path / "c.toml"), "--no-paths"]) == 0
    assert "cannot train" not in capsys.readouterr().out


def test_cli_import_errors_are_one_line(tmp_path, dataset, capsys):
    src = write_own(tmp_path, dataset)
    assert main(["config", "import", str(src)]) == 1
    assert "already a lorabake config" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('optimizer_type = "Lion"\n')
    assert main(["config", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "optimizer_type 'Lion'" in err and len(err.strip().splitlines()) == 1
    bad.write_text('dataset_config = "nowhere.toml"\n')
    assert main(["config", "import", str(bad)]) == 1
    assert "--dataset" in capsys.readouterr().err


def test_max_steps_and_prior_loss_weight_travel_to_kohya_and_back(tmp_path, dataset):
    cfg = preset_cfg("lora-adamw", dataset, tmp_path)
    cfg["general"]["max_steps"] = 50
    cfg["data"]["prior_loss_weight"] = 0.5
    cfg_path, _ = write_kohya(cfg, tmp_path / "k", total_steps=4000)
    config = tomllib.loads(cfg_path.read_text())
    assert config["training"]["max_train_steps"] == 50
    assert "max_train_epochs" not in config["training"]  # it would override the steps
    assert config["training"]["prior_loss_weight"] == 0.5
    back = kohya_round_trip(cfg, tmp_path / "k2", 4000)
    assert back["general"]["max_steps"] == 50 and back["data"]["prior_loss_weight"] == 0.5
    # counted from the dataset (as `config export` does), the run is cut at max_steps:
    # warmup is a share of those 50
    cfg["general"]["epochs"] = 100
    cfg["optimizer"].update({"warmup_ratio": 0.1, "scheduler": "cosine"})
    assert estimate_total_steps(cfg) == 50
    cfg_path, _ = write_kohya(cfg, tmp_path / "k4", total_steps=estimate_total_steps(cfg))
    config = tomllib.loads(cfg_path.read_text())
    assert config["training"]["max_train_steps"] == 50
    assert config["optimizer"]["lr_warmup_steps"] == 5
    # a max_steps the epochs never reach is left out: the epochs decide, as in our trainer
    cfg["general"]["max_steps"] = 9000
    cfg_path, _ = write_kohya(cfg, tmp_path / "k3", total_steps=4000)
    config = tomllib.loads(cfg_path.read_text())
    assert "max_train_steps" not in config["training"] and config["training"][
        "max_train_epochs"] == cfg["general"]["epochs"]
