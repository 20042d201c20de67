"""The real workbench driven by Pilot, keys only."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable

from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.base.user_settings import Settings, config_dir
from lorabake_tui.core.dataset.balance import apply_plan, plan_balance
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.balance_dialog import BalanceDialog
from lorabake_tui.ui.screens.buckets import BucketsScreen
from lorabake_tui.ui.screens.concepts import ConceptsScreen
from lorabake_tui.ui.screens.config import ConfigScreen
from lorabake_tui.ui.screens.evaluate import EvaluateScreen
from lorabake_tui.ui.screens.help import HelpScreen
from lorabake_tui.ui.screens.recover import RecoverScreen
from lorabake_tui.ui.screens.repeats_dialog import RepeatsDialog
from lorabake_tui.ui.screens.tags import TagsScreen
from lorabake_tui.ui.screens.train import TrainScreen
from lorabake_tui.ui.widgets.thumbstrip import ThumbStrip, Tile

from ..support.helpers import settle

SIZE = (140, 44)


def folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))




def concept_rows(app) -> list[str]:
    table = app.screen.query_one("#concepts", DataTable)
    return [table.get_row_at(i)[0] for i in range(table.row_count)]


async def test_every_stage_reachable_by_keys(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        assert isinstance(app.screen, ConceptsScreen)
        for key, cls in [("2", TagsScreen), ("3", BucketsScreen), ("4", ConfigScreen),
                         ("5", TrainScreen), ("6", EvaluateScreen), ("1", ConceptsScreen)]:
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, cls), key
            assert app.screen.query_one("#stagebar").current == cls.STAGE
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.keys)
        assert keys.get("b") == "Balance" and keys.get("r") == "Repeats"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConceptsScreen)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")


async def test_help_lists_the_stage_keys_first_and_fits_80x24(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, 3)
        await pilot.press("2", "question_mark")
        await pilot.pause()
        help_ = app.screen
        assert isinstance(help_, HelpScreen)
        sections = dict(help_.groups)
        assert [name for name, _ in help_.groups][:2] == ["This stage", "Everywhere"]
        stage = dict((what, keys) for keys, what in sections["This stage"])
        # the Tags keys, those hidden from the footer too; Textual's tab/copy are not "stage"
        assert stage["Undo"] == "u ^z" and "Redo" in stage and "Filter" in stage
        assert "Focus Next" not in stage
        assert dict((w, k) for k, w in sections["Everywhere"])["Quit"] in ("^q q", "q ^q")
        box = help_.query_one("VerticalScroll").region
        assert box.x >= 0 and box.right <= 80 and box.bottom <= 24


async def test_information_goes_to_the_stage_bar_and_errors_to_a_toast(small_dataset):
    from lorabake_tui.ui.widgets.stagebar import StageBar

    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, 3)
        bar = app.screen.query_one(StageBar)
        app.notify("undid: tags: remove 'smile'\n(12 captions)", timeout=30)
        await pilot.pause()
        await pilot.pause()
        assert bar.notice == "undid: tags: remove 'smile' · (12 captions)"
        line = str(bar.render())
        # the other stages shrink to their digits so the notice has the row; no toast
        assert line.startswith(" 1 Concepts   2  3  4  5 ") and "undid" in line
        assert not list(app._notifications)  # what Textual draws as toasts
        app.notify("could not save", severity="error")
        await pilot.pause()
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["could not save"]
        assert [n.message for n in app.notices][-2:] == [
            "undid: tags: remove 'smile'\n(12 captions)", "could not save"]
        long = "/very/long/output/folder/" * 4 + "mira-000008.safetensors"
        app.notify(long, title="Sent to the terminal's clipboard")
        await pilot.pause()
        await pilot.pause()
        line = str(bar.render())
        # cut in the middle to fit 80 columns: what happened, and the file's name
        assert len(line) <= 78 and "…" in line
        assert "Sent to" in line and line.endswith("folder/mira-000008.safetensors")
        bar._clear_notice()
        await pilot.pause()
        assert "? help" in str(bar.render())


async def test_concepts_table_shows_counts_and_problems(small_dataset):
    (small_dataset / "10_outfit_b" / "img_000.txt").unlink()
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        table = app.screen.query_one("#concepts", DataTable)
        assert concept_rows(app) == ["10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]
        row_b = table.get_row("train:10_outfit_b")
        assert row_b[1] == "18" and row_b[2] == "10" and row_b[3] == "180"
        assert str(row_b[5]) == "1"  # one missing caption
        assert "28.1%" in str(row_b[4])  # 180 of 640 (misc has no prefix: kohya skips it)
        problems = app.screen.query_one("#problems", DataTable)
        cells = [str(problems.get_row_at(i)[2]) for i in range(problems.row_count)]
        assert any("no repeat prefix" in c for c in cells)
        assert any("without a .txt caption" in c for c in cells)


async def test_balance_preview_apply_undo_keys_only(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        await pilot.press("b")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, BalanceDialog)
        plan_table = dialog.query_one("#plan", DataTable)
        assert plan_table.get_row("10_outfit_c")[4].plain == "167_outfit_c"  # AdamW: 1000
        await pilot.press("down")  # Prodigy: 500
        await pilot.pause()
        assert plan_table.get_row("10_outfit_c")[4].plain == "84_outfit_c"
        assert folders(small_dataset) == ["10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]
        await pilot.press("enter")
        await settle(pilot, 3)
        assert isinstance(app.screen, ConceptsScreen)
        after = ["100_misc", "13_outfit_a", "28_outfit_b", "84_outfit_c"]
        assert folders(small_dataset) == after
        assert sorted(concept_rows(app)) == after
        await pilot.press("u")
        await settle(pilot, 3)
        assert folders(small_dataset) == ["10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]
        assert concept_rows(app) == ["10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]
        await pilot.press("ctrl+y")
        await settle(pilot, 3)
        assert folders(small_dataset) == after


async def test_balance_custom_target_and_cancel(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        await pilot.press("b")
        await pilot.pause()
        await pilot.press("tab")  # to the target field
        await pilot.press("end", "backspace", "backspace", "backspace", "backspace", *"120")
        await pilot.pause()
        table = app.screen.query_one("#plan", DataTable)
        assert table.get_row("10_outfit_c")[4].plain == "20_outfit_c"  # ceil(120 / 6)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConceptsScreen)
        assert "10_outfit_c" in folders(small_dataset)


async def test_edit_one_folders_repeats(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        await pilot.press("down", "down")  # 10_outfit_c
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, RepeatsDialog)
        await pilot.press("backspace", "backspace", "3", "3", "enter")
        await settle(pilot, 3)
        assert "33_outfit_c" in folders(small_dataset)
        row = app.screen.query_one("#concepts", DataTable).get_row("train:33_outfit_c")
        assert row[3] == str(6 * 33)


async def test_recovery_prompt_rolls_back_an_interrupted_apply(small_dataset):
    ds = scan_dataset(small_dataset)
    apply_plan(ds, plan_balance(ds, 1000))
    # turn the finished entry into one a crash left behind, half applied
    entry_file = next((small_dataset / ".lorabake" / "journal").glob("*.json"))
    entry_file.with_suffix(".state").write_text(json.dumps({"state": "applying"}))
    (small_dataset / "200_misc").rename(small_dataset / "misc")
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RecoverScreen)
        await pilot.press("r")
        await settle(pilot, 3)
        assert isinstance(app.screen, ConceptsScreen)
        assert folders(small_dataset) == ["10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]
        assert Journal(small_dataset).interrupted() is None
        assert concept_rows(app)[0] == "10_outfit_a"


async def test_thumbnails_load_for_highlighted_concept(small_dataset):
    app = make_app(small_dataset, images="halfcell", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        strip = app.screen.query_one(ThumbStrip)
        assert len(strip.query(Tile)) == 8  # first 8 of 40
        assert strip.border_title.startswith("10_outfit_a")
        await pilot.press("down", "down")
        await settle(pilot, 3)
        assert len(strip.query(Tile)) == 6
        assert strip.border_title.startswith("10_outfit_c")
        assert all(t.image is not None for t in strip.query(Tile))


async def test_theme_choice_is_remembered(small_dataset):
    app = make_app(small_dataset, images="none")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "lorabake-dark"
        assert "lorabake-light" in app.available_themes
        app.theme = "lorabake-light"
        await pilot.pause()
    saved = tomllib.loads((config_dir() / "settings.toml").read_text())
    assert saved["theme"] == "lorabake-light"
    assert Settings.load().theme == "lorabake-light"


async def test_user_themes_load_and_broken_ones_are_reported(small_dataset):
    themes = config_dir() / "themes"
    themes.mkdir(parents=True)
    (themes / "mine.toml").write_text('name = "mine"\nprimary = "#00ff00"\ndark = true\n')
    (themes / "bad.toml").write_text('name = "bad"\nprimary = "#00ff00"\ncolour = "x"\n')
    app = make_app(small_dataset, images="none", theme="mine", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "mine"
        assert any("unknown theme keys colour" in n.message for n in app.notices)


@pytest.mark.parametrize("bad", ["missing", "file"])
async def test_scan_failure_is_shown_not_raised(tmp_path, bad):
    root = tmp_path / "gone"
    root.mkdir()
    app = make_app(root, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        shutil.rmtree(root)  # with the workbench's session file in .lorabake/sessions
        if bad == "file":
            root.write_text("not a folder")
        await pilot.press("f5")
        await settle(pilot, 3)
        assert any("gone" in n.message for n in app.notices)


async def test_user_keymap_remaps_a_binding(small_dataset):
    settings = Settings(keymap={"concepts.balance": "B"})
    app = make_app(small_dataset, images="none", settings=settings, save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, ConceptsScreen)  # b no longer balances
        await pilot.press("B")
        await pilot.pause()
        assert isinstance(app.screen, BalanceDialog)


def test_the_readme_names_every_key_id_and_no_other():
    """The keymap ids the README lists are exactly the bindings that have one."""
    import re

    from lorabake_tui.ui.app import LorabakeApp
    from lorabake_tui.ui.screens.buckets import BucketsScreen
    from lorabake_tui.ui.screens.concepts import ConceptsScreen
    from lorabake_tui.ui.screens.config import ConfigScreen
    from lorabake_tui.ui.screens.evaluate import EvaluateScreen
    from lorabake_tui.ui.screens.tags import TagsScreen
    from lorabake_tui.ui.screens.train import TrainScreen

    from ..support.paths import REPO

    ids = {b.id for cls in (LorabakeApp, ConceptsScreen, TagsScreen, BucketsScreen,
                            ConfigScreen, TrainScreen, EvaluateScreen)
           for b in cls.BINDINGS if b.id}
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("[keymap]"):]
    block = block[:block.index("```")]
    listed = set(re.findall(r"[a-z]+\.[a-z-]+|\bhelp\b|\bquit\b", " ".join(
        line.split("#", 1)[1] for line in block.splitlines() if "#" in line)))
    assert ids == listed, (sorted(ids - listed), sorted(listed - ids))
