"""The Evaluate stage, driven by keys: queue a grid of the files that are on (a real render job
through the registry, runner, supervisor and render process, with the stand-in engine of
tests/support/fake_render.py), browse it
(arrows, blocks), zoom a cell, keep an epoch (bytes equal, never overwriting), a grid that
fills in while it renders, a trigger probe; the Train stage shows a render's progress, stops
it and does not offer to resume it."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from PIL import Image

from lorabake_tui.core.base.user_settings import Settings
from lorabake_tui.core.eval.layout import grid_cells
from lorabake_tui.core.eval.manifest import write_grid_manifest
from lorabake_tui.core.eval.request import GridRequest, RenderSettings
from lorabake_tui.core.eval.run_loras import run_loras
from lorabake_tui.jobs import control
from lorabake_tui.jobs.store import Registry
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.eval_dialogs import (
    GridDialog,
    KeepFolderDialog,
    ProbeDialog,
    ZoomScreen,
)
from lorabake_tui.ui.screens.evaluate import EvaluateScreen
from lorabake_tui.ui.screens.job_dialogs import StopDialog
from lorabake_tui.ui.screens.train import TrainScreen
from lorabake_tui.ui.widgets.grid_browser import CellTile, GridBrowser

from ..support.helpers import until
from ..support.paths import FAKE_RENDER
from .test_ui_train import head, jobenv, write_config  # noqa: F401

SIZE = (100, 30)


def make_run(runs: Path, name: str = "mira-20260101-000000", epochs: int = 3) -> Path:
    """A finished run folder as the trainer leaves it: its config snapshot, epoch files and
    the final file (each file's bytes its own)."""
    run = runs / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(
        '[general]\nbase_model = "builtin:tiny-sd15"\n[saving]\noutput_name = "mira"\n'
        '[sampling]\nprompts = ["mira, standing --n bad"]\n')
    for e in range(1, epochs + 1):
        (run / f"mira-{e:06d}.safetensors").write_bytes(f"epoch {e} ".encode() * 100)
    (run / "mira.safetensors").write_bytes(b"final " * 100)
    return run


def make_grid(run: Path, *, prompts=("mira, 1girl",), weights=(0.0, 1.0), drawn=None,
              complete=True, name="grid-20260101-000000.png", write=True) -> GridRequest:
    """A grid of the run as the render process leaves it: the first `drawn` cells (all by
    default) as PNGs, and the manifest (`write` False: the request alone)."""
    req = GridRequest(base="builtin:tiny-sd15", loras=run_loras(run, "mira"),
                      weights=list(weights), prompts=list(prompts), seeds=[7],
                      out=str(run / "grids" / name), render=RenderSettings(),
                      run_dir=str(run))
    if write:
        add_cells(req, grid_cells(req)[:drawn], complete=complete)
    return req


def add_cells(req: GridRequest, cells, *, complete: bool) -> None:
    for c in cells:
        c.path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (50 * c.row, int(200 * c.weight), 90)).save(c.path)
    write_grid_manifest(req, list(cells), complete=complete)


async def open_evaluate(pilot) -> EvaluateScreen:
    await pilot.press("6")
    screen = pilot.app.screen
    assert isinstance(screen, EvaluateScreen)
    await until(pilot, lambda: len(screen.loras) == 4, "the run's files")
    return screen


def notices(app) -> list[str]:
    return [n.message for n in app.notices]


def browser(screen) -> GridBrowser:
    return screen.query_one("#ev-grid", GridBrowser)


