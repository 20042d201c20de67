"""The bundled demo dataset: built once, then reused, so `lorabake demo` is cheap to rerun."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_write_text
from .demo import build_demo
from .errors import LorabakeError
from .journal import STATE_DIRNAME

MARKER = "demo.json"


def ensure_demo(root: Path, *, seed: int = 0) -> tuple[Path, bool]:
    """(root, built): build the demo at `root` unless a demo already lives there."""
    root = Path(root)
    if (root / STATE_DIRNAME / MARKER).is_file():
        return root.resolve(), False
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise LorabakeError(f"{root} exists and is not a lorabake demo",
                            "pick another place with --dir")
    build_demo(root, seed=seed)
    (root / STATE_DIRNAME).mkdir(exist_ok=True)
    atomic_write_text(root / STATE_DIRNAME / MARKER, json.dumps({"seed": seed}))
    return root.resolve(), True
