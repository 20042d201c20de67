"""Image tools from the Buckets screen: plan, run (originals kept), undo byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from textual.widgets import Select, Static

from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.buckets import BucketsScreen
from lorabake_tui.ui.screens.image_tool_dialog import ImageToolDialog

from ..support.helpers import make_image, settle

SIZE = (150, 48)


@pytest.fixture
def mixed(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_image(root / "2_a" / "a.webp", (300, 200), "WEBP")
    make_image(root / "2_a" / "b.jpg", (200, 300), "JPEG")
    make_image(root / "2_a" / "c.png", (256, 256))
    for stem in "abc":
        (root / "2_a" / f"{stem}.txt").write_text("mira\n")
    return root




async def test_convert_from_the_workbench_and_undo(mixed):
    before = {p: p.read_bytes() for p in mixed.rglob("*") if p.is_file()}
    app = make_app(mixed, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 6)
        await pilot.press("3")
        await settle(pilot, 6)
        assert isinstance(app.screen, BucketsScreen)
        await pilot.press("i")
        await settle(pilot, 6)
        dialog = app.screen
        assert isinstance(dialog, ImageToolDialog)
        assert dialog.query_one("#tool", Select).value == "convert"
        summary = str(dialog.query_one("#tool-summary", Static).render())
        assert "2 image(s) to convert" in summary  # webp and jpg; the png stays
        await pilot.press("tab", "tab", "tab", "tab", "enter")  # focus an input, Enter runs
        for _ in range(40):
            await settle(pilot, 6)
            if isinstance(app.screen, BucketsScreen):
                break
        assert isinstance(app.screen, BucketsScreen)
        with Image.open(mixed / "2_a" / "a.png") as im:
            assert im.format == "PNG" and im.size == (300, 200)
        assert not (mixed / "2_a" / "a.webp").exists()
        kept = mixed / ".lorabake" / "originals" / "2_a" / "a.webp"
        assert kept.read_bytes() == before[mixed / "2_a" / "a.webp"]
        await pilot.press("u")
        await settle(pilot, 6)
    now = {p: p.read_bytes() for p in mixed.rglob("*") if p.is_file()
           and ".lorabake" not in p.parts}
    assert now == before


async def test_lowres_report_changes_nothing(mixed):
    app = make_app(mixed, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 6)
        await pilot.press("3")
        await settle(pilot, 6)
        await pilot.press("i")
        await settle(pilot, 6)
        dialog = app.screen
        dialog.query_one("#tool", Select).value = "lowres"
        await settle(pilot, 6)
        dialog.action_apply()
        await settle(pilot, 6)
        text = str(dialog.query_one("#tool-summary", Static).render())
        assert "3 image(s) with a side below the minimum" in text
        assert isinstance(app.screen, ImageToolDialog)
