"""The mode of every file and folder lorabake creates, under umask 022: 0644 and 0755, as
kohya's files have, so another account (a web UI's service) can read LoRAs, run folders and
exports. mkstemp, mkdtemp and safetensors' save_file would make them 0600 and 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.cli import main as cli_main  # noqa: E402
from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402
from lorabake_tui.trainer.base_model import sd15_config_dir  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402

FILE, FOLDER = 0o644, 0o755


def modes(root: Path, skip: set[Path] = frozenset()) -> dict[str, int]:
    """Every path under `root` (not `skip`, what the test made itself) and its mode bits."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p not in skip:
                out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.lstat().st_mode)
    return out


def wrong(found: dict[str, int], root: Path) -> list[str]:
    return [f"{oct(mode)} {name}" for name, mode in sorted(found.items())
            if mode != (FOLDER if (root / name).is_dir() else FILE)]


def test_every_file_a_run_an_export_and_config_new_create_has_the_default_mode(
        tmp_path, umask, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_dataset(tmp_path, images=1, repeats=2)  # 1 step an epoch
    cfg = write_config(tmp_path, general__epochs=2, general__cache_latents="disk",
                       saving__save_state=True, sampling__every_n_epochs=2,
                       sampling__steps=1, sampling__prompts=["mychar --w 64 --h 64"])
    ours = {p for p in tmp_path.rglob("*")}  # the dataset and config the test wrote
    assert train_main([str(cfg), "--run-dir", str(tmp_path / "out" / "r")]) == exit_codes.DONE
    assert cli_main(["config", "export", str(cfg), "--to", "kohya",
                     str(tmp_path / "kohya")]) == 0
    assert cli_main(["config", "export", str(cfg), "--to", "easy",
                     str(tmp_path / "easy.toml")]) == 0
    assert cli_main(["config", "new", str(tmp_path / "data"), "-o",
                     str(tmp_path / "new.toml")]) == 0
    sd15_config_dir()  # the single-file loader's config folder in the user cache

    found = modes(tmp_path, ours)
    for name in ("out", "out/r", "out/r/state", "out/r/state/adapter_unet.safetensors",
                 "out/r/state/optimizer.pt", "out/r/state/progress.json", "out/r/samples",
                 "out/r/events.jsonl", "out/r/train.log", "out/r/config.toml",
                 "out/r/tiny.safetensors", "out/r/tiny-000001.safetensors",
                 "kohya/config.toml", "kohya/dataset.toml", "kohya/prompts.txt", "easy.toml",
                 "new.toml", "data/.lorabake/latents", "cache/lorabake"):
        assert name in found, f"the run made no {name}: the listing misses a writer"
    assert any(n.startswith("out/r/samples/") and n.endswith(".png") for n in found)
    assert any(n.startswith("cache/lorabake/sd15-config-") and n.endswith("vocab.json")
               for n in found)
    assert any(n.endswith(".pt") and "latents" in n for n in found)

    assert wrong(found, tmp_path) == []
