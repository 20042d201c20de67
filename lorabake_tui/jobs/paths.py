"""Where the job registry lives: the user's state dir, shared by the UI, the CLI and the
supervisor (so every process sees the same jobs whatever folder it was started in)."""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "jobs.sqlite"
LOCK_NAME = "supervisor.lock"


def state_dir() -> Path:
    """$LORABAKE_STATE_DIR, else $XDG_STATE_HOME/lorabake, else ~/.local/state/lorabake."""
    explicit = os.environ.get("LORABAKE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "lorabake"


def ensure_state_dir(path: Path | None = None) -> Path:
    d = Path(path) if path is not None else state_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def db_path(sdir: Path | None = None) -> Path:
    return (Path(sdir) if sdir is not None else state_dir()) / DB_NAME


def configs_dir(sdir: Path) -> Path:
    """Immutable config snapshots, one per submitted job."""
    return Path(sdir) / "configs"


def lock_path(sdir: Path) -> Path:
    return Path(sdir) / LOCK_NAME
