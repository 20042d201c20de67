"""`lorabake grid` and `lorabake probe` end to end on CPU: a real tiny run (builtin:tiny-sd15,
three epochs), its files drawn by the real render engine through the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from lorabake_tui.cli.main import main as cli  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402

SMALL = ["--steps", "3", "--size", "64x64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_dataset(root)
        cfg = write_config(root, general__epochs=3, optimizer__learning_rate=3e-2)
        assert train_main([str(cfg), "--run-dir", str(root / "run")]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "run"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_a_grid_of_a_run_has_epochs_by_weights_with_one_base_picture(run_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli(["grid", str(run_dir), "--weights", "0,1", "--prompt", "mychar, 1girl",
                "--seed", "5", *SMALL, "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in data["rows"]] == ["epoch 1", "epoch 2", "final"]
    cells = data["cells"]
    assert len(cells) == 3 * 2 and data["complete"] and out.is_file()
    base = [pixels(c["path"]) for c in cells if c["weight"] == 0]
    full = [pixels(c["path"]) for c in cells if c["weight"] == 1]
    assert all(np.array_equal(base[0], b) for b in base[1:])  # weight 0: the base model
    assert all(np.abs(f - base[0]).max() > 0 for f in full)  # the LoRA changes the picture
    assert not np.array_equal(full[0], full[2])  # epoch 1 is not the final file
    with Image.open(cells[-1]["path"]) as im:
        assert "<lora:tiny:1>" in im.text["parameters"]

    again = tmp_path / "again.png"
    assert cli(["grid", str(run_dir), "--epochs", "last", "--weights", "1", "--prompt",
                "mychar, 1girl", "--seed", "5", *SMALL, "-o", str(again), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["cells"]
    assert np.array_equal(pixels(second[0]["path"]), full[2])  # same seed, same pixels


def test_grid_refuses_bad_input_in_one_line_and_writes_nothing(run_dir, tmp_path, capsys):
    out = tmp_path / "g.png"
    assert cli(["grid", str(run_dir), "--epochs", "9", "-o", str(out), *SMALL]) == 1
    err = capsys.readouterr().err
    assert "no file for epoch 9" in err and "Traceback" not in err
    assert cli(["grid", str(run_dir), "--sampler", "Eulr", "--prompt", "x", "-o", str(out),
                *SMALL]) == 1
    err = capsys.readouterr().err
    assert "Eulr" in err and "Euler a" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "g").exists()  # refused before any file


def test_a_probe_draws_the_word_over_seeds_and_scores_them(run_dir, tmp_path, capsys):
    cfg = run_dir / "config.toml"
    out = tmp_path / "probe"
    assert cli(["probe", "mychar", "--config", str(cfg), "--seeds", "3", *SMALL,
                "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    words = [pixels(i["path"]) for i in data["images"] if i["group"] == "word"]
    assert len(words) == 3
    assert not np.array_equal(words[0], words[1]) and not np.array_equal(words[1], words[2])
    assert data["subject"] == "red hair"  # the dataset's most common tag after the trigger
    assert 0 < data["diversity"] <= 2 and data["reading"] in ("free", "partly known", "known")
    assert data["tokens"]["word"] == "mychar"
