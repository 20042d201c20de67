"""The LoRA header holds every key kohya's train_network.py writes for the same SD1.5 run, in
kohya's formats: one real training run from a single-file checkpoint (so the base-model
hashes exist), then the formats of settings switched on and off, built from real plans."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.dataset.scan import scan_dataset  # noqa: E402
from lorabake_tui.core.project.plan import plan_training  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402
from lorabake_tui.trainer.data import load_train_data  # noqa: E402
from lorabake_tui.trainer.metadata import RunFacts, legacy_hash, training_metadata  # noqa: E402

from ..support.helpers import make_concept  # noqa: E402
from ..support.ldm_checkpoint import write_ldm_safetensors  # noqa: E402
from ..support.plans import plan_of  # noqa: E402
from ..support.train_fixtures import make_dataset, write_config  # noqa: E402

# The keys kohya sd-scripts (48d368fa) writes for an SD1.5 LoRA trained from a checkpoint file
# with --dataset_config (what `lorabake export kohya` writes), no network_args, no VAE, no
# validation split, 81 in all:
KOHYA_KEYS = frozenset({
    # train_network.py, the `metadata = {...}` block before training (61)
    "ss_session_id", "ss_training_started_at", "ss_output_name", "ss_learning_rate",
    "ss_text_encoder_lr", "ss_unet_lr", "ss_num_train_images", "ss_num_validation_images",
    "ss_num_reg_images", "ss_num_batches_per_epoch", "ss_num_epochs",
    "ss_gradient_checkpointing", "ss_gradient_accumulation_steps", "ss_max_train_steps",
    "ss_lr_warmup_steps", "ss_lr_scheduler", "ss_network_module", "ss_network_dim",
    "ss_network_alpha", "ss_network_dropout", "ss_mixed_precision", "ss_full_fp16", "ss_v2",
    "ss_base_model_version", "ss_clip_skip", "ss_max_token_length", "ss_cache_latents",
    "ss_seed", "ss_lowram", "ss_noise_offset", "ss_multires_noise_iterations",
    "ss_multires_noise_discount", "ss_adaptive_noise_scale", "ss_zero_terminal_snr",
    "ss_training_comment", "ss_sd_scripts_commit_hash", "ss_optimizer", "ss_max_grad_norm",
    "ss_caption_dropout_rate", "ss_caption_dropout_every_n_epochs",
    "ss_caption_tag_dropout_rate", "ss_face_crop_aug_range", "ss_prior_loss_weight",
    "ss_min_snr_gamma", "ss_scale_weight_norms", "ss_ip_noise_gamma", "ss_debiased_estimation",
    "ss_noise_offset_random_strength", "ss_ip_noise_gamma_random_strength", "ss_loss_type",
    "ss_huber_schedule", "ss_huber_scale", "ss_huber_c", "ss_fp8_base", "ss_fp8_base_unet",
    "ss_validation_seed", "ss_validation_split", "ss_max_validation_steps",
    "ss_validate_every_n_epochs", "ss_validate_every_n_steps", "ss_resize_interpolation",
    # train_network.py, the `if use_user_config:` branch (3)
    "ss_datasets", "ss_tag_frequency", "ss_dataset_dirs",
    # train_network.py, "model name and hash" for an existing file (3)
    "ss_sd_model_hash", "ss_new_sd_model_hash", "ss_sd_model_name",
    # train_network.py, save_model() on every save (3)
    "ss_training_finished_at", "ss_steps", "ss_epoch",
    # library/sai_model_spec.py build_metadata_dataclass(): its non-None fields for an SD1.5
    # LoRA (no timestep range, no author/description/license/tags) (9)
    "modelspec.sai_model_spec", "modelspec.architecture", "modelspec.implementation",
    "modelspec.title", "modelspec.resolution", "modelspec.date", "modelspec.prediction_type",
    "modelspec.encoder_layer", "modelspec.implementation_version",
    # networks/lora.py save_weights() (2)
    "sshs_model_hash", "sshs_legacy_hash",
})
# what lorabake writes beyond: kohya writes these two only without a dataset config, and
# A1111's metadata view reads ss_bucket_info
EXTRA_KEYS = frozenset({"ss_resolution", "ss_bucket_info"})


# ---- formats ---------------------------------------------------------------------------

def is_int(v: str) -> bool:
    return v.lstrip("-").isdigit() and str(int(v)) == v


def is_float(v: str) -> bool:
    """str() of a Python float: 0.001, 1e-05, 2.0 (never an int, never "None")."""
    try:
        return repr(float(v)) == v
    except ValueError:
        return False


def is_bool(v: str) -> bool:
    return v in ("True", "False")


def is_none(v: str) -> bool:
    return v == "None"


def hexes(n: int):
    return lambda v: len(v) == n and all(c in "0123456789abcdef" for c in v)


def exactly(want: str):
    return lambda v: v == want


def json_of(check):
    def parse(v: str) -> bool:
        return check(json.loads(v))
    return parse


def tag_table(v) -> bool:
    return isinstance(v, dict) and all(
        isinstance(tags, dict) and list(tags) == sorted(tags)
        and all(isinstance(n, int) and n > 0 for n in tags.values()) for tags in v.values())


def bucket_table(v) -> bool:
    return set(v) == {"buckets", "mean_img_ar_error"} and isinstance(
        v["mean_img_ar_error"], float) and all(
        k.isdigit() and set(b) == {"resolution", "count"} and len(b["resolution"]) == 2
        for k, b in v["buckets"].items())


SUBSET_KEYS = ["img_count", "num_repeats", "color_aug", "flip_aug", "random_crop",
               "shuffle_caption", "keep_tokens", "keep_tokens_separator", "secondary_separator",
               "enable_wildcard", "caption_prefix", "caption_suffix", "resize_interpolation",
               "image_dir", "class_tokens", "is_reg"]
DATASET_KEYS = ["is_dreambooth", "batch_size_per_device", "num_train_images", "num_reg_images",
                "resolution", "enable_bucket", "min_bucket_reso", "max_bucket_reso",
                "tag_frequency", "bucket_info", "resize_interpolation", "subsets"]


def datasets_list(v) -> bool:
    """kohya's ss_datasets: a list of datasets, each with its keys (in kohya's order) and a
    list of subsets."""
    return isinstance(v, list) and len(v) == 1 and list(v[0]) == DATASET_KEYS and all(
        list(sub) == SUBSET_KEYS for sub in v[0]["subsets"]) and tag_table(
        v[0]["tag_frequency"]) and bucket_table(v[0]["bucket_info"])


def iso_date(v: str) -> bool:
    return datetime.datetime.fromisoformat(v).isoformat() == v and "." not in v


# every key with its format for the run below (values fixed by its config where they are)
FORMATS = {
    "ss_session_id": is_int, "ss_training_started_at": is_float,
    "ss_output_name": exactly("tiny"), "ss_learning_rate": exactly("0.001"),
    "ss_text_encoder_lr": is_none, "ss_unet_lr": exactly("0.002"),
    "ss_num_train_images": exactly("6"), "ss_num_validation_images": exactly("0"),
    "ss_num_reg_images": exactly("2"), "ss_num_batches_per_epoch": is_int,
    "ss_num_epochs": exactly("1"), "ss_gradient_checkpointing": exactly("False"),
    "ss_gradient_accumulation_steps": exactly("1"), "ss_max_train_steps": exactly("2"),
    "ss_lr_warmup_steps": exactly("0"), "ss_lr_scheduler": exactly("constant"),
    "ss_network_module": exactly("networks.lora"), "ss_network_dim": exactly("4"),
    "ss_network_alpha": exactly("2.0"), "ss_network_dropout": is_none,
    "ss_mixed_precision": exactly("no"), "ss_full_fp16": exactly("False"),
    "ss_v2": exactly("False"), "ss_base_model_version": exactly("sd_v1"),
    "ss_clip_skip": exactly("2"), "ss_max_token_length": is_none,
    "ss_cache_latents": exactly("True"), "ss_seed": exactly("7"), "ss_lowram": is_bool,
    "ss_noise_offset": is_none, "ss_multires_noise_iterations": is_none,
    "ss_multires_noise_discount": exactly("0.3"), "ss_adaptive_noise_scale": is_none,
    "ss_zero_terminal_snr": exactly("False"), "ss_training_comment": exactly("trigger: mychar"),
    "ss_sd_scripts_commit_hash": exactly("(unknown)"),
    "ss_optimizer": exactly("torch.optim.adamw.AdamW(weight_decay=0.01,betas=(0.9, 0.999))"),
    "ss_max_grad_norm": exactly("1.0"), "ss_caption_dropout_rate": exactly("0.0"),
    "ss_caption_dropout_every_n_epochs": exactly("0"),
    "ss_caption_tag_dropout_rate": exactly("0.0"), "ss_face_crop_aug_range": is_none,
    "ss_prior_loss_weight": exactly("0.5"), "ss_min_snr_gamma": is_none,
    "ss_scale_weight_norms": is_none, "ss_ip_noise_gamma": is_none,
    "ss_debiased_estimation": exactly("False"),
    "ss_noise_offset_random_strength": exactly("False"),
    "ss_ip_noise_gamma_random_strength": exactly("False"), "ss_loss_type": exactly("l2"),
    "ss_huber_schedule": exactly("snr"), "ss_huber_scale": exactly("1.0"),
    "ss_huber_c": exactly("0.1"), "ss_fp8_base": exactly("False"),
    "ss_fp8_base_unet": exactly("False"), "ss_validation_seed": is_none,
    "ss_validation_split": exactly("0.0"), "ss_max_validation_steps": is_none,
    "ss_validate_every_n_epochs": is_none, "ss_validate_every_n_steps": is_none,
    "ss_resize_interpolation": is_none,
    "ss_datasets": json_of(datasets_list), "ss_tag_frequency": json_of(tag_table),
    "ss_dataset_dirs": json_of(lambda v: v == {"2_mychar": {"n_repeats": 2, "img_count": 3}}),
    "ss_sd_model_hash": hexes(8), "ss_new_sd_model_hash": hexes(64),
    "ss_sd_model_name": exactly("tiny.safetensors"), "ss_training_finished_at": is_float,
    "ss_steps": exactly("2"), "ss_epoch": is_int,
    "modelspec.sai_model_spec": exactly("1.0.1"),
    "modelspec.architecture": exactly("stable-diffusion-v1/lora"),
    "modelspec.implementation": exactly("diffusers"), "modelspec.title": exactly("tiny"),
    "modelspec.resolution": exactly("64x64"), "modelspec.date": iso_date,
    "modelspec.prediction_type": exactly("epsilon"), "modelspec.encoder_layer": exactly("2"),
    "modelspec.implementation_version": lambda v: v.startswith("lorabake/"),
    "sshs_model_hash": hexes(64), "sshs_legacy_hash": hexes(8),
    "ss_resolution": exactly("(64, 64)"), "ss_bucket_info": json_of(bucket_table),
}


# ---- one real run ----------------------------------------------------------------------

@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    """The built-in tiny model as an A1111-style single file, and the SD1.5 config cache
    given the tiny model's shapes, so the trainer loads it like any checkpoint."""
    from lorabake_tui.trainer.base_model import BUILTIN_TINY, load_base_model, sd15_config_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    tiny = load_base_model(BUILTIN_TINY)
    cfg = sd15_config_dir()
    tiny.unet.save_config(cfg / "unet")
    tiny.vae.save_config(cfg / "vae")
    tiny.text_encoder.config.save_pretrained(cfg / "text_encoder")
    return write_ldm_safetensors(tmp_path / "tiny.safetensors", tiny.unet, tiny.vae,
                                 tiny.text_encoder)


