"""Every plan dialog behaves the same, driven by keys in the real app: the first focus is the
field the user types, Enter applies from any field (an input, a checkbox, a drop-down, a list,
a button), Space toggles a checkbox or opens a drop-down, Esc cancels."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox, Input, OptionList, Select, Static

from lorabake_tui.core.captions.store import CaptionStore
from lorabake_tui.core.captions.tagop_specs import SPEC_BY_NAME
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.balance_dialog import BalanceDialog
from lorabake_tui.ui.screens.image_tool_dialog import ImageToolDialog
from lorabake_tui.ui.screens.op_dialog import OpDialog
from lorabake_tui.ui.screens.recommend_dialog import RecommendDialog
from lorabake_tui.ui.screens.repeats_dialog import RepeatsDialog

from ..support.helpers import make_concept, make_image, settle, until
from ..support.plans import plan_of

SIZE = (120, 40)
NOTHING = object()


@pytest.fixture
def ds(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_a", 4, caption="mira, silver hair, smile")
    make_concept(root, "5_b", 2, caption=None)  # no captions: "add" can create them
    return root


async def open_dialog(pilot, dialog):
    """Push `dialog` on the running app; returns a box that receives its result."""
    box = {"result": NOTHING}
    pilot.app.push_screen(dialog, lambda r: box.__setitem__("result", r))
    await settle(pilot, 3)
    assert pilot.app.screen is dialog
    return box


def op_dialog(root, name: str, defaults: dict[str, str]) -> OpDialog:
    store = CaptionStore.load(scan_dataset(root))
    return OpDialog(SPEC_BY_NAME[name], store, store.records, "all images", defaults)


async def test_replace_types_the_replacement_and_keeps_find(ds):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = op_dialog(ds, "replace", {"old": "silver hair"})
        box = await open_dialog(pilot, dialog)
        assert app.focused is dialog.query_one("#f-new", Input)
        summary = dialog.query_one("#op-summary", Static)
        await until(pilot, lambda: dialog.plan is not None, "the first preview")
        # nothing typed yet: the preview says plainly that this removes the tag
        assert "REMOVES 'silver hair'" in str(summary.render())
        await pilot.press(*"grey hair")
        await until(pilot, lambda: dialog.plan is not None and "grey hair" in
                    dialog.plan.label, "the preview of the typed replacement")
        assert dialog.query_one("#f-old", Input).value == "silver hair"
        assert "REMOVES" not in str(summary.render())
        # Enter applies from the drop-down too (tab to "Match")
        await pilot.press("tab")
        assert isinstance(app.focused, Select)
        await pilot.press("enter")
        await settle(pilot, 2)
        assert box["result"] is dialog.plan and dialog.plan.files == 4


async def test_space_opens_a_drop_down_where_enter_picks_then_esc_cancels(ds):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = op_dialog(ds, "replace", {"old": "silver"})
        box = await open_dialog(pilot, dialog)
        await pilot.press("tab")  # Match
        select = dialog.query_one("#f-mode", Select)
        assert app.focused is select
        await pilot.press("space")
        await pilot.pause()
        assert select.expanded
        await pilot.press("down", "enter")  # picks "substring", does not apply
        await settle(pilot, 2)
        assert select.value == "substring" and box["result"] is NOTHING
        assert app.screen is dialog
        await pilot.press("escape")
        await settle(pilot, 2)
        assert box["result"] is None


async def test_enter_on_a_checkbox_applies_and_space_toggles_it(ds):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = op_dialog(ds, "add", {"tags": "mira_v2"})
        box = await open_dialog(pilot, dialog)
        assert app.focused is dialog.query_one("#f-tags", Input)
        box_widget = dialog.query_one("#create-missing", Checkbox)
        box_widget.focus()
        await pilot.press("space")
        assert box_widget.value
        await until(pilot, lambda: dialog.plan is not None and dialog.plan.files == 6,
                    "the preview with the 2 new captions")
        await pilot.press("enter")
        await settle(pilot, 2)
        assert box_widget.value  # Enter did not toggle it back
        assert box["result"] is dialog.plan


async def test_a_preset_wins_over_the_prefilled_tag_in_prune(ds):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = op_dialog(ds, "prune", {"tags": "smile"})
        await open_dialog(pilot, dialog)
        preset = dialog.query_one("#f-preset", Select)
        assert app.focused is preset  # the preset list comes first
        await pilot.press("space", "down", "enter")  # the first preset
        await settle(pilot, 2)
        assert preset.value not in ("-", Select.BLANK)
        assert dialog.query_one("#f-tags", Input).value == ""
        await until(pilot, lambda: dialog.plan is not None, "a preview, not a conflict")


async def test_image_tools_start_on_the_tool_and_enter_runs_it(tmp_path):
    root = tmp_path / "ds"
    make_image(root / "2_a" / "a.webp", (64, 64), "WEBP")
    make_image(root / "2_a" / "b.png", (64, 64))
    app = make_app(root, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = ImageToolDialog(root, ".txt")
        box = await open_dialog(pilot, dialog)
        assert app.focused is dialog.query_one("#tool", Select)
        await until(pilot, lambda: dialog.plan is not None, "the convert plan")
        await pilot.press("enter")  # from the drop-down: runs the tool, does not open it
        await until(pilot, lambda: box["result"] is not NOTHING, "the tool to finish")
        assert box["result"] is True and (root / "2_a" / "a.png").exists()


async def test_image_tools_run_from_the_button_and_ctrl_r(tmp_path):
    root = tmp_path / "ds"
    make_image(root / "2_a" / "a.webp", (64, 64), "WEBP")
    app = make_app(root, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = ImageToolDialog(root, ".txt")
        box = await open_dialog(pilot, dialog)
        await until(pilot, lambda: dialog.plan is not None, "the convert plan")
        dialog.query_one("#apply").focus()
        await pilot.press("enter")
        await until(pilot, lambda: box["result"] is not NOTHING, "the run from the button")
        assert box["result"] is True
        make_image(root / "2_a" / "c.webp", (64, 64), "WEBP")
        dialog = ImageToolDialog(root, ".txt")
        box = await open_dialog(pilot, dialog)
        await until(pilot, lambda: dialog.plan is not None and dialog.plan.todo, "a plan")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: box["result"] is not NOTHING, "the run from ctrl+r")
        assert (root / "2_a" / "c.png").exists()


async def test_enter_on_cancel_cancels(tmp_path):
    root = tmp_path / "ds"
    make_image(root / "2_a" / "a.webp", (64, 64), "WEBP")
    app = make_app(root, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = ImageToolDialog(root, ".txt")
        box = await open_dialog(pilot, dialog)
        dialog.query_one("#cancel").focus()
        await pilot.press("enter")
        await settle(pilot, 2)
        assert box["result"] is False and not (root / "2_a" / "a.png").exists()


async def test_repeats_and_recommend_take_enter_from_their_number(ds):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        scan = scan_dataset(ds)
        dialog = RepeatsDialog(scan, scan.concept("10_a"), 8)
        box = await open_dialog(pilot, dialog)
        assert app.focused is dialog.query_one("#repeats", Input)
        await pilot.press(*"12", "enter")  # the old value is selected: typing replaces it
        await settle(pilot, 2)
        assert box["result"].rows[0].new_folder == "12_a"
        plan = plan_of(ds)
        items = [(i.key, i.size, i.repeats) for i in plan.images]
        dialog = RecommendDialog(scan, items, plan.buckets)
        box = await open_dialog(pilot, dialog)
        assert app.focused is dialog.query_one("#rec-k", Input)
        await pilot.press("escape")
        await settle(pilot, 2)
        assert box["result"] is False


async def test_balance_starts_on_the_presets_and_enter_applies(ds):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dialog = BalanceDialog(scan_dataset(ds), 8, "prodigy")
        box = await open_dialog(pilot, dialog)
        presets = dialog.query_one("#preset", OptionList)
        assert app.focused is presets
        assert dialog.query_one("#target", Input).value == "500"  # the config's optimizer
        await pilot.press("up")  # AdamW
        await settle(pilot, 2)
        assert dialog.query_one("#target", Input).value == "1000"
        dialog.query_one("#epochs", Input).focus()
        await pilot.press("enter")
        await settle(pilot, 2)
        assert box["result"] is not None and box["result"].target == 1000


@pytest.mark.parametrize("make", ["replace", "image_tools", "repeats"])
async def test_at_80x24_a_dialog_shows_its_buttons_without_scrolling(ds, make):
    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        scan = scan_dataset(ds)
        dialog = {"replace": lambda: op_dialog(ds, "replace", {"old": "silver hair"}),
                  "image_tools": lambda: ImageToolDialog(ds, ".txt"),
                  "repeats": lambda: RepeatsDialog(scan, scan.concepts[0], 8)}[make]()
        await open_dialog(pilot, dialog)
        await settle(pilot, 3)
        frame = dialog.query_one("#dialog")
        apply_ = dialog.query_one("#apply")
        assert frame.region.bottom <= 24
        # compact fields: the Apply button lies inside the frame as first drawn
        assert frame.scroll_y == 0 and apply_.region.bottom <= frame.region.bottom
        assert all(w.compact for w in dialog.query("Input, Select, Button"))
