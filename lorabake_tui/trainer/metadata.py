"""kohya's header metadata for a LoRA file (every value a string) and the hashes A1111 and
Civitai use to identify files. The dataset tables live in metadata_datasets.py."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.config.kohya import network_spec, optimizer_values
from ..core.config.schema import TrainingSettings
from ..core.project.plan import TrainingPlan
from .data import TrainData
from .metadata_datasets import bucket_info, dataset_dirs, datasets, num_reg_images, tag_frequency


def safetensors_data_sha256(path: Path) -> str:
    """sshs_model_hash: sha256 of the tensor data, i.e. the bytes after the header."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n)
        h = hashlib.sha256()
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def legacy_hash(path: Path) -> str:
    """The old 8-hex hash: sha256 of the 64 KiB at offset 1 MiB (also ss_sd_model_hash)."""
    with open(path, "rb") as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]


def file_sha256(path: Path) -> str:
    """sha256 of the whole file: ss_new_sd_model_hash (kohya's calculate_sha256); its first
    10 hex are the AutoV2 hash A1111 and Civitai show."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()



def sorted_keys(value: Any) -> Any:
    """`value` with the keys of every dict in it sorted: tables built from a folder listing or
    a set of tags (ss_tag_frequency, ss_dataset_dirs) then serialize the same on every run.
    kohya keeps first-seen order, which follows the listing; its readers (A1111, ComfyUI,
    model sites) parse the JSON, so the order is free to choose."""
    if isinstance(value, Mapping):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def stringify(meta: Mapping[str, Any]) -> dict[str, str]:
    """safetensors metadata must be str -> str: JSON for structures, str() for the rest."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict | list):
            out[k] = json.dumps(v, ensure_ascii=False)
        elif isinstance(v, bool):
            out[k] = "True" if v else "False"
        elif v is None:
            out[k] = "None"
        else:
            out[k] = str(v)
    return out


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the header needs beyond the settings and the plan: the run's identity, the save
    in hand, and what the trainer built (the network's arguments, the optimizer's class)."""

    session_id: str
    started_at: float
    saved_at: float  # this save: ss_training_finished_at and modelspec.date, as kohya
    steps: int
    epoch: int
    network_args: Mapping[str, str]  # kohya's network_args as strings; empty: no key
    optimizer_class: str  # module.Class, e.g. torch.optim.adamw.AdamW
    sd_model_name: str
    sd_model_hash: str | None  # None (a built-in model, a folder): no hash keys
    new_sd_model_hash: str | None  # the full sha256 of the checkpoint file


def optimizer_class(optimizer: Any) -> str:
    """The optimizer's class as kohya names it, looking through accelerate's wrapper."""
    cls = type(getattr(optimizer, "optimizer", optimizer))
    return f"{cls.__module__}.{cls.__name__}"


def session_number(session_id: str) -> int:
    """kohya's session id is a random integer below 2**32; ours is a uuid kept in the saved
    state, so the number is derived from it (a resumed run keeps it)."""
    return int(hashlib.sha256(session_id.encode()).hexdigest()[:8], 16)


def _off(value: float) -> float | None:
    """Our "0 means off" settings: kohya leaves them unset, which it writes as None."""
    return value if value else None


def training_metadata(s: TrainingSettings, plan: TrainingPlan, data: TrainData,
                      run: RunFacts) -> dict[str, str]:
    """Every key kohya's train_network.py writes for the same run from lorabake's kohya
    export (a --dataset_config run of an SD1.5 LoRA), in its formats, plus ss_resolution and
    ss_bucket_info, which kohya writes only without a dataset config but which A1111's
    metadata view reads. Settings lorabake does not have carry kohya's default."""
    g, d, o, z, b = s.general, s.data, s.optimizer, s.noise, s.buckets
    module, _ = network_spec(s)
    opt_args = ",".join(f"{k}={v}" for k, v in optimizer_values(s).items())
    # kohya's len(train_dataloader): batches per process per epoch, before accumulation
    batches = dataclasses.replace(plan, grad_accum=1).steps_per_epoch
    tags = sorted_keys(tag_frequency(data)) if s.saving.tag_occurrence else {}
    buckets = bucket_info(s, data.report)
    meta: dict[str, Any] = {
        "ss_session_id": session_number(run.session_id),
        "ss_training_started_at": run.started_at,
        "ss_output_name": s.saving.output_name,
        "ss_learning_rate": o.learning_rate,
        "ss_text_encoder_lr": _off(g.text_encoder_lr),
        "ss_unet_lr": _off(g.unet_lr),
        "ss_num_train_images": plan.train_samples,
        "ss_num_validation_images": 0,
        "ss_num_reg_images": num_reg_images(plan),
        "ss_num_batches_per_epoch": batches,
        "ss_num_epochs": plan.epochs,
        "ss_gradient_checkpointing": g.gradient_checkpointing,
        "ss_gradient_accumulation_steps": plan.grad_accum,
        "ss_max_train_steps": plan.total_steps,
        "ss_lr_warmup_steps": plan.warmup_steps,
        "ss_lr_scheduler": o.scheduler,
        "ss_network_module": module,
        "ss_network_dim": s.network.dim,
        "ss_network_alpha": s.network.alpha,
        "ss_network_dropout": _off(s.network.dropout),
        "ss_mixed_precision": g.mixed_precision,
        "ss_full_fp16": False,
        "ss_v2": False,
        "ss_base_model_version": "sd_v1",
        "ss_clip_skip": g.clip_skip,
        "ss_max_token_length": None if g.max_token_length == 75 else g.max_token_length,
        "ss_cache_latents": g.cache_latents != "none",
        "ss_seed": g.seed,
        "ss_lowram": False,
        "ss_noise_offset": _off(z.offset),
        "ss_multires_noise_iterations": _off(z.multires_iterations),
        "ss_multires_noise_discount": z.multires_discount,
        "ss_adaptive_noise_scale": None,
        "ss_zero_terminal_snr": False,
        "ss_training_comment": s.saving.comment or None,
        "ss_sd_scripts_commit_hash": "(unknown)",  # not sd-scripts: see implementation_version
        "ss_optimizer": run.optimizer_class + (f"({opt_args})" if opt_args else ""),
        "ss_max_grad_norm": o.max_grad_norm,
        "ss_caption_dropout_rate": d.caption_dropout_rate,
        "ss_caption_dropout_every_n_epochs": 0,
        "ss_caption_tag_dropout_rate": d.caption_tag_dropout_rate,
        "ss_face_crop_aug_range": None,
        "ss_prior_loss_weight": d.prior_loss_weight,
        "ss_min_snr_gamma": _off(o.min_snr_gamma),
        "ss_scale_weight_norms": _off(o.scale_weight_norms),
        "ss_ip_noise_gamma": None,
        "ss_debiased_estimation": False,
        "ss_noise_offset_random_strength": False,
        "ss_ip_noise_gamma_random_strength": False,
        "ss_loss_type": "l2",
        "ss_huber_schedule": "snr",
        "ss_huber_scale": 1.0,
        "ss_huber_c": 0.1,
        "ss_fp8_base": False,
        "ss_fp8_base_unet": False,
        "ss_validation_seed": None,
        "ss_validation_split": 0.0,
        "ss_max_validation_steps": None,
        "ss_validate_every_n_epochs": None,
        "ss_validate_every_n_steps": None,
        "ss_resize_interpolation": None,
        "ss_datasets": datasets(s, plan, tags, buckets),
        "ss_tag_frequency": tags,
        "ss_dataset_dirs": dict(sorted(dataset_dirs(plan).items())),
        "ss_resolution": f"({b.resolution}, {b.resolution})",
        "ss_bucket_info": json.dumps(buckets),  # JSON even when None: "null", as kohya
    }
    if run.network_args:
        meta["ss_network_args"] = dict(run.network_args)
    if run.sd_model_hash is not None:
        meta["ss_sd_model_hash"] = run.sd_model_hash
    if run.new_sd_model_hash is not None:
        meta["ss_new_sd_model_hash"] = run.new_sd_model_hash
    meta["ss_sd_model_name"] = run.sd_model_name
    meta["ss_training_finished_at"] = run.saved_at
    meta["ss_steps"] = run.steps
    meta["ss_epoch"] = run.epoch
    meta.update(modelspec(s, run.saved_at))
    return stringify(meta)


def modelspec(s: TrainingSettings, saved_at: float) -> dict[str, str]:
    """The modelspec 1.0.1 keys kohya writes for an SD1.5 LoRA. The date is local time
    without microseconds, as kohya writes it; the resolution is the one trained at."""
    res = s.buckets.resolution
    return {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": s.saving.output_name,
        "modelspec.resolution": f"{res}x{res}",
        "modelspec.date": datetime.datetime.fromtimestamp(int(saved_at)).isoformat(),
        "modelspec.prediction_type": "epsilon",
        "modelspec.encoder_layer": str(s.general.clip_skip),
        "modelspec.implementation_version": f"lorabake/{__version__}",
    }


def add_file_hashes(meta: dict[str, str], path: Path) -> dict[str, str]:
    """sshs_* hashes of a saved LoRA. The data hash does not depend on the header, so the file
    can be rewritten with them added and the hashes still hold."""
    out = dict(meta)
    out["sshs_model_hash"] = safetensors_data_sha256(path)
    out["sshs_legacy_hash"] = legacy_hash(path)
    return out