@pytest.mark.usefixtures("jobenv")
async def test_queue_a_grid_then_browse_and_zoom_it(small_dataset, monkeypatch):
    monkeypatch.setenv("LORABAKE_RENDER_CMD", shlex.join([sys.executable, str(FAKE_RENDER)]))
    write_config(small_dataset)
    run = make_run(small_dataset.parent / "runs")
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        await until(pilot, lambda: screen.prompts, "the prompts from the captions")
        # epoch 2 off: tab to the files, down, space
        await pilot.press("tab", "down", "space")
        assert screen.query_one("#ev-files").border_title == "Files: 3 of 4 on"
        await pilot.press("g")
        dialog = app.screen
        assert isinstance(dialog, GridDialog)
        prompt = dialog.query_one("#ev-prompt0")
        assert prompt.value == "mira, 1girl"  # the trigger, then the top tag
        assert prompt.has_focus
        await pilot.press("end", "6")  # a stage key typed into a field is text
        assert app.screen is dialog and prompt.value == "mira, 1girl6"
        await pilot.press("backspace")
        dialog.query_one("#ev-weights").value = "0, 1"
        await pilot.press("enter")
        assert app.screen is screen

        def render_jobs():
            with Registry() as reg:
                return [j for j in reg.jobs() if j.kind == "render"]

        job = (await until(pilot, render_jobs, "the render job"))[0]
        await until(pilot, lambda: any(f"queued {job.id}" in m for m in notices(app)),
                    "the queued notice")
        request = json.loads((Path(job.run_dir) / "request.json").read_text())
        assert request["kind"] == "grid"
        assert [Path(c["path"]).name for c in request["loras"]] == [
            "mira-000001.safetensors", "mira-000003.safetensors", "mira.safetensors"]
        assert request["weights"] == [0.0, 1.0]
        assert request["prompts"] == ["mira, 1girl"]
        assert Path(request["out"]).parent == run / "grids"

        # the fake render draws it; the grid shows up, selected, and fills in
        await until(pilot, lambda: screen.view is not None and screen.view.complete,
                    "the rendered grid", 40)
        b = browser(screen)
        await until(pilot, lambda: all(t.shown for t in b.query(CellTile)), "every cell")
        assert len(b.query(CellTile)) == 3 * 2
        b.focus()
        assert b.cursor == (0, 0)
        await pilot.press("right", "down")
        assert b.cursor == (1, 1)
        info = str(screen.query_one("#ev-info").render())
        assert "epoch 3 · weight 1 · seed 1" in info
        current = [t for t in b.query(CellTile) if t.has_class("-current")]
        assert [(t.row, t.col) for t in current] == [(1, 1)]
        await pilot.press("enter")
        assert isinstance(app.screen, ZoomScreen)
        assert app.screen.path.endswith("e000003-w1.png")
        await pilot.press("escape")
        assert app.screen is screen


