"""One project across the stages, driven by Pilot as a new user would: balance the demo, see
the config stay valid and train it, undo, train again; change the resolution on the Buckets
screen and see training.toml, the Config summary and the Buckets numbers agree, undo both."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from lorabake_tui.cli import main
from lorabake_tui.core.base.project_files import ProjectFiles
from lorabake_tui.core.config.file import set_value_in_text
from lorabake_tui.core.project.project import Project
from lorabake_tui.core.run import exit_codes
from lorabake_tui.demo.project import ensure_demo
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.screens.balance_dialog import BalanceDialog
from lorabake_tui.ui.screens.buckets import BucketsScreen
from lorabake_tui.ui.screens.concepts import ConceptsScreen
from lorabake_tui.ui.screens.config import ConfigScreen

from ..support.helpers import settle, until

SIZE = (160, 48)


@pytest.fixture
def demo(tmp_path) -> Path:
    root, _ = ensure_demo(tmp_path / "demo")
    config = ProjectFiles(root).config
    config.write_text(set_value_in_text(config.read_text(), "general", "max_steps", 2))
    return root


def folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


async def config_result(pilot):
    """Go to the Config stage and wait for its check of the current text."""
    await pilot.press("4")
    screen = pilot.app.screen
    assert isinstance(screen, ConfigScreen)
    await until(pilot, lambda: screen.result is not None and not screen._loading
                and screen.result.doc is not None
                and screen.result.doc.text == screen._editor_text(), "the config check")
    await settle(pilot, 2)
    return screen.result


def train(root: Path, run: Path) -> int:
    """What a queued job runs (`lorabake train CONFIG`), in the foreground here."""
    return main(["train", str(ProjectFiles(root).config), "--run-dir", str(run)])


async def test_balance_then_train_then_undo_then_train(demo, tmp_path):
    before = folders(demo)
    config_text = ProjectFiles(demo).config.read_text()
    samples = Project(demo).check().plan.train_samples
    app = make_app(demo, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ConceptsScreen)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BalanceDialog), "the balance dialog")
        await settle(pilot, 2)
        await pilot.press("enter")
        await until(pilot, lambda: folders(demo) != before, "the folders renamed")
        assert "10_mira_casual" not in folders(demo)
        assert ProjectFiles(demo).config.read_text() == config_text  # names concepts
        result = await config_result(pilot)
        assert not result.errors, result.errors
        assert result.plan.train_samples > samples  # the balanced folders, freshly scanned
        summary = str(app.screen.query_one("#cfg-summary", Static).render())
        assert f"{result.plan.samples_per_epoch} samples per epoch" in summary
        assert train(demo, tmp_path / "run1") == exit_codes.DONE
        await pilot.press("1")
        await settle(pilot)
        await pilot.press("u")
        await until(pilot, lambda: folders(demo) == before, "the renames undone")
        result = await config_result(pilot)
        assert not result.errors, result.errors
        assert result.plan.train_samples == samples  # not the scan from before the undo
        assert train(demo, tmp_path / "run2") == exit_codes.DONE


async def test_buckets_resolution_goes_into_the_config_and_undo_reverts_both(demo):
    config = ProjectFiles(demo).config

    def resolution() -> int:
        return tomllib.loads(config.read_text())["buckets"]["resolution"]

    app = make_app(demo, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, BucketsScreen)
        await until(pilot, lambda: screen.plan is not None, "the bucket plan")
        field = screen.query_one("#bk-resolution", Input)
        assert field.value == "128" and screen.query_one("#bk-batch", Input).value == "2"
        def numbers(plan):
            return plan.batches_per_epoch, sorted(plan.report.buckets)

        first = numbers(screen.plan)
        await pilot.press("e", "end", "backspace", "backspace", "backspace", *"192")
        await until(pilot, lambda: "what-if" in str(
            screen.query_one("#bk-summary", Static).render()), "the what-if")
        assert resolution() == 128  # a what-if until enter
        await pilot.press("enter")
        await until(pilot, lambda: resolution() == 192, "training.toml updated")
        await settle(pilot, 2)
        changed = numbers(screen.plan)
        assert changed[1] != first[1]  # 192 px buckets
        assert "as in training.toml" in str(screen.query_one("#bk-summary", Static).render())
        result = await config_result(pilot)
        assert numbers(result.plan) == changed
        assert "resolution = 192" in app.screen._editor_text()
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("u")
        await until(pilot, lambda: resolution() == 128, "the config restored")
        await until(pilot, lambda: screen.plan is not None and field.value == "128"
                    and numbers(screen.plan) == first, "the Buckets numbers back")
        result = await config_result(pilot)
        assert numbers(result.plan) == first
        assert "resolution = 128" in app.screen._editor_text()
