"""On a GPU the trainer reads the losses once per optimizer step, after the backward passes
(loop.defer_loss_read): the same losses, weights and NaN stop as reading after each forward.
Forced on here, on the CPU, where both ways can run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.trainer import loop  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402
from .test_trainer_run import events, lora_tensors, run  # noqa: E402


def losses(run_dir) -> list[float]:
    return [e["loss"] for e in events(run_dir) if e["type"] == "step"]


def test_deferred_read_gives_the_same_run(tmp_path, monkeypatch):
    make_dataset(tmp_path)
    # accumulation: two losses per optimizer step, read together
    cfg = write_config(tmp_path, general__max_steps=4, general__batch_size=1,
                       optimizer__gradient_accumulation_steps=2)
    assert run(cfg, tmp_path / "out" / "each") == exit_codes.DONE
    monkeypatch.setattr(loop, "defer_loss_read", lambda device: True)
    assert run(cfg, tmp_path / "out" / "deferred") == exit_codes.DONE
    assert losses(tmp_path / "out" / "deferred") == losses(tmp_path / "out" / "each")
    a = lora_tensors(tmp_path / "out" / "each" / "tiny.safetensors")
    b = lora_tensors(tmp_path / "out" / "deferred" / "tiny.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deferred_read_stops_on_nan_as_the_per_forward_read_does(tmp_path, monkeypatch):
    make_dataset(tmp_path, images=2)  # 2 steps per epoch
    cfg = write_config(tmp_path, general__epochs=3)
    monkeypatch.setattr(loop, "defer_loss_read", lambda device: True)
    monkeypatch.setenv("LORABAKE_TEST_NAN_AT_STEP", "4")
    run_dir = tmp_path / "out" / "r"
    assert run(cfg, run_dir) == exit_codes.NON_FINITE_LOSS
    end = events(run_dir)[-1]
    assert end["status"] == "failed" and "loss became nan at step 4" in end["message"]
    assert len(losses(run_dir)) == 3  # no step event for the bad step
    assert [p.name for p in run_dir.glob("*.safetensors")] == ["tiny-000001.safetensors"]
