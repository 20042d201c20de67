"""Config presets (the guide's recipes) as partial TOML files: bundled in
lorabake_tui/data/config_presets/, and the user's own in ~/.config/lorabake/config-presets/."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from ..base.errors import LorabakeError
from ..base.user_settings import config_dir
from .schema import SETTINGS, defaults

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "config_presets"
DEFAULT_PRESET = "lora-adamw"


def user_dir() -> Path:
    return config_dir() / "config-presets"


def _files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in (BUNDLED, user_dir()):
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found[p.stem] = p  # the user's file of the same name wins
    return found


def list_presets() -> list[str]:
    return sorted(_files())


def load_preset(name: str) -> dict[str, Any]:
    path = _files().get(name)
    if path is None:
        raise LorabakeError(f"unknown preset '{name}'", f"use one of {', '.join(list_presets())}")
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LorabakeError(f"preset {path} is broken: {exc}") from None


def overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for section, values in top.items():
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            out[section].update(copy.deepcopy(values))
        else:
            out[section] = copy.deepcopy(values)
    return out


def preset_config(name: str) -> dict[str, Any]:
    """Defaults with the preset laid over them."""
    return overlay(defaults(), load_preset(name))


def new_config(name: str, dataset) -> dict[str, Any]:
    """A full config from a preset with the data part taken from a scanned dataset."""
    cfg = preset_config(name)
    for st in SETTINGS:  # kohya's rarer arguments appear once they are set
        if st.optional and cfg[st.section].get(st.key) == st.default:
            del cfg[st.section][st.key]
    data = cfg["data"]
    data["train_dir"] = str(dataset.root)
    data["reg_dir"] = str(dataset.reg_root) if dataset.reg_root else ""
    data["caption_extension"] = dataset.caption_ext
    data["subsets"] = subsets_for(dataset)
    # beside the dataset, not in it: a folder without a repeat prefix inside the training
    # root would show up as a problem on the Concepts screen
    cfg["saving"]["output_dir"] = str(dataset.root.parent / f"{dataset.root.name}-output")
    if not cfg["saving"].get("output_name"):
        cfg["saving"]["output_name"] = dataset.root.name
    return cfg


def subsets_for(dataset) -> list[dict[str, Any]]:
    """[[data.subsets]] for every folder kohya would train: named by concept (the folder name
    after its N_ prefix) with no repeats of their own, so the folder's prefix counts and a
    rename (balance, undo) keeps the config valid."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, bool]] = set()
    for c in dataset.concepts:
        if c.repeats is None or c.repeats < 1 or not c.image_count or not c.name:
            continue
        if (c.name, c.is_reg) in seen:
            continue  # two folders of one concept (10_a, 5_a): one subset trains both
        seen.add((c.name, c.is_reg))
        out.append({"concept": c.name, "is_reg": c.is_reg})
    return out
