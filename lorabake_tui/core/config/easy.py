"""LoRA_Easy_Training_Scripts' saved TOML, both ways: [[subsets]], [train_mode] and one table
per widget ([general_args.args], [general_args.dataset_args], [network_args.args], ...).

Its backend turns the widgets into sd-scripts arguments (nested optimizer/network/scheduler
tables become "k=v" lists, falsy values are dropped), so the import converts the file into the
kohya form and reads it with config_kohya.from_kohya, then takes the UI-only keys
(warmup_ratio, tag_occurrence) itself. Choices:

- Optimizer arguments are STRINGS ("0.01", "True", "(0.9, 0.999)"), as its optimizer widget
  saves them. Network arguments keep their native types (algo a string, conv_dim an int,
  conv_alpha a float), as its network widget saves and reloads them (a spin box cannot load
  "8"); the import accepts either.
- cosine_annealing_warm_restarts becomes its own CosineAnnealingWarmupRestarts with the cycles,
  gamma 1 (no decay) and min_lr 0: the backend computes the cycle length and the warmup from
  the cycles and warmup_ratio, so no step count is needed.
- The caption settings go on every subset (it has no dataset-wide table for them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from ..base.atomic import atomic_write_text
from ..base.errors import LorabakeError
from .kohya import (
    LYCORIS,
    SubsetDir,
    from_kohya,
    lit,
    network_spec,
    optimizer_values,
    prompts_text,
    refuse_existing,
    require_training_folders,
)
from .schema import TrainingSettings

EASY_WARM_RESTARTS = "LoraEasyCustomOptimizer.CustomOptimizers.CosineAnnealingWarmupRestarts"
_WIDGETS = ("general_args", "network_args", "optimizer_args", "saving_args", "bucket_args",
            "noise_args", "sample_args", "logging_args")


def is_easy(data: dict[str, Any]) -> bool:
    """A LoRA_Easy file: [train_mode] or any of its widget tables."""
    return "train_mode" in data or any(isinstance(data.get(w), dict) for w in _WIDGETS)


def to_easy(s: TrainingSettings, subsets: list[SubsetDir], *,
            prompts_file: str | Path | None = None,
            notes: list[str] | None = None) -> dict[str, Any]:
    """The LoRA_Easy TOML of our config. `subsets`: the trained folders (the plan's);
    `prompts_file`: where the sample prompts will be (write_easy writes it); `notes` collects
    what could not be carried exactly."""
    notes = [] if notes is None else notes
    g, d, n, o = s.general, s.data, s.network, s.optimizer
    z, b, sv, sm, lg = s.noise, s.buckets, s.saving, s.sampling, s.logging
    require_training_folders(subsets, "LoRA_Easy")
    out_subsets = []
    for sub in subsets:
        entry: dict[str, Any] = {
            "name": sub.image_dir.name, "image_dir": str(sub.image_dir),
            "num_repeats": sub.repeats, "keep_tokens": d.keep_tokens,
            "caption_extension": d.caption_extension,
            "shuffle_caption": d.shuffle_caption, "flip_aug": d.flip_aug,
            "color_aug": d.color_aug, "random_crop": d.random_crop, "is_reg": sub.is_reg,
            "caption_dropout_rate": d.caption_dropout_rate,
            "caption_tag_dropout_rate": d.caption_tag_dropout_rate,
            "token_warmup_min": d.token_warmup_min, "token_warmup_step": d.token_warmup_step,
        }
        if d.keep_tokens_separator:
            entry["keep_tokens_separator"] = d.keep_tokens_separator
        out_subsets.append(entry)

    general: dict[str, Any] = {
        "pretrained_model_name_or_path": g.base_model, "mixed_precision": g.mixed_precision,
        "seed": g.seed, "clip_skip": g.clip_skip, "max_train_epochs": g.epochs,
        "max_token_length": g.max_token_length,
        "prior_loss_weight": 1.0,  # its general widget cannot load a file without it
    }
    general["xformers" if g.attention == "xformers" else "sdpa"] = True
    if o.gradient_accumulation_steps > 1:
        general["gradient_accumulation_steps"] = o.gradient_accumulation_steps
    if g.gradient_checkpointing:
        general["gradient_checkpointing"] = True
    if g.cache_latents in ("memory", "disk"):
        general["cache_latents"] = True
    if g.cache_latents == "disk":
        general["cache_latents_to_disk"] = True
    if sv.comment:
        general["training_comment"] = sv.comment

    module, net_args = network_spec(s)
    network: dict[str, Any] = {"network_dim": n.dim, "network_alpha": n.alpha}
    if n.dropout > 0:
        if n.type in LYCORIS:  # its network widget: LyCORIS dropout is a network argument
            net_args["dropout"] = n.dropout
        else:
            network["network_dropout"] = n.dropout
    if g.train == "unet":
        network["network_train_unet_only"] = True
    elif g.train == "text_encoder":
        network["network_train_text_encoder_only"] = True
    if net_args:
        network["network_args"] = net_args

    optimizer: dict[str, Any] = {"optimizer_type": o.type}
    if o.scheduler == "cosine_annealing_warm_restarts":
        optimizer["lr_scheduler_type"] = EASY_WARM_RESTARTS
        optimizer["lr_scheduler_args"] = {"min_lr": 0.0, "gamma": 1.0}
    else:
        optimizer["lr_scheduler"] = o.scheduler
    optimizer.update({"learning_rate": o.learning_rate,
                      "lr_scheduler_num_cycles": o.scheduler_cycles,
                      "max_grad_norm": o.max_grad_norm})
    if o.max_grad_norm == 0:
        notes.append("max_grad_norm = 0 is dropped by LoRA_Easy's backend (falsy values are), "
                     "so kohya clips at 1.0 there")
    for key in ("unet_lr", "text_encoder_lr"):
        if getattr(g, key) > 0:
            optimizer[key] = getattr(g, key)
    for key in ("min_snr_gamma", "scale_weight_norms", "warmup_ratio"):
        if getattr(o, key) > 0:
            optimizer[key] = getattr(o, key)
    optimizer["optimizer_args"] = {k: lit(v) for k, v in optimizer_values(s).items()}

    output_dir = sv.output_dir or Path("output")
    saving: dict[str, Any] = {"output_dir": str(output_dir)}
    if sv.output_name:
        saving["output_name"] = sv.output_name
    saving.update({"save_precision": sv.precision, "save_model_as": "safetensors",
                   "save_every_n_epochs": sv.every_n_epochs})
    if sv.keep_last > 0:
        saving["save_last_n_epochs"] = sv.keep_last
    if sv.save_state:
        saving["save_state"] = True
    if sv.resume is not None:
        saving["resume"] = str(sv.resume)
    if sv.tag_occurrence:
        saving["tag_occurrence"] = True
        saving["tag_file_location"] = str(output_dir)

    noise: dict[str, Any] = {}
    if z.offset > 0:
        noise["noise_offset"] = z.offset
    if z.multires_iterations > 0:
        noise["multires_noise_iterations"] = z.multires_iterations
    noise["multires_noise_discount"] = z.multires_discount

    out: dict[str, Any] = {
        "subsets": out_subsets,
        "train_mode": {"train_mode": "lora"},
        "general_args": {"args": general, "dataset_args": {
            "resolution": b.resolution, "batch_size": g.batch_size}},
        "network_args": {"args": network},
        "optimizer_args": {"args": optimizer},
        "saving_args": {"args": saving},
        "bucket_args": {"dataset_args": {
            "enable_bucket": b.enable, "min_bucket_reso": b.min, "max_bucket_reso": b.max,
            "bucket_reso_steps": b.step, "bucket_no_upscale": b.no_upscale}},
        "noise_args": {"args": noise},
    }
    prompts = [p for p in sm.prompts if p.strip()]
    if sm.every_n_epochs > 0 or prompts:
        sample: dict[str, Any] = {"sample_sampler": "ddim"}
        if sm.every_n_epochs > 0:
            sample["sample_every_n_epochs"] = sm.every_n_epochs
        if prompts and prompts_file is not None:
            sample["sample_prompts"] = str(prompts_file)
        elif prompts:
            notes.append("sample prompts need a prompts file: none given, so not written")
        out["sample_args"] = {"args": sample}
    if lg.tensorboard:
        out["logging_args"] = {"args": {"log_with": "tensorboard",
                                        "logging_dir": str(output_dir / "logs")}}
    return out


def prompts_path_for(out: Path) -> Path:
    """Where write_easy puts the sample prompts: beside OUT.toml as OUT-prompts.txt."""
    return out.with_name(f"{out.stem}-prompts.txt")


def write_easy(s: TrainingSettings, subsets: list[SubsetDir], out: Path | str, *,
               force: bool = False, notes: list[str] | None = None) -> Path:
    """OUT.toml (and OUT-prompts.txt with sample prompts), written atomically; existing files
    are refused unless `force`."""
    out = Path(out).expanduser().absolute()
    prompts = [p for p in s.sampling.prompts if p.strip()]
    prompts_file = prompts_path_for(out) if prompts else None
    data = to_easy(s, subsets, prompts_file=prompts_file, notes=notes)
    refuse_existing([out] + ([prompts_file] if prompts_file else []), force)
    if not out.parent.is_dir():
        raise LorabakeError(f"{out.parent} is not a folder")
    if prompts_file is not None:
        atomic_write_text(prompts_file, prompts_text(prompts, s.sampling.steps))
    atomic_write_text(out, tomli_w.dumps(data))
    return out


def _table(data: dict[str, Any], widget: str, part: str = "args") -> dict[str, Any]:
    t = data.get(widget)
    t = t.get(part) if isinstance(t, dict) else None
    return dict(t) if isinstance(t, dict) else {}


def _kv(values: Any, *, capitalize: bool = False) -> list[str] | Any:
    """Its nested tables as the backend hands them to sd-scripts: "k=v" strings."""
    if not isinstance(values, dict):
        return values
    out = []
    for k, v in values.items():
        if isinstance(v, str) and capitalize and v in ("true", "false"):
            v = v.capitalize()
        out.append(f"{k}={v}")
    return out


def from_easy(data: dict[str, Any], *, base_dir: Path | None = None,
              notes: list[str] | None = None) -> dict[str, Any]:
    """Our config from a LoRA_Easy TOML (parsed)."""
    notes = [] if notes is None else notes
    if not is_easy(data):
        raise LorabakeError("not a LoRA_Easy_Training_Scripts file (no [train_mode] or "
                            "[general_args] tables)")
    mode = data.get("train_mode", {})
    if isinstance(mode, dict) and mode.get("train_mode", "lora") != "lora":
        raise LorabakeError(f"train_mode '{mode.get('train_mode')}' is not LoRA training")
    general = _table(data, "general_args")
    if general.get("sdxl") or general.get("v2"):
        raise LorabakeError("an SDXL or SD 2 config: lorabake trains SD 1.5 only")
    network = _table(data, "network_args")
    optimizer = _table(data, "optimizer_args")
    saving = _table(data, "saving_args")
    flat: dict[str, Any] = {}
    for part in (general, network, optimizer, saving, _table(data, "noise_args"),
                 _table(data, "sample_args"), _table(data, "logging_args")):
        flat.update(part)
    net_args = network.get("network_args") or {}
    if isinstance(net_args, dict) and "network_module" not in flat:
        # as its backend picks the module
        flat["network_module"] = "lycoris.kohya" if "algo" in net_args else \
            "networks.dylora" if "unit" in net_args else "networks.lora"
    flat["network_args"] = _kv(net_args)
    flat["optimizer_args"] = _kv(optimizer.get("optimizer_args") or {}, capitalize=True)
    flat.pop("warmup_ratio", None)
    subsets = []
    for sub in data.get("subsets") or []:
        if isinstance(sub, dict):
            subsets.append({k: v for k, v in sub.items() if k != "name"})
    dataset_general = {**_table(data, "general_args", "dataset_args"),
                       **_table(data, "bucket_args", "dataset_args")}
    dataset = {"general": dataset_general, "datasets": [{"subsets": subsets}]}
    out = from_kohya(flat, dataset, base_dir=base_dir, notes=notes)
    out["optimizer"]["warmup_ratio"] = float(optimizer.get("warmup_ratio") or 0.0)
    out["saving"]["tag_occurrence"] = bool(saving.get("tag_occurrence", False))
    return out
