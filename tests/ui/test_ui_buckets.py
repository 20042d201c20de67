"""The Buckets screen by keys: settings change the histogram, a bucket lists its images,
a recommendation is previewed, applied (originals kept) and undone byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.buckets import BucketsScreen
from lorabake_tui.ui.screens.recommend_dialog import RecommendDialog
from lorabake_tui.ui.widgets.virtual_list import VirtualList

from ..support.helpers import make_image, settle

SIZE = (150, 48)


@pytest.fixture
def shapes(tmp_path) -> Path:
    root = tmp_path / "ds"
    sizes = [(512, 768)] * 3 + [(768, 512)] * 2 + [(512, 512)] * 2 + [(300, 1000), (1000, 700)]
    for i, size in enumerate(sizes):
        make_image(root / "2_a" / f"i{i}.png", size)
        (root / "2_a" / f"i{i}.txt").write_text("mira\n")
    return root




async def open_buckets(pilot) -> BucketsScreen:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    assert isinstance(pilot.app.screen, BucketsScreen)
    return pilot.app.screen


def histogram(screen) -> list:
    return [(b, n, s) for b, n, s in screen.query_one("#bk-histogram", VirtualList).items]


async def test_resolution_change_redraws_histogram(shapes):
    app = make_app(shapes, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_buckets(pilot)
        before = histogram(screen)
        assert ((384, 640), 3, 6) in before  # 3 images x 2 repeats
        summary = str(screen.query_one("#bk-summary", Static).render())
        assert f"{screen.report.batches_per_epoch} batches per epoch" in summary
        await pilot.press("e")  # settings
        await pilot.press("end", "backspace", "backspace", "backspace", *"768")
        await pilot.pause(0.4)
        after = histogram(screen)
        assert after != before
        assert all(w * h <= 768 * 768 for (w, h), _, _ in after)
        assert ((640, 896), 3, 6) in after  # 512x768 at 768x768: kohya picks 640x896
        await pilot.press("tab", "tab", "tab", "tab", "tab", "tab")  # to batch
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.focused, VirtualList)


async def test_select_bucket_lists_its_images(shapes):
    app = make_app(shapes, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_buckets(pilot)
        hist = screen.query_one("#bk-histogram", VirtualList)
        target = next(i for i, (b, _, _) in enumerate(hist.items) if b == (384, 640))
        for _ in range(target):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause()
        images = screen.query_one("#bk-images", VirtualList)
        assert app.focused is images
        assert sorted(i.key for i in images.items) == ["2_a/i0.png", "2_a/i1.png", "2_a/i2.png"]
        assert images.items[0].assignment.resized == (427, 640)


async def test_recommend_preview_apply_undo(shapes):
    before = {p: p.read_bytes() for p in shapes.rglob("*") if p.is_file()}
    app = make_app(shapes, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_buckets(pilot)
        assert len(histogram(screen)) == 5
        await pilot.press("k")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RecommendDialog)
        await pilot.press("backspace", "2")
        await pilot.pause()
        text = str(dialog.query_one("#rec-summary", Static).render())
        assert "2 bucket(s)" in text
        assert {p: p.read_bytes() for p in before} == before  # preview wrote nothing
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, BucketsScreen)
        assert len(histogram(screen)) == 2
        originals = shapes / ".lorabake" / "originals" / "2_a"
        assert (originals / "i7.png").read_bytes() == before[shapes / "2_a" / "i7.png"]
        await pilot.press("u")
        await settle(pilot)
        now = {p: p.read_bytes() for p in shapes.rglob("*") if p.is_file()
               and ".lorabake" not in p.parts}
        assert now == before
        assert len(histogram(screen)) == 5


async def test_an_image_too_large_to_open_is_an_error_not_a_skip(shapes):
    from ..support.crafted import png_claiming

    png_claiming(shapes / "2_a" / "huge.png", 40000, 40000)
    app = make_app(str(shapes))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_buckets(pilot)
        said = str(screen.query_one("#bk-warnings", Static).render())
        assert "✗ 1 image(s) too large to open, e.g. 2_a/huge.png: 40000x40000 = 1600 MP" in said
        assert "left out (kohya skips or stops on them)" in said
        assert "kohya will not see" not in said
