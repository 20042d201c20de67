"""Screenshots of the workbench on the demo dataset; regenerate with --snapshot-update."""

from __future__ import annotations

import pytest

from lorabake_tui.demo.draw import build_demo
from lorabake_tui.ui.app import make_app

from ..support.helpers import until

SIZE = (140, 44)


@pytest.fixture
def demo_root(tmp_path):
    # the folder name shows in the header, so it is fixed
    return build_demo(tmp_path / "demo", seed=0)


def _settled(app) -> bool:
    """The scan has been shown, the thumbnail tiles are mounted and no worker is running."""
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
    return not any(w.is_running for w in app.workers)


async def wait_for_workers(pilot) -> None:
    # a fixed number of pauses raced the scan -> thumbnails chain on a loaded CI machine:
    # wait for the state the picture shows instead
    await until(pilot, lambda: _settled(pilot.app), "the Concepts screen to settle", 30)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


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
