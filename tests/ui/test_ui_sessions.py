"""Two workbenches on one dataset, driven as a user would: the second is warned at start, and
an undo that takes back the other one's change says so."""

from __future__ import annotations

import pytest

from lorabake_tui.core.base import sessions
from lorabake_tui.ui.app import make_app

from ..support.helpers import make_concept, settle, until
from ..support.other_workbench import start_other, stop


@pytest.fixture
def ds(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_a", 2)
    make_concept(root, "5_b", 2)
    return root


async def test_the_second_workbench_is_warned_and_undo_names_the_other(ds):
    other = start_other(ds, "workbench", "10_a", "20_a")  # open there, and a change made
    try:
        app = make_app(ds, images="none", save_settings=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, 3)
            warning = next(n for n in app.notices if n.title == "Dataset open elsewhere")
            assert f"pid {other.pid}" in warning.message and warning.severity == "warning"
            assert "one undo history" in warning.message
            assert app.sessions.others()[0].pid == other.pid
            await pilot.press("u")
            note = await until(pilot, lambda: app.notices[-1].title == "Undid"
                               and app.notices[-1], "the undo notice")
            assert note.message == ("repeats of 10_a -> 20_a: a change made by another "
                                    f"workbench (pid {other.pid})")
            assert (ds / "10_a").is_dir() and not (ds / "20_a").exists()
        # the workbench that quit took its session file with it; the other's stays
        (left,) = app.sessions.dir.glob("*.json")
        assert f"-{other.pid}-" in left.name
    finally:
        stop(other)
        sessions._current = None


async def test_alone_there_is_no_warning_and_own_undo_is_plain(ds):
    app = make_app(ds, images="none", save_settings=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, 3)
            assert not [n for n in app.notices if n.title == "Dataset open elsewhere"]
            await pilot.press("r")
            await settle(pilot, 2)
            await pilot.press("backspace", "backspace", "7", "enter")  # 10_a -> 7_a
            await settle(pilot, 3)
            assert (ds / "7_a").is_dir()
            await pilot.press("u")
            await until(pilot, lambda: app.notices[-1].message.startswith("Undid:"),
                        "the undo notice")
            assert (ds / "10_a").is_dir()
    finally:
        sessions._current = None
