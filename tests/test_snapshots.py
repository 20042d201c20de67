"""Screenshots of the workbench on the demo dataset; regenerate with --snapshot-update."""

from __future__ import annotations

import pytest

from lorabake_tui.core.demo import build_demo
from lorabake_tui.ui.app import make_app

SIZE = (140, 44)


@pytest.fixture
def demo_root(tmp_path):
    # the folder name shows in the header, so it is fixed
    return build_demo(tmp_path / "demo", seed=0)


async def wait_for_workers(pilot) -> None:
    for _ in range(3):
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
