"""The Tags screen driven by keys only: find, filter, replace with preview, apply, undo."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.op_dialog import OpDialog
from lorabake_tui.ui.screens.tags import TagsScreen, filter_term
from lorabake_tui.ui.widgets.virtual_list import VirtualList

from ..support.helpers import make_concept, settle

SIZE = (150, 48)


@pytest.fixture
def tagged(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_concept(root, "10_a", 6, caption="mira, tiara, long_hair, smile")
    make_concept(root, "10_b", 4, caption="mira, circlet, long hair")
    (root / "10_b" / "img_003.txt").write_bytes(b"\xef\xbb\xbfmira, tiara\r\n")
    (root / "10_b" / "img_002.txt").write_bytes(b"caf\xe9, tiara\n")  # not UTF-8
    return root




async def open_tags(pilot) -> TagsScreen:
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TagsScreen)
    return screen


def tag_rows(screen) -> dict[str, int]:
    return dict(screen.query_one("#tag-list", VirtualList).items)


async def test_frequencies_and_underscore_space_counted_together(tagged):
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        rows = tag_rows(screen)
        assert rows["mira"] == 9 and rows["tiara"] == 7
        assert rows["long_hair"] == 8  # 6 x long_hair + 2 x long hair, in the common form
        assert len(screen.query_one("#image-list", VirtualList).items) == 10


async def test_find_filter_replace_preview_apply_undo_keys_only(tagged):
    before = {p: p.read_bytes() for p in tagged.rglob("*.txt")}
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        await pilot.press("t", *"tiara", "escape")  # find the tag, back to the list
        await pilot.pause()
        assert list(tag_rows(screen)) == ["tiara"]
        await pilot.press("enter")  # show the images that have it
        await settle(pilot)
        assert screen.query_one("#filter", Input).value == "tiara"
        assert len(screen.matching) == 7
        await pilot.press("R")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, OpDialog)
        assert dialog.query_one("#f-old", Input).value == "tiara"  # the highlighted tag
        # what the user types is the replacement: Find keeps the highlighted tag
        await pilot.press(*"circlet")
        await settle(pilot)
        assert dialog.query_one("#f-new", Input).value == "circlet"
        assert dialog.query_one("#f-old", Input).value == "tiara"
        summary = str(dialog.query_one("#op-summary", Static).render())
        # the non-UTF-8 caption has no readable tags, so it is not among the 7
        assert "7 of 7 caption(s) change" in summary
        for path, data in before.items():
            assert path.read_bytes() == data  # preview wrote nothing
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TagsScreen)
        assert b"tiara" not in (tagged / "10_a" / "img_000.txt").read_bytes()
        assert (tagged / "10_b" / "img_003.txt").read_bytes() == b"\xef\xbb\xbfmira, circlet\r\n"
        assert (tagged / "10_b" / "img_002.txt").read_bytes() == b"caf\xe9, tiara\n"
        assert len(screen.matching) == 0
        result = screen.query_one("#tags-result", Static)
        assert result.display and "u undoes it" in str(result.render())
        assert not isinstance(app.focused, Input)  # (esc here would dismiss the panel)
        await pilot.press("u")
        await settle(pilot)
        for path, data in before.items():
            assert path.read_bytes() == data, path
        assert not result.display  # no longer true: the notice says what undo did
        assert len(screen.matching) == 7
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert b"circlet" in (tagged / "10_a" / "img_000.txt").read_bytes()


async def test_malformed_filter_points_at_the_column(tagged):
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        await pilot.press("slash", *"mira AND (")
        await pilot.pause(0.3)
        status = str(screen.query_one("#filter-status", Static).render())
        assert "column 11" in status
        assert len(screen.matching) == 10  # the last good result stays


async def test_remove_with_glob_on_a_concept_filter(tagged):
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        await pilot.press("slash", *"folder:a", "escape")
        await pilot.pause(0.3)
        await settle(pilot)
        assert len(screen.matching) == 6
        await pilot.press("x")
        await settle(pilot)
        field = app.screen.query_one("#f-tags", Input)
        field.value = ""
        await pilot.press(*"*_hair")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert (tagged / "10_a" / "img_000.txt").read_text() == "mira, tiara, smile\n"
        assert "long hair" in (tagged / "10_b" / "img_000.txt").read_text()  # out of scope


def test_filter_term_quotes_syntax():
    assert filter_term("long hair") == "long hair"
    assert filter_term("photo \\(medium\\)") == '"photo (medium)"'
    assert filter_term("-_-") == '"-_-"'
    assert filter_term("empty") == '"empty"'


async def test_overview_lists_outliers_and_distinctive_tags(tagged):
    long = ", ".join(f"junk{i}" for i in range(60))
    (tagged / "10_a" / "img_005.txt").write_text(long + "\n")
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_tags(pilot)
        await pilot.press("v")
        await pilot.pause()
        text = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert "10_a/img_005.txt: 60 tags" in text
        assert "10_b (4): circlet" in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TagsScreen)


async def test_overview_title_shows_a_scope_with_brackets_as_text(tagged):
    from lorabake_tui.core.captions.tagstats import tag_stats
    from lorabake_tui.ui.screens.stats_dialog import StatsDialog

    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        scope = "images matching 'x[b]' [/] [red"  # a filter the user typed
        app.push_screen(StatsDialog(tag_stats(screen.store, screen.store.records), scope))
        await settle(pilot)
        title = str(app.screen.query_one(".title", Static).render())
        assert title == f"Overview of {scope}"


async def test_down_from_the_search_box_goes_to_the_list(tagged):
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        await pilot.press("t", *"tia", "down")
        await pilot.pause()
        assert app.focused is screen.query_one("#tag-list", VirtualList)
        await pilot.press("R")  # an action now, not more text
        await settle(pilot)
        assert isinstance(app.screen, OpDialog)
        assert screen.query_one("#tag-search", Input).value == "tia"


async def test_a_partly_skipped_edit_stays_on_screen_until_esc(tagged):
    app = make_app(tagged, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        await pilot.press("t", *"tiara", "escape", "R")
        await settle(pilot)
        await pilot.press(*"circlet")
        await settle(pilot)
        # someone else edits a caption after lorabake read it, and makes another read-only
        (tagged / "10_a" / "img_001.txt").write_text("mira, tiara, hat\n")
        (tagged / "10_a" / "img_002.txt").chmod(0o444)
        await pilot.press("enter")
        await settle(pilot)
        result = screen.query_one("#tags-result", Static)
        assert result.display
        shown = str(result.render()).replace("\n", " ")
        assert "2 file(s) left alone: " in shown
        assert "10_a/img_001.txt changed on disk since it was read" in shown
        assert "10_a/img_002.txt: read-only: left alone (chmod u+w" in shown
        assert (tagged / "10_a" / "img_001.txt").read_text() == "mira, tiara, hat\n"
        assert "tiara" in (tagged / "10_a" / "img_002.txt").read_text()
        assert "circlet" in (tagged / "10_a" / "img_003.txt").read_text()
        await pilot.pause(3)  # a notification would be gone by now; the panel is not
        assert result.display
        await pilot.press("escape")
        assert not result.display
