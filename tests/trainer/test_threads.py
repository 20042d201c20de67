"""How many torch threads a CPU run uses: every core the process may run on, unless
OMP_NUM_THREADS says otherwise (the side-by-side with kohya: half the cores cost 1.6x)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.trainer.loop import Trainer, cpu_threads  # noqa: E402
from lorabake_tui.trainer.run_config import load_run_config  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402


def test_every_allowed_core_unless_omp_num_threads_is_set():
    allowed = len(os.sched_getaffinity(0))
    assert cpu_threads({}) == allowed
    assert cpu_threads({"OMP_NUM_THREADS": ""}) == allowed
    assert cpu_threads({"OMP_NUM_THREADS": "1"}) is None  # torch already read it


def test_a_cpu_run_uses_the_allowed_cores_and_gives_them_back(tmp_path, monkeypatch):
    make_dataset(tmp_path, images=1, repeats=1)
    cfg = load_run_config(write_config(tmp_path, general__max_steps=1, general__batch_size=1))
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert Trainer(cfg, tmp_path / "run").run().code == 0
        assert torch.get_num_threads() == 1  # the process's own setting, back
    finally:
        torch.set_num_threads(before)
    start = next(e for e in read_all_events(RunFolder(tmp_path / "run").events)
                 if e["type"] == "start")
    assert start["torch_threads"] == len(os.sched_getaffinity(0))
