"""The bundled demo dataset: built once, then reused, so `lorabake demo` is cheap to rerun."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.base.atomic import atomic_write_text
from ..core.base.errors import LorabakeError
from ..core.base.project_files import ProjectFiles
from .draw import build_demo


def ensure_demo(root: Path, *, seed: int = 0) -> tuple[Path, bool]:
    """(root, built): build the demo at `root` unless a demo already lives there."""
    root = Path(root)
    files = ProjectFiles(root)
    if files.demo_marker.is_file():
        return root.resolve(), False
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise LorabakeError(f"{root} exists and is not a lorabake demo",
                            "pick another place with --dir")
    build_demo(root, seed=seed)
    files.state.mkdir(exist_ok=True)
    write_demo_config(root)
    atomic_write_text(files.demo_marker, json.dumps({"seed": seed}))
    return root.resolve(), True


def write_demo_config(root: Path) -> Path:
    """A training config for the demo that runs anywhere: the built-in tiny random model
    (nothing to download), 128 px, 40 steps, so a newcomer can watch a real run on
    a CPU (the LoRA it writes is real but learns nothing useful)."""
    from ..core.config.file import dump_config
    from ..core.config.presets import new_config
    from ..core.dataset.scan import scan_dataset

    cfg = new_config("lora-adamw", scan_dataset(root))
    cfg["general"].update(base_model="builtin:tiny-sd15", mixed_precision="no", batch_size=2,
                          max_steps=40, cache_latents="memory", max_token_length=75)
    cfg["buckets"].update(resolution=128, min=64, max=256, step=64)
    cfg["network"].update(dim=8, alpha=4)
    cfg["saving"].update(output_name="demo", comment="trigger: demochar", every_n_epochs=1)
    # paths relative to the config's own folder (.lorabake/): the demo can be moved or
    # copied and still trains
    cfg["data"]["train_dir"] = ".."
    cfg["saving"]["output_dir"] = f"../../{root.resolve().name}-output"
    path = ProjectFiles(root.resolve()).config
    atomic_write_text(path, "# The demo's config: a tiny random model so the run works on a "
                      "CPU.\n# For a real LoRA set general.base_model to your SD 1.5 "
                      "checkpoint.\n" + dump_config(cfg))
    return path