def read_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()


def test_a_trained_lora_has_every_kohya_key_in_kohyas_format(tmp_path, tiny_checkpoint):
    make_dataset(tmp_path, images=3, reg=2)
    # a caption that repeats a tag (in two cases): kohya counts each occurrence, lower-cased
    (tmp_path / "data" / "2_mychar" / "img0.txt").write_text("mychar, Smile, smile, sky\n")
    cfg = write_config(tmp_path, general__base_model="tiny.safetensors", general__max_steps=2,
                       general__unet_lr=2e-3, general__text_encoder_lr=0.0,
                       data__reg_dir="reg", data__prior_loss_weight=0.5)
    run_dir = tmp_path / "out" / "r"
    assert train_main([str(cfg), "--run-dir", str(run_dir)]) == 0
    meta = read_header(run_dir / "tiny.safetensors")

    assert len(KOHYA_KEYS) == 81 and set(FORMATS) == KOHYA_KEYS | EXTRA_KEYS  # the tables
    assert set(meta) - EXTRA_KEYS == KOHYA_KEYS and set(meta) >= EXTRA_KEYS
    wrong = {k: meta[k] for k, ok in FORMATS.items() if not ok(meta[k])}
    assert not wrong

    raw = tiny_checkpoint.read_bytes()
    assert meta["ss_new_sd_model_hash"] == hashlib.sha256(raw).hexdigest()
    assert meta["ss_sd_model_hash"] == legacy_hash(tiny_checkpoint)
    freq = json.loads(meta["ss_tag_frequency"])
    assert freq["2_mychar"]["smile"] == 3  # "Smile, smile" in img0, "smile" in img2
    assert freq["2_mychar"]["mychar"] == 3 and "Smile" not in freq["2_mychar"]
    assert freq["1_woman"] == {"woman": 2}  # regularization folders are counted too
    (ds,) = json.loads(meta["ss_datasets"])
    assert ds["tag_frequency"] == freq
    assert ds["bucket_info"] == json.loads(meta["ss_bucket_info"])
    assert (ds["batch_size_per_device"], ds["num_train_images"], ds["num_reg_images"],
            ds["resolution"], ds["enable_bucket"], ds["min_bucket_reso"],
            ds["max_bucket_reso"]) == (2, 6, 2, [64, 64], True, 64, 128)
    assert [(s["image_dir"], s["num_repeats"], s["img_count"], s["is_reg"], s["class_tokens"],
             s["shuffle_caption"], s["keep_tokens"], s["flip_aug"], s["color_aug"],
             s["random_crop"]) for s in ds["subsets"]] == [
        ("2_mychar", 2, 3, False, "mychar", True, 1, False, False, False),
        ("1_woman", 1, 2, True, "woman", True, 1, False, False, False)]
    assert "ss_network_args" not in meta  # a plain LoRA has none


