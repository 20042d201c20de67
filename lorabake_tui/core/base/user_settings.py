"""User settings (theme, image renderer) in the user's config dir, remembered between runs."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomli_w

from .atomic import atomic_write_text

IMAGE_MODES = ("auto", "sixel", "tgp", "halfcell", "none")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lorabake"


@dataclass(slots=True)
class Settings:
    theme: str = "lorabake-dark"
    images: str = "auto"
    # binding id -> keys, e.g. {"concepts.balance": "B"}: remaps any key that has an id
    keymap: dict[str, str] = field(default_factory=dict)
    notify_on_finish: bool = True  # bell + notice when a training job ends
    # where "keep this epoch" (Evaluate) copies a LoRA file: the folder A1111 or ComfyUI
    # loads LoRAs from; "" until the user sets it
    keep_folder: str = ""

    @classmethod
    def load(cls) -> Settings:
        path = config_dir() / "settings.toml"
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return cls()  # a broken settings file must never stop the workbench
        s = cls()
        if isinstance(data.get("theme"), str):
            s.theme = data["theme"]
        if data.get("images") in IMAGE_MODES:
            s.images = data["images"]
        if isinstance(data.get("notify_on_finish"), bool):
            s.notify_on_finish = data["notify_on_finish"]
        if isinstance(data.get("keep_folder"), str):
            s.keep_folder = data["keep_folder"]
        keymap = data.get("keymap")
        if isinstance(keymap, dict):
            s.keymap = {k: v for k, v in keymap.items() if isinstance(v, str)}
        return s

    def save(self) -> None:
        d = config_dir()
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "settings.toml", tomli_w.dumps(asdict(self)))
