"""The LoRA files a training run left in its folder, and what the run trained on (base model,
clip skip, output name, trigger), read from the config snapshot the trainer wrote there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.errors import LorabakeError
from ..config.file import load_config
from ..config.validate import read_settings
from ..run.folder import LORA_SUFFIX, RunFolder, lora_kind
from .request import LoraChoice


@dataclass(frozen=True, slots=True)
class RunInfo:
    path: Path
    output_name: str
    base: str
    clip_skip: int
    prompts: tuple[str, ...]  # the run's sampling prompts (kohya options stripped)
    train_dir: Path | None  # the dataset it trained on


def run_info(run_dir: Path | str) -> RunInfo:
    run = RunFolder(Path(run_dir))
    snap = run.config_snapshot
    if not snap.is_file():
        raise LorabakeError(f"{run.path}: not a lorabake run folder (no {snap.name})",
                            "give the folder a training run wrote, or LoRA files with --model")
    settings, _ = read_settings(load_config(snap), base_dir=snap.parent)
    prompts = tuple(p.split(" --", 1)[0].strip() for p in settings.sampling.prompts)
    return RunInfo(run.path, settings.saving.output_name, settings.general.base_model,
                   settings.general.clip_skip, tuple(p for p in prompts if p),
                   settings.data.train_dir)


def run_loras(run_dir: Path | str, output_name: str | None = None) -> list[LoraChoice]:
    """The run's epoch files in epoch order, then its final file; step files (a stopped run)
    come before the final one, labelled by step."""
    folder = Path(run_dir)
    epochs, steps, finals = [], [], []
    try:
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(LORA_SUFFIX))
    except OSError as exc:
        raise LorabakeError(f"{folder}: {exc.strerror or exc}") from None
    for name in names:
        kind, n = lora_kind(output_name, name)
        path = str(folder / name)
        if kind == "epoch":
            epochs.append(LoraChoice(path, f"epoch {n}", n))
        elif kind == "step":
            steps.append(LoraChoice(path, f"step {n}"))
        elif kind == "final":
            finals.append(LoraChoice(path, "final"))
    epochs.sort(key=lambda c: c.epoch or 0)
    return epochs + steps + finals


def file_choices(paths: list[str]) -> list[LoraChoice]:
    """Loose LoRA files given on the command line, labelled by their names."""
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise LorabakeError(f"{p}: no such file", "give LoRA .safetensors files or a run "
                                "folder")
        kind, n = lora_kind(None, path.name)
        label = f"epoch {n}" if kind == "epoch" else path.stem
        out.append(LoraChoice(str(path.resolve()), label, n if kind == "epoch" else None))
    return out
