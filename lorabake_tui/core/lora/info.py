"""`lorabake lora info`: what a LoRA file is. The network type, module counts and ranks come
from the tensor keys and shapes (so a file without metadata still gets them); the training
facts from kohya's `ss_*` metadata, which is also checked against the tensors."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import LorabakeError
from .modules import Module, read_modules
from .read import read_safetensors

TYPES = ("lora", "locon", "loha", "lokr", "ia3", "dylora")
# ss_network_args' `algo` (LyCORIS) -> the type shown
_ALGOS = {"lora": "locon", "locon": "locon", "loha": "loha", "lokr": "lokr", "ia3": "ia3",
          "dylora": "dylora"}
# the key-derived family each type must agree with
_FAMILY = {"lora": "lora", "locon": "lora", "dylora": "lora", "loha": "loha", "lokr": "lokr",
           "ia3": "ia3"}
# training facts: JSON name -> metadata key
TRAINING_KEYS = {
    "resolution": "ss_resolution", "steps": "ss_steps", "max_steps": "ss_max_train_steps",
    "epoch": "ss_epoch", "epochs": "ss_num_epochs", "train_images": "ss_num_train_images",
    "batches_per_epoch": "ss_num_batches_per_epoch", "learning_rate": "ss_learning_rate",
    "unet_lr": "ss_unet_lr", "text_encoder_lr": "ss_text_encoder_lr",
    "optimizer": "ss_optimizer", "scheduler": "ss_lr_scheduler", "clip_skip": "ss_clip_skip",
    "started_at": "ss_training_started_at", "finished_at": "ss_training_finished_at",
}
HASH_KEYS = {"sd_model_hash": "ss_sd_model_hash", "new_sd_model_hash": "ss_new_sd_model_hash",
             "sshs_model_hash": "sshs_model_hash", "sshs_legacy_hash": "sshs_legacy_hash"}
RESIZED_KEY = "lorabake_resized"  # `lora resize` notes the split here (resize.py)
NOT_A_LORA_FIX = "pass a LoRA file (kohya's lora_unet_* / lora_te_* keys)"


@dataclass(slots=True)
class FolderTags:
    folder: str
    distinct: int
    top: list[tuple[str, int]]

    def to_json(self) -> dict:
        return {"folder": self.folder, "distinct": self.distinct,
                "top": [{"tag": t, "count": c} for t, c in self.top]}


@dataclass(slots=True)
class LoraInfo:
    path: Path
    size: int
    type: str  # one of TYPES, or a LyCORIS algo lorabake does not know by name
    type_from: str  # "metadata" | "keys"
    network_module: str | None
    network_args: dict | None
    unit: int | None  # DyLoRA
    dtypes: list[str]
    tensors: int
    modules: dict[str, int]
    dims: list[int]  # distinct ranks of the linear modules (most common first)
    alphas: list[float]
    conv_dims: list[int]
    conv_alphas: list[float]
    output_name: str | None
    comment: str | None
    base_model: str | None
    base_model_version: str | None
    hashes: dict[str, str | None]
    training: dict[str, object]
    tags: list[FolderTags] | None
    metadata_keys: int
    notes: list[str] = field(default_factory=list)

    @property
    def dim(self) -> int | None:
        return self.dims[0] if self.dims else None

    @property
    def alpha(self) -> float | None:
        return self.alphas[0] if self.alphas else None

    @property
    def conv_dim(self) -> int | None:
        return self.conv_dims[0] if self.conv_dims else None

    @property
    def conv_alpha(self) -> float | None:
        return self.conv_alphas[0] if self.conv_alphas else None

    def to_json(self) -> dict:
        return {
            "file": str(self.path), "size": self.size, "type": self.type,
            "type_from": self.type_from, "network_module": self.network_module,
            "network_args": self.network_args, "unit": self.unit, "dtypes": self.dtypes,
            "tensors": self.tensors, "modules": self.modules,
            "dim": self.dim, "alpha": self.alpha, "conv_dim": self.conv_dim,
            "conv_alpha": self.conv_alpha, "dims": self.dims, "alphas": self.alphas,
            "conv_dims": self.conv_dims, "conv_alphas": self.conv_alphas,
            "output_name": self.output_name, "comment": self.comment,
            "base_model": self.base_model, "base_model_version": self.base_model_version,
            "hashes": self.hashes, "training": self.training,
            "tags": None if self.tags is None else [t.to_json() for t in self.tags],
            "metadata_keys": self.metadata_keys, "notes": self.notes,
        }


def lora_info(path: Path, *, top_tags: int = 10) -> LoraInfo:
    f = read_safetensors(path)
    modules = read_modules(f)
    if not modules:
        raise LorabakeError(f"{f.path} holds no LoRA modules ({len(f.tensors)} tensors, none "
                            "named lora_unet_* or lora_te_*)", NOT_A_LORA_FIX)
    meta = f.metadata
    notes: list[str] = []
    args = _network_args(meta, notes)
    kinds = Counter(m.kind for m in modules)
    family = kinds.most_common(1)[0][0]
    if len(kinds) > 1:
        notes.append("modules of several types: " + ", ".join(
            f"{n} {k}" for k, n in kinds.most_common()))
    linear = [m for m in modules if not m.conv]
    conv = [m for m in modules if m.conv]
    key_type = "locon" if family == "lora" and conv else family
    typ, type_from = key_type, "keys"
    meta_type = _type_from_metadata(meta.get("ss_network_module"), args, bool(conv))
    if meta_type is not None:
        if _FAMILY.get(meta_type, meta_type) == family or family == "unknown":
            typ, type_from = meta_type, "metadata"
        else:
            notes.append(f"the metadata says {meta_type} but the tensors are {key_type}; "
                         f"shown as {key_type}")
    unit = _int(args.get("unit")) if args else None
    if typ == "dylora" and unit is None:
        unit = 4  # kohya's default when network_args has none
    info = LoraInfo(
        path=f.path, size=f.size, type=typ, type_from=type_from,
        network_module=meta.get("ss_network_module"), network_args=args, unit=unit,
        dtypes=sorted({t.dtype for t in f.tensors.values()}), tensors=len(f.tensors),
        modules={"total": len(modules),
                 "unet": sum(m.part == "unet" for m in modules),
                 "text_encoder": sum(m.part == "text_encoder" for m in modules),
                 "other": sum(m.part == "other" for m in modules),
                 "linear": len(linear), "conv": len(conv)},
        dims=_common(m.rank for m in linear), alphas=_common(m.alpha for m in linear),
        conv_dims=_common(m.rank for m in conv), conv_alphas=_common(m.alpha for m in conv),
        output_name=meta.get("ss_output_name"), comment=meta.get("ss_training_comment"),
        base_model=meta.get("ss_sd_model_name"),
        base_model_version=meta.get("ss_base_model_version"),
        hashes={k: meta.get(v) for k, v in HASH_KEYS.items()},
        training={k: _value(meta.get(v)) for k, v in TRAINING_KEYS.items()},
        tags=_tags(meta.get("ss_tag_frequency"), top_tags, notes),
        metadata_keys=len(meta), notes=notes)
    if RESIZED_KEY in meta:
        info.notes.append(meta[RESIZED_KEY])
    _cross_check(info, meta, args, modules)
    return info


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            f = float(str(value))
        except ValueError:
            return None
        return int(f) if f.is_integer() else None


def _float(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _value(text: str | None) -> object:
    """A metadata string as a number where it is one ("None" and empty: None)."""
    if text is None or text.strip() in ("", "None"):
        return None
    n = _int(text)
    if n is not None and "." not in text and "e" not in text.lower():
        return n
    f = _float(text)
    return f if f is not None and text.strip().lower() not in ("nan", "inf", "-inf") else text


def _common(values) -> list:
    """Distinct values, most common first (ties: smaller first); None left out."""
    c = Counter(v for v in values if v is not None)
    return [v for v, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]


def _json_object(text: str, note: str, notes: list[str]) -> dict | None:
    """A metadata value that holds a JSON object, or None with `note` added."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        notes.append(note)
        return None
    return value