# ---- formats of settings on and off, from real plans -----------------------------------

RUN = RunFacts(session_id="s", started_at=1.0, saved_at=2.0, steps=1, epoch=1,
               network_args={}, optimizer_class="prodigyopt.prodigy.Prodigy",
               sd_model_name="builtin:tiny-sd15", sd_model_hash=None, new_sd_model_hash=None)


def header(root: Path, run: RunFacts = RUN, **sections) -> dict[str, str]:
    """The header for the dataset at `root` with `section={key: value}` settings."""
    plan = plan_of(root)
    s = plan.settings.replace("saving", output_name="x")
    for section, values in sections.items():
        s = s.replace(section, **values)
    plan = plan_training(s, scan_dataset(root, s.data.reg_dir))
    return training_metadata(s, plan, load_train_data(plan), run)


def test_settings_that_are_off_read_none_and_on_read_their_value(tmp_path):
    make_concept(tmp_path, "5_mira", 2)
    off = header(tmp_path, optimizer={"min_snr_gamma": 0.0, "scale_weight_norms": 0.0},
                 noise={"offset": 0.0, "multires_iterations": 0},
                 network={"dropout": 0.0}, general={"unet_lr": 0.0, "text_encoder_lr": 0.0,
                                                    "max_token_length": 75},
                 saving={"comment": ""})
    on = header(tmp_path, optimizer={"min_snr_gamma": 5.0, "scale_weight_norms": 1.0},
                noise={"offset": 0.05, "multires_iterations": 6},
                network={"dropout": 0.1}, general={"unet_lr": 1e-4, "text_encoder_lr": 5e-5,
                                                   "max_token_length": 225},
                saving={"comment": "mira"})
    keys = {"ss_min_snr_gamma": "5.0", "ss_scale_weight_norms": "1.0",
            "ss_noise_offset": "0.05", "ss_multires_noise_iterations": "6",
            "ss_network_dropout": "0.1", "ss_unet_lr": "0.0001", "ss_text_encoder_lr": "5e-05",
            "ss_max_token_length": "225", "ss_training_comment": "mira"}
    assert {k: off[k] for k in keys} == dict.fromkeys(keys, "None")
    assert {k: on[k] for k in keys} == keys


