"""Screenshots of the workbench on the demo dataset; regenerate with --snapshot-update."""

from __future__ import annotations

import pytest

from lorabake_tui.demo.draw import build_demo
from lorabake_tui.ui.app import make_app

from ..support.helpers import until

SIZE = (140, 44)


@pytest.fixture
def demo_project(tmp_path):
    """The demo with its config (paths in it relative, so the picture does not change with
    the test's temporary folder)."""
    from lorabake_tui.demo.project import ensure_demo

    return ensure_demo(tmp_path / "demo")[0]


@pytest.fixture
def demo_root(tmp_path):
    # the folder name shows in the header, so it is fixed
    return build_demo(tmp_path / "demo", seed=0)


def _tables_measured(app) -> bool:
    """Every DataTable has sized its columns to the rows it was given (it measures when it is
    next idle, then asks for a layout)."""
    from textual.widgets import DataTable

    return not any(t._require_update_dimensions or t._new_rows
                   for t in app.screen.query(DataTable))


async def _repaint_tables(pilot) -> None:
    """Draw every DataTable whole once more before the picture. Under load Textual sometimes
    keeps a header line drawn before the columns were widened (the rows below are right);
    the next repaint fixes it on a terminal, but a snapshot would catch it."""
    from textual.widgets import DataTable

    for table in pilot.app.screen.query(DataTable):
        table.refresh()
    await pilot.pause()


def _settled(app) -> bool:
    """The scan has been shown, the thumbnail tiles are mounted, the tables are sized and no
    worker is running."""
    from lorabake_tui.ui.widgets.thumbstrip import ThumbStrip, Tile

    screen = app.screen
    if app.project.dataset is None:
        return False
    strips = screen.query(ThumbStrip)
    if not strips:
        return False
    strip = strips.first()
    tiles = strip.query(Tile)
    if len(tiles) != len(strip._showing) or not strip._showing:
        return False
    return _tables_measured(app) and not any(w.is_running for w in app.workers)


async def wait_for_workers(pilot) -> None:
    # a fixed number of pauses raced the scan -> thumbnails chain on a loaded CI machine:
    # wait for the state the picture shows instead
    await until(pilot, lambda: _settled(pilot.app), "the Concepts screen to settle", 30)
    await pilot.app.workers.wait_for_complete()
    await _repaint_tables(pilot)


def test_concepts_screen(snap_compare, demo_root):
    app = make_app(demo_root, images="none", save_settings=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=wait_for_workers)


def test_balance_preview(snap_compare, demo_root):
    app = make_app(demo_root, images="none", save_settings=False)

    async def open_balance(pilot):
        await wait_for_workers(pilot)
        await pilot.press("b", "down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_balance)


def _stage_ready(app, stage: str) -> bool:
    """The stage's own work has landed: what its picture shows is final."""
    screen = app.screen
    if any(w.is_running for w in app.workers) or not _tables_measured(app):
        return False
    if stage == "1":
        return _settled(app)
    if stage == "2":
        return getattr(screen, "store", None) is not None
    if stage == "3":
        return getattr(screen, "plan", None) is not None
    if stage == "4":
        result = getattr(screen, "result", None)
        return result is not None and result.plan is not None
    return True


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 48)],
                         ids=["80x24", "100x30", "160x48"])
@pytest.mark.parametrize("stage", ["1", "2", "3", "4", "5"],
                         ids=["concepts", "tags", "buckets", "config", "train"])
def test_every_stage_at_every_size(snap_compare, demo_project, stage, size):
    """Problems and Findings keep their rows, nothing runs off the screen, the footer is
    whole, at the sizes a terminal over SSH really has."""
    app = make_app(demo_project, images="none", save_settings=False)

    async def open_stage(pilot):
        await until(pilot, lambda: _settled(pilot.app), "the Concepts screen", 30)
        if stage != "1":
            await pilot.press(stage)
        await until(pilot, lambda: _stage_ready(pilot.app, stage), f"stage {stage}", 30)
        await pilot.app.workers.wait_for_complete()
        await _repaint_tables(pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_stage)


def _demo_run_with_grid(project_root):
    """A finished run of the demo under its config's output dir, with a grid of all its
    files drawn (names fixed: they show in the picture)."""
    from PIL import Image

    from lorabake_tui.core.eval.layout import grid_cells
    from lorabake_tui.core.eval.manifest import write_grid_manifest
    from lorabake_tui.core.eval.request import GridRequest
    from lorabake_tui.core.eval.run_loras import run_loras

    run = project_root.parent / "demo-output" / "demo-20260101-120000"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('[general]\nbase_model = "builtin:tiny-sd15"\n'
                                     '[saving]\noutput_name = "demo"\n')
    for e in (1, 2, 3):
        (run / f"demo-{e:06d}.safetensors").write_bytes(b"e%d" % e)
    (run / "demo.safetensors").write_bytes(b"final")
    req = GridRequest(base="builtin:tiny-sd15", loras=run_loras(run, "demo"),
                      weights=[0.0, 0.4, 0.7, 1.0], prompts=["demochar, 1girl", "demochar"],
                      seeds=[1], out=str(run / "grids" / "grid-20260101-130000.png"),
                      run_dir=str(run))
    cells = grid_cells(req)
    for c in cells:
        c.path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (60 * c.row, int(200 * c.weight), 90)).save(c.path)
    write_grid_manifest(req, cells, complete=True)


def _evaluate_ready(app) -> bool:
    from lorabake_tui.ui.widgets.grid_browser import CellTile

    screen = app.screen
    view = getattr(screen, "view", None)
    tiles = screen.query(CellTile)
    return (view is not None and bool(tiles) and all(t.shown for t in tiles)
            and not any(w.is_running for w in app.workers))


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 48)],
                         ids=["80x24", "100x30", "160x48"])
def test_evaluate_at_every_size(snap_compare, demo_project, size):
    """Runs, files, grids and a whole grid browsed, at the sizes of stage test above."""
    _demo_run_with_grid(demo_project)
    app = make_app(demo_project, images="none", save_settings=False)

    async def open_evaluate(pilot):
        await until(pilot, lambda: _settled(pilot.app), "the Concepts screen", 30)
        await pilot.press("6")
        await until(pilot, lambda: _evaluate_ready(pilot.app), "the grid", 30)
        await pilot.press("tab", "tab", "enter", "right", "down")  # a cell inside the grid
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_evaluate)


def test_grid_dialog_at_80x24(snap_compare, demo_project):
    """The grid form, summary and buttons fit the smallest terminal."""
    _demo_run_with_grid(demo_project)
    app = make_app(demo_project, images="none", save_settings=False)

    async def open_dialog(pilot):
        await until(pilot, lambda: _settled(pilot.app), "the Concepts screen", 30)
        await pilot.press("6")
        await until(pilot, lambda: _evaluate_ready(pilot.app), "the grid", 30)
        await until(pilot, lambda: pilot.app.screen.prompts, "the prompts", 30)
        await pilot.press("g")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=open_dialog)
