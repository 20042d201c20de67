"""Saved training state, enough to continue a run with exact counters: adapter weights in
fp32, optimizer, scheduler, grad scaler, RNG states and where in which epoch the run stood.

A save is written to a fresh folder and swapped in by renames, so a crash or a full disk in
the middle leaves the previous state whole: `state/` is always a complete save, and
`state.old/` (only during the swap) is the one before it. The folder and its files get the
umask's modes, like everything else in the run folder (mkdtemp and safetensors' save_file
would make them private).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from ..core.run.folder import STATE_DIR, STATE_OLD_DIR, STATE_TMP_PREFIX

FORMAT = 1


@dataclass(slots=True)
class Progress:
    step: int  # optimizer steps done
    epoch: int  # 0-based epoch the run is in
    batch: int  # batches of that epoch already done (by this process)
    seed: int
    session_id: str
    started_at: float
    total_steps: int
    world_size: int
    epoch_losses: list[float] = field(default_factory=list)
    format: int = FORMAT


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_torch(obj, path: Path) -> None:
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save_state(run_dir: Path, progress: Progress, *, adapters: dict[str, dict], optimizer,
               scheduler, scaler=None) -> Path:
    run_dir = Path(run_dir)
    tmp = run_dir / f"{STATE_TMP_PREFIX}{secrets.token_hex(8)}"
    tmp.mkdir()
    try:
        for name, tensors in adapters.items():
            if tensors:
                _write(tmp / f"adapter_{name}.safetensors",
                       save({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}))
        _save_torch(optimizer.state_dict(), tmp / "optimizer.pt")
        _save_torch(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            _save_torch(scaler.state_dict(), tmp / "scaler.pt")
        name, keys, pos, has_gauss, cached = np.random.get_state()
        # plain lists and tuples only: every file here loads with weights_only=True
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
               "numpy": (name, keys.tolist(), pos, has_gauss, cached)}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        _save_torch(rng, tmp / "rng.pt")
        with open(tmp / "progress.json", "w", encoding="utf-8") as fh:
            json.dump(asdict(progress), fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        state, old = run_dir / STATE_DIR, run_dir / STATE_OLD_DIR
        if state.exists():
            if old.exists():
                shutil.rmtree(old)
            os.rename(state, old)
        os.rename(tmp, state)
        _fsync_dir(run_dir)
        shutil.rmtree(old, ignore_errors=True)
        return state
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def find_state(run_dir: Path) -> Path | None:
    """The newest complete state of a run (a crash during the swap leaves it in state.old)."""
    for name in (STATE_DIR, STATE_OLD_DIR):
        p = Path(run_dir) / name
        if (p / "progress.json").is_file():
            return p
    return None


def read_progress(state_dir: Path) -> Progress:
    data = json.loads((Path(state_dir) / "progress.json").read_text("utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{state_dir}: state format {data.get('format')} is not {FORMAT}")
    return Progress(**data)


def load_adapters(state_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for f in Path(state_dir).glob("adapter_*.safetensors"):
        out[f.stem.removeprefix("adapter_")] = load_file(str(f))
    return out


def load_into(state_dir: Path, *, optimizer, scheduler, scaler=None,
              restore_rng: bool = True) -> None:
    state_dir = Path(state_dir)
    optimizer.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(state_dir / "scheduler.pt", weights_only=True))
    if scaler is not None and (state_dir / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(state_dir / "scaler.pt", weights_only=True))
    if restore_rng:
        rng = torch.load(state_dir / "rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
