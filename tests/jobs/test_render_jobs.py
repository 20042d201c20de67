"""Render jobs (kind "render"): queued behind training on the same GPUs, run detached by the
runner like the trainer, stoppable, never resumed. The render process is the real one
(`trainer/render/__main__.py`) with the stand-in engine (tests/support/fake_render.py)."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.eval.layout import grid_manifest
from lorabake_tui.core.eval.request import GridRequest, LoraChoice, RenderSettings
from lorabake_tui.core.run.event_reader import last_event
from lorabake_tui.jobs import control

from ..support.paths import FAKE_RENDER
from .test_jobs import job_now, jobenv, make_config, wait_for, wait_status  # noqa: F401


@pytest.fixture
def renders(jobenv, monkeypatch):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("LORABAKE_RENDER_CMD", shlex.join([sys.executable, str(FAKE_RENDER)]))
    return jobenv


def _request(tmp_path, name="grid"):
    loras = [LoraChoice(str(tmp_path / "a-000001.safetensors"), "epoch 1", 1),
             LoraChoice(str(tmp_path / "a.safetensors"), "final")]
    return GridRequest(base="builtin:tiny-sd15", loras=loras, weights=[0, 1], prompts=["zxq"],
                       seeds=[1], out=str(tmp_path / "grids" / f"{name}.png"),
                       render=RenderSettings(steps=2, width=64, height=64))


def test_a_render_waits_for_training_on_its_gpu_then_draws_the_grid(renders, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("FAKE_RENDER_DELAY", "0.05")
    train = control.submit(make_config(tmp_path / "t", "t", steps=15, delay=0.05), start=False)
    render = control.submit_render(_request(tmp_path))
    assert render.kind == "render" and render.status in ("queued", "running")
    req_file = json.loads((tmp_path / "grids" / "grid" / "request.json").read_text())
    assert req_file["kind"] == "grid" and req_file["weights"] == [0, 1]
    render = wait_status(render.id, ("done", "failed", "crashed"), 60)
    train = job_now(train.id)
    assert render.status == "done", render.last_message
    assert train.ended <= render.started  # one GPU lane: the render waited
    manifest = json.loads(grid_manifest(tmp_path / "grids" / "grid.png").read_text())
    assert manifest["complete"] and len(manifest["cells"]) == 4
    assert (tmp_path / "grids" / "grid.png").is_file()
    assert last_event(render.events_path, "render")["done"] == 4


def test_a_render_job_stops_keeping_what_it_drew_and_is_never_resumed(renders, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("FAKE_RENDER_DELAY", "0.5")
    req = _request(tmp_path)
    req.seeds = [1, 2, 3, 4]
    job = control.submit_render(req)
    wait_for(lambda: last_event(job_now(job.id).events_path, "render"), 30, "a first image")
    control.stop(job.id, wait=True, timeout=30)
    job = job_now(job.id)
    assert job.status == "stopped"
    manifest = json.loads(grid_manifest(req.out).read_text())
    assert not manifest["complete"] and 0 < len(manifest["cells"]) < 16
    with pytest.raises(LorabakeError, match="render .* not resumed"):
        control.resume(job.id)


def test_a_second_render_into_the_same_folder_is_refused(renders, tmp_path):
    control.submit_render(_request(tmp_path), start=False)
    with pytest.raises(LorabakeError, match="grid"):
        control.submit_render(_request(tmp_path), start=False)


def test_the_finish_notice_of_a_render_says_what_it_made(renders, tmp_path):
    from lorabake_tui.jobs.notify import finish_notice

    job = wait_status(control.submit_render(_request(tmp_path)).id, ("done", "failed"), 60)
    notice = finish_notice(job)
    assert "4 images" in notice.message and "grid.png" in notice.message
    assert "resume" not in notice.message
