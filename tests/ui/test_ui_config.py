"""The Config screen: choose a preset, make the Prodigy + scale-weight-norms mistake, see the
error on its line, fix it, save, read the diff."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from textual.widgets import Select, Static, TextArea

from lorabake_tui.core.config.file import line_map
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.config import ConfigScreen, config_path
from lorabake_tui.ui.widgets.virtual_list import VirtualList

from ..support.helpers import settle, until, write_safetensors_stub
from .test_ui_train import jobenv  # noqa: F401

SIZE = (160, 48)




def end_of_line(editor: TextArea, key: str) -> tuple[int, int]:
    line = line_map(editor.text)[key]
    return (line - 1, len(editor.text.splitlines()[line - 1]))


async def test_prodigy_with_scale_weight_norms_error_fix_save_diff(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        editor = screen.query_one("#cfg-editor", TextArea)
        assert "[optimizer]" in editor.text
        # choose the Prodigy preset with the keyboard
        await pilot.press("ctrl+o", "enter")
        presets = [str(v) for _, v in screen.query_one("#cfg-preset", Select)._options]
        for _ in range(presets.index("lora-prodigy") - presets.index("lora-adamw")):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause(0.5)
        assert 'type = "Prodigy"' in editor.text
        # the mistake: scale weight norms with Prodigy
        editor.focus()
        editor.move_cursor(end_of_line(editor, "optimizer.scale_weight_norms"))
        await pilot.press("backspace", "1")
        await pilot.pause(0.6)
        findings = screen.query_one("#cfg-findings", VirtualList).items
        [err] = [f for f in findings if f.key == "optimizer.scale_weight_norms"]
        assert err.severity == "error" and "Prodigy" in err.message
        assert err.line == line_map(editor.text)["optimizer.scale_weight_norms"]
        diff = str(screen.query_one("#cfg-diff", Static).render())
        assert "optimizer.scale_weight_norms" in diff
        # enter on the finding jumps to its line
        await pilot.press("ctrl+d")
        for _ in range(findings.index(err)):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause()
        assert editor.cursor_location[0] == err.line - 1
        # fix it and save
        editor.move_cursor(end_of_line(editor, "optimizer.scale_weight_norms"))
        await pilot.press("backspace", "0")
        await pilot.pause(0.6)
        findings = screen.query_one("#cfg-findings", VirtualList).items
        assert not [f for f in findings if f.key == "optimizer.scale_weight_norms"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = tomllib.loads(config_path(small_dataset).read_text())
        assert saved["optimizer"]["type"] == "Prodigy"
        assert saved["optimizer"]["scale_weight_norms"] == 0
        assert "saved" in str(screen.query_one("#cfg-summary", Static).render())


async def test_form_edits_one_line_and_keeps_comments(small_dataset):
    path = config_path(small_dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        editor = screen.query_one("#cfg-editor", TextArea)
        editor.load_text(editor.text.replace("seed = 42", "seed = 42  # my lucky seed"))
        await pilot.press("ctrl+f")
        await pilot.pause()
        lst = app.screen.query_one("#set-list", VirtualList)
        target = next(i for i, r in enumerate(lst.items) if getattr(r, "name", "") ==
                      "general.seed")
        for _ in range(target):
            await pilot.press("down")
        help_text = str(app.screen.query_one("#set-help", Static).render())
        assert "general.seed" in help_text and "Random seed" in help_text
        await pilot.press("enter", *"7", "enter")  # the old value is selected: typing replaces it
        await pilot.pause()
        field = app.screen.query_one("#set-value")
        assert not field.display
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfigScreen)
        assert "seed = 7  # my lucky seed" in editor.text


@pytest.mark.usefixtures("jobenv")
async def test_queue_refuses_errors_then_shows_in_train(small_dataset, tmp_path):
    from lorabake_tui.jobs.store import Registry
    from lorabake_tui.ui.screens.train import TrainScreen

    state = Path(os.environ["LORABAKE_STATE_DIR"])

    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        editor = app.screen.query_one("#cfg-editor", TextArea)
        await pilot.press("ctrl+t")  # base_model is empty: an error
        await pilot.pause()
        assert not (state / "jobs.sqlite").exists() or not Registry(
            state / "jobs.sqlite", reconcile=False).jobs()
        model = tmp_path / "m.safetensors"
        write_safetensors_stub(model)
        editor.load_text(editor.text.replace('base_model = ""', f'base_model = "{model}"'))
        await pilot.pause(0.6)
        await pilot.press("ctrl+t")
        await pilot.pause()
        with Registry(state / "jobs.sqlite", reconcile=False) as reg:
            [job] = reg.jobs()
        # the confirmation stays in the summary, not only in a passing notification
        summary = str(app.screen.query_one("#cfg-summary", Static).render())
        assert f"queued {job.id}" in summary
        assert f'base_model = "{model}"' in Path(job.config).read_text()
        await pilot.press("5")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen)
        shown = await until(pilot, lambda: app.screen.job, "the queued job on Train")
        assert shown.id == job.id


async def test_summary_says_where_max_steps_stops_the_run(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        editor = screen.query_one("#cfg-editor", TextArea)
        summary = screen.query_one("#cfg-summary", Static)
        await until(pilot, lambda: "steps over" in str(summary.render()), "the step summary")
        assert "max_steps" not in str(summary.render())  # 0: the epochs decide
        assert "max_steps = 0" in editor.text
        editor.load_text(editor.text.replace("max_steps = 0", "max_steps = 7"))
        await until(pilot, lambda: "stops it at 7 (in epoch 1)" in str(summary.render()),
                    "the max_steps cut in the summary")


async def test_editor_keys_go_to_a_line_and_leave_the_editor(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        editor = screen.query_one("#cfg-editor", TextArea)
        findings = screen.query_one("#cfg-findings", VirtualList)
        assert app.focused is findings  # the screen opens outside the editor
        line = line_map(editor.text)["network.dim"]
        await pilot.press("ctrl+g", *str(line), "enter")
        await pilot.pause()
        assert app.focused is editor and editor.cursor_location == (line - 1, 0)
        await pilot.press("ctrl+g", *"end", "enter")
        assert editor.cursor_location[0] == editor.document.line_count - 1
        await pilot.press("escape")  # out of the editor: the stage keys work again
        assert app.focused is findings
        await pilot.press("5")
        await settle(pilot)
        assert app.screen is not screen


async def test_closing_the_form_never_leaves_keys_typing_into_the_editor(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        editor = screen.query_one("#cfg-editor", TextArea)
        await pilot.press("ctrl+e", "ctrl+f")  # the form, opened from inside the editor
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        text = editor.text
        await pilot.press("5")
        await settle(pilot)
        assert editor.text == text  # "5" switched stages, it was not typed


async def test_form_shows_and_edits_a_list_on_one_line(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        editor = app.screen.query_one("#cfg-editor", TextArea)
        await pilot.press("ctrl+f")
        await pilot.pause()
        form = app.screen
        lst = form.query_one("#set-list", VirtualList)
        target = next(i for i, r in enumerate(lst.items) if getattr(r, "name", "") ==
                      "optimizer.betas")
        # the row as the list draws it: one line (a list used to spread over four)
        row = form._row(lst.items[target], 80).plain
        assert "\n" not in row and row.rstrip().endswith("[0.9, 0.999]")
        for _ in range(target):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause()
        assert form.query_one("#set-value").value == "[0.9, 0.999]"
        await pilot.press(*"[0.8, 0.99]", "enter", "escape")
        await pilot.pause()
        assert "betas = [0.8, 0.99]" in editor.text
