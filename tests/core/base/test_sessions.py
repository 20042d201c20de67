"""Workbench sessions and change origins, with real processes: a second workbench on a
dataset is seen while the first runs (and not after it is killed), and undo says whose
change it takes back."""

from __future__ import annotations

import signal

import pytest

from lorabake_tui.cli import main as cli_main
from lorabake_tui.core.base import sessions
from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.base.sessions import Sessions, current_origin, describe_origin

from ...support.helpers import make_concept
from ...support.other_workbench import start_other, stop


@pytest.fixture
def ds(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_a", 2)
    return root


@pytest.fixture(autouse=True)
def no_session_left():
    yield
    sessions._current = None  # each test starts as a bare command


def test_a_second_workbench_sees_the_first_until_it_ends_however_it_ends(ds):
    first = start_other(ds, "workbench")
    mine = Sessions(ds)
    try:
        (other,) = mine.open()
        assert other.pid == first.pid and "open since" in other.describe()
        assert mine.others() == [other]
        stop(first, signal.SIGKILL)  # no chance to clean up: the kernel drops its lock
        assert mine.others() == []
        # its leftover file went with the look; this workbench's own stays
        assert [p.name for p in mine.dir.glob("*.json")] == [f"{mine._path.name}"]
    finally:
        mine.close()
    assert list(mine.dir.glob("*.json")) == []


def test_a_missing_dataset_folder_is_not_created(tmp_path):
    assert Sessions(tmp_path / "gone").open() == []
    assert not (tmp_path / "gone").exists()


def test_undo_names_the_workbench_or_command_that_made_the_change(ds, capsys):
    other = start_other(ds, "workbench", "10_a", "20_a")
    try:
        entry = Journal(ds).can_undo()
        assert entry.origin.startswith("workbench ") and entry.origin != current_origin()
        assert describe_origin(entry.origin) == f"another workbench (pid {other.pid})"
        assert cli_main(["undo", str(ds)]) == 0
        out = capsys.readouterr().out
        assert out.strip() == (f"undid: repeats of 10_a -> 20_a (a change made by another "
                               f"workbench (pid {other.pid}))")
    finally:
        stop(other)
    command = start_other(ds, "command", "10_a", "20_a")
    stop(command)
    assert describe_origin(Journal(ds).can_undo().origin) == \
        f"the lorabake command (pid {command.pid})"
    # a change this process makes is its own: nothing to add
    assert cli_main(["undo", str(ds)]) == 0
    capsys.readouterr()
    assert cli_main(["redo", str(ds)]) == 0
    assert "a change made by" in capsys.readouterr().out  # redo of the command's change
    Journal(ds).undo()
    from lorabake_tui.core.base.journal import Rename

    mine = Journal(ds).apply("set-repeats", "mine", [Rename("10_a", "30_a")])
    assert mine.origin == current_origin() and describe_origin(mine.origin) is None