def test_optimizer_arguments_network_args_and_model_hashes(tmp_path):
    make_concept(tmp_path, "5_mira", 2)
    meta = header(tmp_path, optimizer={"type": "Prodigy", "learning_rate": 1.0})
    assert meta["ss_optimizer"] == (
        "prodigyopt.prodigy.Prodigy(weight_decay=0.01,betas=(0.9, 0.999),decouple=True,"
        "use_bias_correction=True,safeguard_warmup=True,d_coef=2.0)")
    # a built-in model is no file: no hash keys, as kohya for a model that is not a path
    assert "ss_sd_model_hash" not in meta and "ss_new_sd_model_hash" not in meta
    assert "ss_network_args" not in meta
    locon = dataclasses.replace(RUN, network_args={"conv_dim": "8", "conv_alpha": "4.0"})
    meta = header(tmp_path, locon, network={"type": "locon", "conv_dim": 8, "conv_alpha": 4.0})
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "8", "conv_alpha": "4.0"}
    assert meta["ss_network_module"] == "networks.lora"


def test_buckets_carry_kohyas_index_and_none_when_off(tmp_path):
    make_concept(tmp_path, "2_mira", 3, size=(512, 512))
    make_concept(tmp_path, "1_wide", 1, size=(1920, 1080))
    info = json.loads(header(tmp_path)["ss_bucket_info"])
    # kohya's 17 buckets at 512: (512, 512) is the 9th, (640, 384) the 11th
    assert info["buckets"] == {"8": {"resolution": [512, 512], "count": 6},
                               "10": {"resolution": [640, 384], "count": 1}}
    off = header(tmp_path, buckets={"enable": False})
    (ds,) = json.loads(off["ss_datasets"])
    assert off["ss_bucket_info"] == "null" and ds["bucket_info"] is None
    assert (ds["enable_bucket"], ds["min_bucket_reso"], ds["max_bucket_reso"]) == \
        (False, None, None)


def test_regularization_folders_stay_out_of_dataset_dirs(tmp_path):
    make_concept(tmp_path / "t", "4_mira", 2, caption="mira, hat, hat")
    make_concept(tmp_path / "r", "1_woman", 3, caption="woman")
    meta = header(tmp_path / "t", data={"reg_dir": tmp_path / "r"})
    assert json.loads(meta["ss_dataset_dirs"]) == {"4_mira": {"n_repeats": 4, "img_count": 2}}
    # kohya counts regularization images with their folder's repeats, before matching
    assert meta["ss_num_reg_images"] == "3" and meta["ss_num_train_images"] == "8"
    assert json.loads(meta["ss_tag_frequency"]) == {"1_woman": {"woman": 3},
                                                    "4_mira": {"hat": 4, "mira": 2}}
    no_tags = header(tmp_path / "t", data={"reg_dir": tmp_path / "r"},
                     saving={"tag_occurrence": False})
    assert no_tags["ss_tag_frequency"] == "{}"
