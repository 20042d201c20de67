"""Validating a training config: every finding names the key, its line and the fix.

The checks are the mistakes existing tools accept silently: typos, Prodigy with scale weight
norms, cached latents with colour augmentation, ranks the guide calls too high, and step
counts far from the optimizer's target."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset.balance import MAIN_CONCEPT_LIMIT, OPTIMIZER_TARGETS
from .file import ConfigDoc
from .schema import (
    BUILTIN_MODELS,
    BUILTIN_PREFIX,
    BY_NAME,
    SECTIONS,
    SETTINGS,
    SUBSET_KEYS,
    TRAINABLE_NETWORKS,
)


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # error | warning
    key: str
    line: int | None
    message: str

    def to_json(self) -> dict:
        return {"key": self.key, "line": self.line, "message": self.message}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("str", "path"):
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list)
    return True


def check_config(doc: ConfigDoc, *, dataset=None, check_paths: bool = True,
                 base_dir: Path | None = None, for_trainer: bool = False) -> list[Finding]:
    """All findings, errors first. `dataset`: a scan of the training folder, for the step
    checks (optional). Relative paths are read against `base_dir` (the config file's folder;
    None: the working directory). `for_trainer`: what our own trainer cannot do is an error
    (for an export to kohya it is only a warning)."""
    out: list[Finding] = []

    def add(sev: str, key: str, msg: str) -> None:
        out.append(Finding(sev, key, doc.line(key), msg))

    _check_keys(doc, add)
    _check_values(doc, add)
    if not any(f.severity == "error" and f.key in BY_NAME and "must be" in f.message
               for f in out):
        _check_rules(doc, add, check_paths, base_dir, for_trainer)
    if dataset is not None:
        _check_dataset(doc, dataset, add)
    out.sort(key=lambda f: (f.severity != "error", f.line or 0))
    return out


def _check_keys(doc: ConfigDoc, add) -> None:
    for section, values in doc.data.items():
        if section not in SECTIONS:
            guess = difflib.get_close_matches(section, SECTIONS, n=1)
            add("error", section, f"unknown section [{section}]" +
                (f": did you mean [{guess[0]}]?" if guess else ""))
            continue
        if not isinstance(values, dict):
            add("error", section, f"{section} must be a table ([{section}])")
            continue
        names = [s.key for s in SETTINGS if s.section == section]
        for key in values:
            if section == "data" and key == "subsets":
                continue
            if key not in names:
                guess = difflib.get_close_matches(key, names, n=1)
                add("error", f"{section}.{key}", f"unknown setting {section}.{key}" +
                    (f": did you mean {guess[0]}?" if guess else ""))


def _check_values(doc: ConfigDoc, add) -> None:
    for st in SETTINGS:
        sec = doc.data.get(st.section)
        if not isinstance(sec, dict) or st.key not in sec:
            continue
        v = sec[st.key]
        if not _type_ok(st.type, v):
            add("error", st.name, f"{st.name} must be a {st.type}, not {type(v).__name__} "
                f"({v!r})")
            continue
        if st.choices and v not in st.choices:
            add("error", st.name, f"{st.name} must be one of "
                f"{', '.join(map(str, st.choices))} (found {v!r})")
        if st.min is not None and isinstance(v, int | float) and v < st.min:
            add("error", st.name, f"{st.name} must be at least {st.min:g} (found {v})")
        if st.max is not None and isinstance(v, int | float) and v > st.max:
            add("error", st.name, f"{st.name} must be at most {st.max:g} (found {v})")
    subsets = doc.data.get("data", {}).get("subsets", [])
    if not isinstance(subsets, list):
        add("error", "data.subsets", "data.subsets must be a list of [[data.subsets]] tables")
        return
    for i, sub in enumerate(subsets):
        for key, kind in SUBSET_KEYS.items():
            if key not in sub:
                add("error", "data.subsets", f"subset {i + 1} has no {key}")
            elif not _type_ok(kind, sub[key]):
                add("error", "data.subsets", f"subset {i + 1}: {key} must be a {kind}")
        if isinstance(sub.get("repeats"), int) and sub["repeats"] < 1:
            add("error", "data.subsets", f"subset {i + 1} ({sub.get('folder')}): repeats "
                "must be at least 1 (kohya skips the folder)")


def resolve_path(value: str, base_dir: Path | None) -> Path:
    """A path from a config file: `~` expanded, relative ones read against the file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


