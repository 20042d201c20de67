"""An EXIF-rotated photo in the workbench: the Concepts screen lists the problem with its fix,
and the Buckets screen's crop preview draws the stored pixels (what kohya buckets and trains)
with the crop box on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from lorabake_tui.core.buckets.assign import Bucketer, BucketSettings
from lorabake_tui.core.images.thumbnails import make_thumbnail
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.buckets import BucketsScreen
from lorabake_tui.ui.widgets.crop_preview import CropPreview, draw_crop

from ..support.helpers import make_exif_rotated, settle, until

SIZE = (150, 48)
RED = (255, 60, 60)


@pytest.fixture
def phone(tmp_path) -> Path:
    """One 640x320 JPEG that viewers turn to 320x640 (EXIF orientation 6), captioned."""
    root = tmp_path / "ds"
    make_exif_rotated(root / "2_mira" / "phone.jpg", (640, 320), orientation=6)
    (root / "2_mira" / "phone.txt").write_text("mira\n")
    return root


def test_thumbnail_and_crop_preview_show_the_stored_pixels(phone):
    thumb = make_thumbnail(phone / "2_mira" / "phone.jpg", (256, 256))
    assert thumb is not None and thumb.size == (256, 128)  # stored 2:1, not upright 1:2
    a = Bucketer(BucketSettings()).assign(640, 320)
    assert (a.bucket, a.resized) == ((704, 320), (704, 352))
    image = draw_crop(thumb, a)
    assert image is not None and image.size == thumb.size
    # the box keeps rows 16..336 of 352: in thumbnail pixels its top edge is at row 5-6 and
    # spans the whole width, drawn in red; the rows above it are the picture
    top = int(16 * 128 / 352)
    row = [image.getpixel((x, top + 1)) for x in (20, 128, 230)]
    assert all(px == RED for px in row), row
    assert image.getpixel((128, 1)) != RED


async def test_concepts_screen_lists_the_exif_rotated_problem(phone):
    app = make_app(phone, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        problems = app.screen.query_one("#problems", DataTable)
        rows = [[str(c) for c in problems.get_row_at(i)] for i in range(problems.row_count)]
        (row,) = [r for r in rows if "EXIF orientation 6" in r[2]]
        assert row[1] == "2_mira/phone.jpg"
        assert "kohya trains it as stored" in row[2] and "convert it upright" in row[2]
        assert "warning" in problems.border_title


async def test_buckets_crop_preview_draws_the_stored_orientation(phone):
    app = make_app(phone, images="halfcell", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BucketsScreen)
        await pilot.press("enter")  # the only bucket, 704x320: its images get the focus
        preview = screen.query_one(CropPreview)
        widget = await until(pilot, lambda: next(iter(preview.query(".crop-image")), None),
                             "the crop preview image")
        assert widget.image.size == (256, 128)  # stored 640x320, not the upright 320x640
        text = await until(pilot, lambda: next(iter(preview.query(".crop-text")), None),
                           "the crop preview text")
        assert "640×320 → 704×352" in str(text.render())
        assert "bucket 704×320" in str(text.render())
