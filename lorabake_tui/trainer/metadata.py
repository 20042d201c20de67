"""kohya's header metadata for a LoRA file (every value a string) and the hashes A1111 and
Civitai use to identify files."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any


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


def autov2_hash(path: Path) -> str:
    """A checkpoint's AutoV2 hash: the first 10 hex of sha256 of the whole file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:10]


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


def training_metadata(*, session_id: str, started_at: float, finished_at: float | None,
                      output_name: str, comment: str, steps: int, epoch: int, epochs: int,
                      max_steps: int, learning_rate: float, unet_lr: float, te_lr: float,
                      scheduler: str, network_module: str, network_dim: int,
                      network_alpha: float, network_dropout: float, network_args: dict,
                      clip_skip: int, min_snr_gamma: float, noise_offset: float,
                      optimizer: str, resolution: tuple[int, int], num_train_images: int,
                      batches_per_epoch: int, sd_model_name: str, sd_model_hash: str,
                      new_sd_model_hash: str, dataset_dirs: dict, tag_frequency: dict | None,
                      bucket_info: dict | None) -> dict[str, str]:
    """The ss_* and modelspec.* keys loaders and model sites read (kohya's names)."""
    meta: dict[str, Any] = {
        "ss_session_id": session_id,
        "ss_training_started_at": started_at,
        "ss_training_finished_at": finished_at if finished_at is not None else "",
        "ss_output_name": output_name,
        "ss_training_comment": comment,
        "ss_base_model_version": "sd_v1",
        "ss_v2": False,
        "ss_steps": steps,
        "ss_epoch": epoch,
        "ss_num_epochs": epochs,
        "ss_max_train_steps": max_steps,
        "ss_learning_rate": learning_rate,
        "ss_unet_lr": unet_lr,
        "ss_text_encoder_lr": te_lr,
        "ss_lr_scheduler": scheduler,
        "ss_network_module": network_module,
        "ss_network_dim": network_dim,
        "ss_network_alpha": network_alpha,
        "ss_network_dropout": network_dropout,
        "ss_network_args": network_args,
        "ss_clip_skip": clip_skip,
        "ss_min_snr_gamma": min_snr_gamma,
        "ss_noise_offset": noise_offset,
        "ss_optimizer": optimizer,
        "ss_resolution": f"({resolution[0]}, {resolution[1]})",
        "ss_num_train_images": num_train_images,
        "ss_num_batches_per_epoch": batches_per_epoch,
        "ss_sd_model_name": sd_model_name,
        "ss_sd_model_hash": sd_model_hash,
        "ss_new_sd_model_hash": new_sd_model_hash,
        "ss_dataset_dirs": sorted_keys(dataset_dirs),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": output_name,
        "modelspec.resolution": f"{resolution[0]}x{resolution[1]}",
    }
    if tag_frequency is not None:
        meta["ss_tag_frequency"] = sorted_keys(tag_frequency)
    if bucket_info is not None:
        meta["ss_bucket_info"] = bucket_info
    return stringify(meta)


def add_file_hashes(meta: dict[str, str], path: Path) -> dict[str, str]:
    """sshs_* hashes of a saved LoRA. The data hash does not depend on the header, so the file
    can be rewritten with them added and the hashes still hold."""
    out = dict(meta)
    out["sshs_model_hash"] = safetensors_data_sha256(path)
    out["sshs_legacy_hash"] = legacy_hash(path)
    return out