def _network_args(meta: dict[str, str], notes: list[str]) -> dict | None:
    text = meta.get("ss_network_args")
    if text is None or text.strip() in ("", "None"):
        return None
    return _json_object(text, "ss_network_args is not a JSON object; ignored", notes)


def _type_from_metadata(module: str | None, args: dict | None, has_conv: bool) -> str | None:
    if not module:
        return None
    module = module.strip()
    if module == "networks.dylora":
        return "dylora"
    if module == "networks.lora":
        return "locon" if has_conv or (args and "conv_dim" in args) else "lora"
    if module.startswith("lycoris"):
        algo = str((args or {}).get("algo", "lora")).strip().lower()
        return _ALGOS.get(algo, algo)
    return None


def _tags(text: str | None, top: int, notes: list[str]) -> list[FolderTags] | None:
    if text is None:
        return None
    freq = _json_object(text, "ss_tag_frequency is not a JSON object; no tags shown", notes)
    if freq is None:
        return None
    out = []
    for folder, tags in freq.items():
        if not isinstance(tags, dict):
            continue
        counts = [(str(t), int(c)) for t, c in tags.items()
                  if isinstance(c, int | float) and not isinstance(c, bool)]
        counts.sort(key=lambda tc: (-tc[1], tc[0]))
        out.append(FolderTags(str(folder), len(counts), counts[:max(0, top)]))
    return out


def _cross_check(info: LoraInfo, meta: dict[str, str], args: dict | None,
                 modules: list[Module]) -> None:
    """Notes where the metadata disagrees with the tensors (the tensors are what loads)."""
    def check(key: str, said: object, found: list, what: str) -> None:
        if said is None or not found or len(found) == 1 and math.isclose(
                said, found[0], rel_tol=1e-3):  # fp16 alphas round 0.1 to 0.09998
            return
        have = ", ".join(str(v) for v in found)
        info.notes.append(f"{key} says {said} but the {what} have {have}")

    if info.type in ("ia3",):
        return
    check("ss_network_dim", _int(meta.get("ss_network_dim")), info.dims,
          "linear modules' ranks")
    check("ss_network_alpha", _float(meta.get("ss_network_alpha")), info.alphas,
          "linear modules' alphas")
    if args:
        check("ss_network_args conv_dim", _int(args.get("conv_dim")), info.conv_dims,
              "conv modules' ranks")
        check("ss_network_args conv_alpha", _float(args.get("conv_alpha")), info.conv_alphas,
              "conv modules' alphas")
    missing = sum(m.alpha is None for m in modules if m.kind != "ia3")
    if missing:
        info.notes.append(f"{missing} module(s) have no alpha tensor (loaders then use "
                          "alpha = rank)")

