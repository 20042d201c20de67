"""logging.tensorboard: the run writes TensorBoard scalars (loss, average loss, learning
rate per group, it/s) into its folder's tensorboard/ when the optional package is there;
without it the run says so once and trains on."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _train(tmp_path):
    make_dataset(tmp_path, images=2, repeats=1)
    cfg = write_config(tmp_path, general__epochs=2, logging__tensorboard=True)
    run_dir = tmp_path / "run"
    assert train_main([str(cfg), "--run-dir", str(run_dir)]) == exit_codes.DONE
    return run_dir, read_all_events(RunFolder(run_dir).events)


def test_without_the_package_one_message_and_the_run_goes_on(tmp_path, monkeypatch):
    # None in sys.modules makes `import` fail, as on a machine without the package
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run_dir, events = _train(tmp_path)
    said = [e for e in events if e["type"] == "warning" and "tensorboard" in e["message"]]
    assert len(said) == 1 and "not installed" in said[0]["message"], said
    assert "pip install tensorboard" in said[0]["message"]
    assert (run_dir / "tiny.safetensors").is_file()
    assert not (run_dir / "tensorboard").exists()


def test_the_scalars_are_written(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, events = _train(tmp_path)
    steps = [e for e in events if e["type"] == "step"]
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert tags == {"loss/current", "loss/average", "lr/unet", "lr/text_encoder",
                    "speed/it_per_s"}
    for tag, field, k in [("loss/current", "loss", None), ("loss/average", "avg_loss", None),
                          ("lr/unet", "lr", 0), ("lr/text_encoder", "lr", 1)]:
        got = [(s.step, s.value) for s in acc.Scalars(tag)]
        want = [(e["step"], e[field] if k is None else e[field][k]) for e in steps]
        assert [g[0] for g in got] == [w[0] for w in want]
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], rel=1e-6)
    assert all(s.value > 0 for s in acc.Scalars("speed/it_per_s"))
