"""Pickle checkpoints as base model: `lorabake config check` and the trainer refuse every one
(.ckpt, .pt, .pth, .bin, a pickle renamed .safetensors, a diffusers folder with pickled weights)
with the same words, from the one definition in core/config/checkpoints.py."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.cli import main as cli_main  # noqa: E402
from lorabake_tui.core.config.checkpoints import pickle_in  # noqa: E402
from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402
from lorabake_tui.trainer.base_model import (  # noqa: E402
    BUILTIN_TINY,
    SD15_CONFIG_DATA,
    BaseModelError,
    load_base_model,
)

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402


def _small_pickle(path: Path) -> Path:
    torch.save({"model.diffusion_model.x": torch.zeros(2), "step": 3}, path)
    return path


def _check_json(cfg: Path, capsys) -> dict:
    capsys.readouterr()
    code = cli_main(["config", "check", "--json", str(cfg)])
    out = capsys.readouterr().out
    assert code == 1
    return json.loads(out)


def _refusal(path: Path) -> BaseModelError:
    with pytest.raises(BaseModelError) as err:
        load_base_model(str(path))
    return err.value


def _base_model_error(report: dict) -> str:
    [finding] = [e for e in report["errors"] if e["key"] == "general.base_model"]
    return finding["message"]


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".PT"])
def test_every_pickle_suffix_gets_the_same_refusal_from_check_and_trainer(tmp_path, capsys,
                                                                          suffix):
    make_dataset(tmp_path, images=1)
    model = _small_pickle(tmp_path / f"model{suffix}")
    cfg = write_config(tmp_path, general__base_model=model.name)
    message = _base_model_error(_check_json(cfg, capsys))
    err = _refusal(model)
    assert message == f"general.base_model: {err.message}: {err.hint}"
    assert err.message.startswith(f"{model.name} is a pickle checkpoint, which lorabake does "
                                  "not load")
    assert err.hint == "convert it to .safetensors, or use a diffusers folder"
    # the trainer as a command stops on the same words before it writes anything
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = train_main([str(cfg), "--run-dir", str(tmp_path / "out" / "r")])
    assert code == exit_codes.CONFIG_ERROR
    assert message in stderr.getvalue()
    assert not (tmp_path / "out").exists()


def test_a_missing_pickle_is_refused_as_a_pickle_by_both(tmp_path, capsys):
    make_dataset(tmp_path, images=1)
    cfg = write_config(tmp_path, general__base_model="gone.pth")
    message = _base_model_error(_check_json(cfg, capsys))
    err = _refusal(tmp_path / "gone.pth")
    assert message == f"general.base_model: {err.message}: {err.hint}"


def test_a_pickle_renamed_safetensors_is_named_a_pickle_by_both(tmp_path, capsys):
    """A download saved under the wrong name: the content decides, not the suffix."""
    make_dataset(tmp_path, images=1)
    legacy = tmp_path / "legacy.safetensors"  # torch's pre-zip format: a bare pickle stream
    torch.save({"a": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    zipped = _small_pickle(tmp_path / "zipped.safetensors")
    for model in (legacy, zipped):
        cfg = write_config(tmp_path, general__base_model=model.name)
        message = _base_model_error(_check_json(cfg, capsys))
        err = _refusal(model)
        assert message == f"general.base_model: {err.message}: {err.hint}"
        assert err.message.startswith(f"{model.name} is a pickle checkpoint")


def test_a_real_safetensors_file_is_not_taken_for_a_pickle(tmp_path):
    from safetensors.torch import save

    # header lengths whose first bytes read like a pickle's protocol mark (0x80, 0x02..0x05)
    lookalikes = 0
    for n in range(500, 1500):
        blob = save({"t": torch.zeros(1)}, metadata={"pad": "x" * n})
        if blob[0] == 0x80 and 2 <= blob[1] <= 5:
            path = tmp_path / f"m{n}.safetensors"
            path.write_bytes(blob)
            assert pickle_in(path) is None
            lookalikes += 1
    assert lookalikes >= 4
    assert pickle_in(tmp_path) is None


def test_a_diffusers_folder_with_only_pickled_weights_is_refused_by_both(tmp_path, capsys):
    tiny = load_base_model(BUILTIN_TINY)
    folder = tmp_path / "old-model"
    folder.mkdir()
    shutil.copy(SD15_CONFIG_DATA / "model_index.json", folder / "model_index.json")
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae", safe_serialization=False)  # the old .bin layout
    tiny.text_encoder.save_pretrained(folder / "text_encoder")
    assert [p.name for p in (folder / "vae").glob("*.bin")] == ["diffusion_pytorch_model.bin"]
    make_dataset(tmp_path, images=1)
    cfg = write_config(tmp_path, general__base_model=folder.name)
    message = _base_model_error(_check_json(cfg, capsys))
    err = _refusal(folder)
    assert message == f"general.base_model: {err.message}: {err.hint}"
    assert err.message.startswith("old-model/vae/diffusion_pytorch_model.bin is a pickle "
                                  "checkpoint")
