"""Checking a training config on its own (no dataset): the values (validate.py), then the
mistakes existing tools accept silently: Prodigy with scale weight norms, cached latents
with colour augmentation, ranks the guide calls too high, a pickle as base model, missing
paths. Every finding names the key, its line and the fix.

What needs the dataset (subsets that name no folder, steps, buckets, captions the trainer
cannot read) is checked with the training plan, in core/project/check.py, which calls this
first; the Config screen, `lorabake config check` and the trainer all go through there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from ..run.folder import RunFolder
from .blocks import BLOCK_KEYS, block_layout, block_mode, network_args
from .checkpoints import has_pickle_suffix, pickle_finding, pickle_in
from .file import ConfigDoc
from .findings import ERROR, WARNING, Finding, ordered
from .schema import (
    BUILTIN_MODELS,
    BUILTIN_PREFIX,
    SETTINGS,
    TRAINABLE_NETWORKS,
    TrainingSettings,
)
from .validate import read_settings

MAX_HEADER = 100 << 20  # safetensors headers are JSON of a few MB at most


def check_settings(doc: ConfigDoc, *, base_dir: Path | None = None, check_paths: bool = True,
                   for_trainer: bool = False) -> tuple[TrainingSettings, list[Finding]]:
    """The typed settings and every finding about them, errors first. Relative paths are
    read against `base_dir` (the config file's folder). `for_trainer`: what our own trainer
    cannot do is an error (for an export to kohya it is only a warning)."""
    settings, findings = read_settings(doc, base_dir=base_dir)

    def add(severity: str, key: str, message: str) -> None:
        findings.append(Finding(severity, key, doc.line(key), message))

    if not settings.invalid:
        # the rules compare settings: on a file with bad values they would misfire on the
        # defaults standing in for them
        _rules(settings, add, for_trainer)
    _export_only(doc, add)
    if check_paths:
        _paths(doc, settings, add)
    return settings, ordered(findings)


def check_config(doc: ConfigDoc, **kw) -> list[Finding]:
    """check_settings without the settings."""
    return check_settings(doc, **kw)[1]


def _rules(s: TrainingSettings, add, for_trainer: bool) -> None:
    net, opt = s.network.type, s.optimizer.type
    if net not in TRAINABLE_NETWORKS:
        add(ERROR if for_trainer else WARNING, "network.type",
            f"the lorabake trainer cannot train {net} yet: export the config to kohya "
            "(`lorabake config export`) or pick lora, locon, loha, lokr or ia3")
    if opt == "AdamW8bit":
        usable = gpu_visible() and importlib.util.find_spec("bitsandbytes") is not None
        add(ERROR if for_trainer and not usable else WARNING, "optimizer.type",
            "AdamW8bit needs bitsandbytes and an NVIDIA GPU" +
            (", and this machine lacks one" if not usable else "") +
            ": plain AdamW works everywhere")
    if opt == "Prodigy" and s.optimizer.scale_weight_norms > 0:
        add(ERROR, "optimizer.scale_weight_norms", "scale weight norms does not work with "
            "Prodigy (the guide: never combine them): set it to 0")
    if opt in ("Prodigy", "DAdaptAdam") and s.optimizer.learning_rate != 1:
        add(WARNING, "optimizer.learning_rate", f"{opt} sets its own step size: use "
            "learning_rate = 1")
    if s.optimizer.learning_rate == 0 and (s.general.unet_lr == 0
                                           or s.general.text_encoder_lr == 0):
        add(WARNING, "optimizer.learning_rate", "learning_rate = 0 leaves what uses it "
            "untrained: set a learning rate (the guide: 1e-4 with AdamW)")
    if net in ("locon", "loha", "lokr"):
        if s.network.conv_dim > 64:
            add(WARNING, "network.conv_dim", "conv_dim above 64 rarely helps and grows the "
                "file: try 16 or 32")
        if s.network.conv_alpha > 32:
            add(WARNING, "network.conv_alpha", "conv_alpha above 32 is unusually strong: "
                "try half of conv_dim")
    if net in ("loha", "lokr") and s.network.dim > 32:
        add(WARNING, "network.dim", f"{net} needs a smaller dim than LoRA: 32 or less")
    _network_rules(s, add)
    if s.network.alpha > s.network.dim:
        add(WARNING, "network.alpha", "alpha above dim makes the update stronger than the "
            "rank: use alpha <= dim (the guide: half of dim)")
    if net == "dylora" and s.network.dim % s.network.dylora_unit:
        add(ERROR, "network.dylora_unit", "DyLoRA dim must be divisible by dylora_unit")
    if s.general.cache_latents != "none" and (s.data.color_aug or s.data.random_crop):
        key = "data.color_aug" if s.data.color_aug else "data.random_crop"
        add(ERROR, key, "cached latents cannot change per step: turn off color_aug and "
            "random_crop, or set general.cache_latents = \"none\"")
    gpu = gpu_visible()
    if s.general.mixed_precision == "fp16":
        if not gpu:
            add(ERROR if for_trainer else WARNING, "general.mixed_precision",
                "fp16 needs an NVIDIA GPU and none is visible here (the trainer refuses it): "
                "use \"bf16\" or \"no\"")
        else:
            add(WARNING, "general.mixed_precision", "fp16 can give NaN losses (black images) "
                "with some models: bf16 avoids it where the GPU supports it")
    if s.buckets.step % 64:
        add(WARNING, "buckets.step", "SD 1.5 wants a bucket step that is a multiple of 64")
    _block_rules(s, add)


def _block_rules(s: TrainingSettings, add) -> None:
    """kohya's block-wise arguments: what networks.lora reads, and what it ignores."""
    n = s.network
    given = [k for k in BLOCK_KEYS if k in network_args(n)]
    if not given:
        return
    if n.type not in ("lora", "locon"):
        add(ERROR, f"network.{given[0]}", f"network.{given[0]}: block weights and block dims "
            f"are kohya's networks.lora arguments (LoRA and LoCon), not {n.type}'s: remove them "
            "or pick lora or locon")
        return
    if (n.conv_block_dims or n.conv_block_alphas) and n.type != "locon":
        key = "network.conv_block_dims" if n.conv_block_dims else "network.conv_block_alphas"
        add(ERROR, key, f"{key} sets the 3x3 convolutions, which only LoCon trains: set "
            "network.type = \"locon\" or remove it")
    if n.conv_block_alphas and not n.conv_block_dims:
        add(WARNING, "network.conv_block_alphas", "conv_block_alphas is used only with "
            "conv_block_dims (kohya ignores it alone): set conv_block_dims too")
    if not block_mode(n):
        key = next(k for k in ("block_alphas", "conv_block_dims", "conv_block_alphas",
                               "block_lr_zero_threshold") if k in given)
        add(WARNING, f"network.{key}", f"network.{key} does nothing without block_dims or a "
            "block LR weight (kohya ignores it too): set block_dims or remove it")
        return
    locon = n.type == "locon"
    layout = block_layout(n, conv_dim=(n.conv_dim or n.dim) if locon else None,
                          conv_alpha=(n.conv_alpha or n.alpha) if locon else None)
    if layout is not None and not any(layout.dims[1:]) and not any(layout.conv_dims or ()) \
            and s.general.train in ("unet", "both"):
        add(ERROR if s.general.train == "unet" else WARNING, "network.block_dims",
                "every UNet block has rank 0 or LR weight 0: the UNet gets no adapter")


def _main_learning_rate(s: TrainingSettings) -> tuple[str, float]:
    """The key and value of the rate the guide's ranges speak of: the UNet's (the text
    encoder's when only it trains), `optimizer.learning_rate` unless overridden."""
    g, lr = s.general, s.optimizer.learning_rate
    if g.train == "text_encoder":
        return ("general.text_encoder_lr", g.text_encoder_lr) if g.text_encoder_lr else \
            ("optimizer.learning_rate", lr)
    return ("general.unet_lr", g.unet_lr) if g.unet_lr else ("optimizer.learning_rate", lr)


def _network_rules(s: TrainingSettings, add) -> None:
    """The guide's ranges for LoKr and IA3 learning rates (adaptive optimizers have their own
    rule: learning_rate = 1), and the settings LyCORIS networks and DyLoRA do not use."""
    net, opt = s.network.type, s.optimizer.type
    if net not in ("loha", "lokr", "ia3", "dylora"):
        return
    ranges = {"lokr": (5e-5, 9e-5, "LoKr"), "ia3": (5e-3, 1e-2, "IA3")}
    if net in ranges and opt in ("AdamW", "AdamW8bit"):
        low, high, what = ranges[net]
        key, lr = _main_learning_rate(s)
        if not low <= lr <= high:
            add(WARNING, key, f"{what} with {opt} wants a learning rate between {low:g} and "
                f"{high:g} (the guide){'; with Prodigy: 1' if net == 'ia3' else ''}")
    if net in ("ia3", "dylora") and s.network.conv_dim:
        add(WARNING, "network.conv_dim", f"{net} trains no convolutions here: conv_dim is "
            "not used (set it to 0)")
    if s.network.dropout:
        add(WARNING, "network.dropout", f"{net} has no network dropout (LyCORIS and kohya's "
            "DyLoRA ignore it too): set it to 0")
    if s.optimizer.scale_weight_norms:
        add(WARNING, "optimizer.scale_weight_norms", "scale weight norms applies to LoRA and "
            f"LoCon only: the {net} trainer ignores it (set it to 0)")


def _export_only(doc: ConfigDoc, add) -> None:
    """A setting only the kohya export uses, written with a value of its own: say so, so
    nobody expects lorabake's trainer to follow it."""
    for st in SETTINGS:
        if not st.export_only:
            continue
        table = doc.data.get(st.section)
        value = table.get(st.key) if isinstance(table, dict) else None
        if value is not None and value != st.default:
            add(WARNING, st.name, f"{st.name} is kept for the kohya export; lorabake's "
                "trainer ignores it")


def _paths(doc: ConfigDoc, s: TrainingSettings, add) -> None:
    base = s.general.base_model
    written = doc.data.get("general", {}).get("base_model") if isinstance(
        doc.data.get("general"), dict) else None
    if base.startswith(BUILTIN_PREFIX):
        if base not in BUILTIN_MODELS:
            add(ERROR, "general.base_model", f"general.base_model: unknown built-in model "
                f"{base} (there is {', '.join(BUILTIN_MODELS)})")
    elif base:
        path = Path(base)
        if has_pickle_suffix(base):
            pass  # refused with its value (validate.py)
        elif (pickled := pickle_in(path)) is not None:  # a renamed pickle, a .bin diffusers part
            add(ERROR, "general.base_model", pickle_finding(pickled))
        elif not path.exists():
            add(ERROR, "general.base_model", f"general.base_model: {written or base} does not "
                "exist: give the path of your SD 1.5 .safetensors or diffusers folder")
        elif path.is_file() and path.suffix.lower() != ".safetensors":
            add(ERROR, "general.base_model", f"general.base_model: {path.name} is not a "
                ".safetensors file or a diffusers folder")
        elif path.is_file() and (problem := safetensors_problem(path)):
            add(ERROR, "general.base_model", f"general.base_model: {path.name} {problem}: "
                "download it again or pick another checkpoint")
        elif path.is_dir() and not (path / "model_index.json").is_file() and \
                not (path / "unet").is_dir():
            add(ERROR, "general.base_model", f"general.base_model: {path} is a folder but not "
                "a diffusers model (no model_index.json)")
    train = s.data.train_dir
    if train is not None and not train.is_dir():
        add(ERROR, "data.train_dir", f"data.train_dir: {train} " +
            ("is not a folder" if train.exists() else "does not exist") +
            ": give the folder that holds the N_name concept folders")
    reg = s.data.reg_dir
    if reg is not None and not reg.is_dir():
        add(ERROR, "data.reg_dir", f"data.reg_dir: {reg} is not a folder: fix the path or "
            "set reg_dir = \"\"")
    resume = s.saving.resume
    if resume is not None and not resume.exists():
        add(ERROR, "saving.resume", f"saving.resume: {resume} does not exist: give a run "
            "folder (or its state folder), or set resume = \"\"")
    elif resume is not None and not (RunFolder(resume).has_state()
                                     or (resume / "progress.json").is_file()):
        add(ERROR, "saving.resume", f"saving.resume: {resume} holds no saved state: a run "
            "saves state when stopped, or with saving.save_state = true")
    out = s.saving.output_dir
    if out is not None:
        problem = _unwritable(out)
        if problem:
            add(ERROR, "saving.output_dir", f"saving.output_dir: {problem}: pick a folder "
                "you can write to")


def gpu_visible() -> bool:
    """An NVIDIA driver answers here (the core cannot ask torch)."""
    return shutil.which("nvidia-smi") is not None


def _unwritable(folder: Path) -> str | None:
    """Why the trainer could not create files in `folder` (or its nearest existing parent)."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a .safetensors file, from its header alone: not one at all, or
    truncated (a download cut short: the tensors end past the end of the file)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "is empty or cut short"
            n = int.from_bytes(head, "little")
            if n < 2 or n > MAX_HEADER or 8 + n > size:
                return "is not a safetensors file (its header length is wrong)"
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as exc:
        return f"cannot be read as safetensors ({exc})"
    if not isinstance(header, dict):
        return "is not a safetensors file (no header table)"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            return f"has a damaged header (tensor {name})"
        end = max(end, int(offsets[1]))
    if 8 + n + end > size:
        return (f"is truncated: its tensors need {8 + n + end} bytes, the file has {size} "
                "(an interrupted download?)")
    return None