async def test_browse_blocks_and_keep_epochs_without_overwriting(small_dataset, tmp_path):
    run = make_run(tmp_path / "runs")
    write_config(small_dataset)  # its output dir is tmp_path/runs
    make_grid(run, prompts=("mira, 1girl", "mira, smile"))
    keep = tmp_path / "keep"
    keep.mkdir()
    other = keep / "mira-000002.safetensors"
    other.write_bytes(b"someone else's file")  # the same name, other bytes
    app = make_app(small_dataset, images="none", save_settings=False,
                   settings=Settings(keep_folder=str(keep)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_evaluate(pilot)
        await until(pilot, lambda: screen.view is not None, "the grid")
        await pilot.press("tab", "tab", "enter")  # to the grids list, open the grid
        b = browser(screen)
        assert b.has_focus
        await pilot.press("right")
        await pilot.press("right_square_bracket")
        assert (b.block, b.cursor) == (1, (0, 1))
        info = str(screen.query_one("#ev-info").render())
        assert "block 2/2" in info and "prompt 2: mira, smile" in info
        await pilot.press("pageup")
        assert b.block == 0

        await pilot.press("k")  # epoch 1
        kept = keep / "mira-000001.safetensors"
        await until(pilot, kept.exists, "the kept file")
        assert kept.read_bytes() == (run / "mira-000001.safetensors").read_bytes()
        await until(pilot, lambda: any(m.startswith("kept as") for m in notices(app)),
                    "the kept notice")
        await pilot.press("k")  # again: the same bytes are there, nothing copied
        await until(pilot, lambda: any(m.startswith("already there") for m in notices(app)),
                    "the already-there notice")
        assert sorted(p.name for p in keep.iterdir()) == [
            "mira-000001.safetensors", "mira-000002.safetensors"]

        await pilot.press("down", "k")  # epoch 2: its name is taken by another file
        second = keep / "mira-000002-2.safetensors"
        await until(pilot, second.exists, "the renamed copy")
        assert second.read_bytes() == (run / "mira-000002.safetensors").read_bytes()
        assert other.read_bytes() == b"someone else's file"

        await pilot.press("enter")
        assert isinstance(app.screen, ZoomScreen)
        await pilot.press("escape")
        assert app.screen is screen


async def test_keep_without_a_folder_says_where_to_set_it(small_dataset, tmp_path):
    run = make_run(tmp_path / "runs")
    write_config(small_dataset)
    make_grid(run)
    keep = tmp_path / "models" / "Lora"
    keep.mkdir(parents=True)
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        await until(pilot, lambda: screen.view is not None, "the grid")
        await pilot.press("k")
        await pilot.pause()
        assert any("no keep folder set: press f" in m for m in notices(app))
        assert list(keep.iterdir()) == []
        await pilot.press("f")
        assert isinstance(app.screen, KeepFolderDialog)
        await pilot.press(*str(keep))
        await pilot.press("enter")
        assert app.screen is screen
        assert app.settings.keep_folder == str(keep)
        await pilot.press("k")
        await until(pilot, (keep / "mira-000001.safetensors").exists, "the kept file")


async def test_a_grid_still_rendering_fills_in(small_dataset, tmp_path):
    run = make_run(tmp_path / "runs")
    write_config(small_dataset)
    req = make_grid(run, drawn=2, complete=False)
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        b = browser(screen)
        await until(pilot, lambda: sum(1 for t in b.query(CellTile) if t.shown) == 2,
                    "the first two cells")
        assert "rendering 2/8" in str(screen.query_one("#ev-info").render())
        add_cells(req, grid_cells(req)[:5], complete=False)  # three more arrive
        await until(pilot, lambda: sum(1 for t in b.query(CellTile) if t.shown) == 5,
                    "the new cells")
        await until(pilot, lambda: "rendering 5/8" in str(screen.query_one("#ev-info")
                                                          .render()), "the new count")


@pytest.mark.usefixtures("jobenv")
async def test_probe_a_trigger_word_queues_a_render(small_dataset, monkeypatch):
    monkeypatch.setenv("LORABAKE_RENDER_CMD", shlex.join([sys.executable, str(FAKE_RENDER)]))
    write_config(small_dataset)
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        screen = app.screen
        await until(pilot, lambda: screen.trigger, "the dataset's trigger")
        assert screen.query_one("#ev-empty").display  # no runs: says what to do
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, ProbeDialog)
        assert dialog.query_one("#ev-word").value == "mira"
        assert dialog.query_one("#ev-subject").value == "1girl"
        await pilot.press("enter")

        def probe():
            with Registry() as reg:
                return [j for j in reg.jobs() if j.kind == "render"]

        job = (await until(pilot, probe, "the probe job"))[0]
        request = json.loads((Path(job.run_dir) / "request.json").read_text())
        assert request["kind"] == "probe" and request["word"] == "mira"
        assert request["subject"] == "1girl" and request["seeds"] == [1, 2, 3, 4]
        assert request["base"] == "builtin:tiny-sd15"
        out = Path(request["out_dir"])
        assert out.parent == small_dataset / ".lorabake" / "probes"
        assert out.name.startswith("mira-")


@pytest.mark.usefixtures("jobenv")
async def test_train_shows_a_render_and_stops_it_but_never_resumes_it(
        small_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("LORABAKE_RENDER_CMD", shlex.join([sys.executable, str(FAKE_RENDER)]))
    monkeypatch.setenv("FAKE_RENDER_DELAY", "2")  # slow enough to be stopped half way, loaded
    write_config(small_dataset)
    run = make_run(tmp_path / "runs")
    req = make_grid(run, write=False)
    job = control.submit_render(req)
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await until(pilot, lambda: screen.job and screen.job.id == job.id, "the render job")
        await until(pilot, lambda: re.search(r"image [1-9]\d*/\d+", head(screen)),
                    "its progress", 30)
        assert "running" in head(screen)
        assert not screen.query_one("#tr-charts").display  # no loss to chart
        assert screen.check_action("resume", ()) is False  # not offered in the footer
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, StopDialog)
        await pilot.press("y")
        ended = await until(pilot, lambda: screen.job.finished and screen.job,
                            "the render to end", 30)
        assert ended.status == "stopped", (ended.status, ended.last_message)
        await pilot.press("r")  # not bound for a render: nothing happens
        await pilot.pause(0.5)
        with Registry() as reg:
            again = reg.get(job.id)
        assert again.status == "stopped" and again.attempt == 1


def test_the_keep_folder_is_a_user_setting():
    assert Settings().keep_folder == ""
    Settings(keep_folder="/models/Lora").save()
    assert Settings.load().keep_folder == "/models/Lora"


@pytest.mark.usefixtures("jobenv")
async def test_runs_come_from_the_jobs_and_the_output_dir_newest_first(small_dataset, tmp_path):
    write_config(small_dataset)  # output dir: tmp_path/runs
    old = make_run(tmp_path / "runs", "mira-20250101-000000")
    elsewhere = make_run(tmp_path / "moved", "mira-20260202-000000")  # known to the registry
    (tmp_path / "runs" / "not-a-run").mkdir()  # no config snapshot: not listed
    (tmp_path / "runs" / "not-a-run" / "x.safetensors").write_bytes(b"x")
    with Registry() as reg:
        job = reg.add(kind="lorabake", name="mira", status="done", run_dir=str(elsewhere),
                      created=2e9, started=2e9, ended=2e9 + 60)
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        screen = app.screen
        await until(pilot, lambda: len(screen.runs) == 2, "both runs")
        assert [(r.path, r.job_id) for r in screen.runs] == [(elsewhere, job.id), (old, None)]
        await until(pilot, lambda: screen.loras and Path(screen.loras[0].path).parent
                    == elsewhere, "the newest run's files")
        await pilot.press("down")
        await until(pilot, lambda: Path(screen.loras[0].path).parent == old, "the older run")


async def test_help_shows_the_bracket_keys(small_dataset):
    from lorabake_tui.ui.screens.help import HelpScreen

    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6", "question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-keys").render())
        assert "[  Previous block" in text and "]  Next block" in text
        assert "g  Queue grid" in text and "k  Keep epoch" in text