def _check_rules(doc: ConfigDoc, add, check_paths: bool, base_dir: Path | None,
                 for_trainer: bool) -> None:
    v = doc.value
    net, opt = v("network.type"), v("optimizer.type")
    if net not in TRAINABLE_NETWORKS:
        add("error" if for_trainer else "warning", "network.type",
            f"the lorabake trainer cannot train {net} yet (LoRA and LoCon only): export the "
            "config to kohya (`lorabake config export`) or pick lora or locon")
    if opt == "AdamW8bit":
        add("warning", "optimizer.type", "AdamW8bit needs bitsandbytes and an NVIDIA GPU; "
            "plain AdamW works everywhere")
    if opt == "Prodigy" and v("optimizer.scale_weight_norms") > 0:
        add("error", "optimizer.scale_weight_norms", "scale weight norms does not work with "
            "Prodigy (the guide: never combine them): set it to 0")
    if opt in ("Prodigy", "DAdaptAdam") and v("optimizer.learning_rate") != 1:
        add("warning", "optimizer.learning_rate", f"{opt} sets its own step size: use "
            "learning_rate = 1")
    if net in ("locon", "loha", "lokr"):
        if v("network.conv_dim") > 64:
            add("warning", "network.conv_dim", "conv_dim above 64 rarely helps and grows the "
                "file: try 16 or 32")
        if v("network.conv_alpha") > 32:
            add("warning", "network.conv_alpha", "conv_alpha above 32 is unusually strong: "
                "try half of conv_dim")
    if net in ("loha", "lokr") and v("network.dim") > 32:
        add("warning", "network.dim", f"{net} needs a smaller dim than LoRA: 32 or less")
    if net == "ia3":
        lr = v("optimizer.learning_rate")
        if opt in ("AdamW", "AdamW8bit") and not 5e-3 <= lr <= 1e-2:
            add("warning", "optimizer.learning_rate", "IA3 with AdamW wants a learning rate "
                "between 5e-3 and 1e-2")
    if v("network.alpha") > v("network.dim"):
        add("warning", "network.alpha", "alpha above dim makes the update stronger than the "
            "rank: use alpha <= dim (the guide: half of dim)")
    if net == "dylora" and v("network.dim") % v("network.dylora_unit"):
        add("error", "network.dylora_unit", "DyLoRA dim must be divisible by dylora_unit")
    if v("general.cache_latents") != "none" and (v("data.color_aug") or v("data.random_crop")):
        key = "data.color_aug" if v("data.color_aug") else "data.random_crop"
        add("error", key, "cached latents cannot change per step: turn off color_aug and "
            "random_crop, or set general.cache_latents = \"none\"")
    if not v("saving.output_name"):
        add("error", "saving.output_name", "no output name: set saving.output_name (the "
            "LoRA's file name)")
    if v("general.mixed_precision") == "fp16":
        add("warning", "general.mixed_precision", "fp16 can give NaN losses (black images) "
            "with some models: bf16 avoids it where the GPU supports it")
    base = v("general.base_model")
    if base.lower().endswith(".ckpt"):
        add("error", "general.base_model", "a .ckpt file is a pickle that can run code: "
            "convert it to .safetensors first")
    if check_paths:
        for key in ("general.base_model", "data.train_dir"):
            p = v(key)
            if not p:
                add("error", key, f"{key} is empty: set the path")
            elif key == "general.base_model" and p.startswith(BUILTIN_PREFIX):
                if p not in BUILTIN_MODELS:
                    add("error", key, f"{key}: unknown built-in model {p} (there is "
                        f"{', '.join(BUILTIN_MODELS)})")
            elif not resolve_path(p, base_dir).exists():
                add("error", key, f"{key}: {p} does not exist")
        reg = v("data.reg_dir")
        if reg and not resolve_path(reg, base_dir).is_dir():
            add("error", "data.reg_dir", f"data.reg_dir: {reg} is not a folder")
    for st in SETTINGS:
        if not st.supported and doc.data.get(st.section, {}).get(st.key) not in (None,
                                                                                 st.default):
            add("error", st.name, f"{st.name} is not supported by the trainer yet")
    if v("buckets.step") % 64:
        add("warning", "buckets.step", "SD 1.5 wants a bucket step that is a multiple of 64")


def _check_dataset(doc: ConfigDoc, dataset, add) -> None:
    from ..base.errors import LorabakeError
    from ..buckets.assign import BucketSettings, assign_all, dataset_items

    v = doc.value
    opt, net = v("optimizer.type"), v("network.type")
    target = OPTIMIZER_TARGETS["prodigy" if opt in ("Prodigy", "DAdaptAdam") else "adamw"]
    if net == "ia3":
        target //= 2
    total = 0
    for c in dataset.train_concepts:
        s = c.samples
        total += s
        if s and not target / 2.5 <= s <= target * 2.5:
            add("warning", "data.subsets", f"{c.folder}: {s} samples per epoch, far from "
                f"{opt}'s ~{target} per concept: balance the repeats (Concepts screen)")
    if total > MAIN_CONCEPT_LIMIT:
        add("warning", "data.subsets", f"{total} samples per epoch in all: above "
            f"{MAIN_CONCEPT_LIMIT} the main concept tends to burn")
    if v("buckets.enable"):
        res = v("buckets.resolution")
        try:
            report = assign_all(dataset_items(dataset)[0], BucketSettings(
                (res, res), v("buckets.min"), v("buckets.max"), v("buckets.step"),
                v("buckets.no_upscale"), v("general.batch_size")))
        except LorabakeError as exc:
            add("error", "buckets.min", str(exc))
            return
        small = [k for k in report.buckets if report.samples(k) < v("general.batch_size")]
        if small:
            add("warning", "general.batch_size", f"{len(small)} bucket(s) hold fewer samples "
                "than the batch size")
