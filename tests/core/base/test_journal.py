"""The journal: renames and writes with undo/redo, refusal to overwrite, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lorabake_tui.core.base.atomic import atomic_write_bytes, rename_noreplace
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import (
    APPLYING,
    DONE,
    ROLLED_BACK,
    UNDONE,
    ChangeSet,
    Journal,
    Rename,
)
from lorabake_tui.core.dataset.balance import apply_plan, plan_balance
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept

ORIGINAL = ["10_outfit_a", "10_outfit_b", "10_outfit_c", "misc"]
BALANCED = ["200_misc", "25_outfit_a", "56_outfit_b", "167_outfit_c"]


def folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_rename_noreplace_refuses_even_an_empty_directory(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()  # plain os.rename would silently replace this
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").is_dir()


def test_atomic_write_replaces_whole_file_and_keeps_mode(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("old")
    os.chmod(p, 0o640)
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    assert p.stat().st_mode & 0o777 == 0o640
    assert [x.name for x in tmp_path.iterdir()] == ["c.txt"]  # no temp file left


def test_balance_apply_then_undo_then_redo(small_dataset):
    ds = scan_dataset(small_dataset)
    entry = apply_plan(ds, plan_balance(ds, 1000))
    assert entry.state == DONE
    assert folders(small_dataset) == sorted(BALANCED)
    # images travel with their folder
    assert len(list((small_dataset / "25_outfit_a").glob("*.png"))) == 40
    j = Journal(small_dataset)
    assert j.undo().label == entry.label
    assert folders(small_dataset) == ORIGINAL
    assert j.undo() is None  # nothing more
    assert j.redo() is not None
    assert folders(small_dataset) == sorted(BALANCED)
    assert j.redo() is None


def test_journal_survives_in_the_dataset(small_dataset):
    ds = scan_dataset(small_dataset)
    apply_plan(ds, plan_balance(ds, 1000))
    files = list((small_dataset / ".lorabake" / "journal").glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["op"] == "balance"
    assert json.loads(files[0].with_suffix(".state").read_text())["state"] == DONE
    assert {"kind": "rename", "src": "misc", "dst": "200_misc"} in data["changes"]
    # the journal folder is invisible to the scan
    assert ".lorabake" not in [c.folder for c in scan_dataset(small_dataset).concepts]


def test_apply_refuses_to_rename_onto_an_existing_folder(small_dataset):
    ds = scan_dataset(small_dataset)
    plan = plan_balance(ds, 1000)
    (small_dataset / "25_outfit_a").mkdir()  # appears after the plan was made
    with pytest.raises(LorabakeError, match="already exists"):
        apply_plan(ds, plan)
    assert folders(small_dataset) == sorted(ORIGINAL + ["25_outfit_a"])
    assert Journal(small_dataset).entries() == []  # nothing recorded either


def test_apply_refuses_when_a_source_vanished(small_dataset):
    ds = scan_dataset(small_dataset)
    plan = plan_balance(ds, 1000)
    os.rename(small_dataset / "misc", small_dataset / "elsewhere")
    with pytest.raises(LorabakeError, match="no longer exists"):
        apply_plan(ds, plan)
    assert "10_outfit_a" in folders(small_dataset)


def test_undo_leaves_a_folder_alone_if_its_old_name_was_taken(small_dataset):
    ds = scan_dataset(small_dataset)
    apply_plan(ds, plan_balance(ds, 1000))
    (small_dataset / "misc").mkdir()  # someone reused the old name meanwhile
    entry = Journal(small_dataset).undo()
    assert entry.state == UNDONE
    assert any("misc exists again" in c for c in entry.conflicts)
    assert (small_dataset / "200_misc").is_dir()  # not moved onto the new folder
    assert (small_dataset / "10_outfit_a").is_dir()  # the others were restored


def test_new_operation_drops_the_redo_branch(small_dataset):
    ds = scan_dataset(small_dataset)
    apply_plan(ds, plan_balance(ds, 1000))
    j = Journal(small_dataset)
    j.undo()
    ds = scan_dataset(small_dataset)
    apply_plan(ds, plan_balance(ds, 500))
    assert j.can_redo() is None
    assert [e.state for e in j.entries()] == [DONE]


def test_write_changes_undo_redo_and_conflicts(tmp_path):
    make_concept(tmp_path, "1_a", 1, caption="old, tags")
    cap = tmp_path / "1_a" / "img_000.txt"
    j = Journal(tmp_path)
    before = cap.read_bytes()
    cs = ChangeSet()
    cs.write("1_a/img_000.txt", b"new, tags\n", before)
    j.apply("tags", "replace old", cs)
    assert cap.read_bytes() == b"new, tags\n"
    j.undo()
    assert cap.read_bytes() == before
    j.redo()
    assert cap.read_bytes() == b"new, tags\n"
    cap.write_bytes(b"edited by hand\n")  # someone else changes it
    entry = j.undo()
    assert entry.conflicts and cap.read_bytes() == b"edited by hand\n"


def test_write_refused_when_file_changed_since_read(tmp_path):
    make_concept(tmp_path, "1_a", 1, caption="x")
    cap = tmp_path / "1_a" / "img_000.txt"
    j = Journal(tmp_path)
    cs = ChangeSet()
    cs.write("1_a/img_000.txt", b"y\n", b"stale bytes\n")
    with pytest.raises(LorabakeError, match="changed on disk"):
        j.apply("tags", "edit", cs)
    assert cap.read_bytes() == b"x\n"


def test_write_creating_a_file_is_undone_by_deleting_it(tmp_path):
    (tmp_path / "1_a").mkdir()
    j = Journal(tmp_path)
    cs = ChangeSet()
    cs.write("1_a/new.txt", b"t\n", None)
    j.apply("tags", "create", cs)
    assert (tmp_path / "1_a" / "new.txt").exists()
    j.undo()
    assert not (tmp_path / "1_a" / "new.txt").exists()


def test_another_writer_holds_the_lock(tmp_path):
    j = Journal(tmp_path)
    # a second handle in the same process is a second flock owner
    with j.locked(), pytest.raises(LorabakeError, match="another lorabake process"), \
            Journal(tmp_path).locked(timeout=0.2):
        pass


KILLER = textwrap.dedent("""
    import os, signal, sys
    from lorabake_tui.core.base import journal
    from lorabake_tui.core.dataset.balance import apply_plan, plan_balance
    from lorabake_tui.core.dataset.scan import scan_dataset

    root, kill_at = sys.argv[1], int(sys.argv[2])
    real, real_save = journal.rename_noreplace, journal.Journal._save_state
    done = 0

    def rename(src, dst):
        global done
        if done == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
        done += 1

    def save(self, entry):
        # kill_at == number of renames: die after the last rename, before "done" is written
        if entry.state == "done" and done == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(self, entry)

    journal.rename_noreplace = rename
    journal.Journal._save_state = save
    ds = scan_dataset(root)
    apply_plan(ds, plan_balance(ds, 1000))
""")


@pytest.mark.parametrize("kill_at", [0, 1, 3, 4])
def test_process_killed_mid_apply_then_rollback(small_dataset, kill_at):
    proc = subprocess.run([sys.executable, "-c", KILLER, str(small_dataset), str(kill_at)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # every folder has exactly its old or its new name, never both, never neither
    now = set(folders(small_dataset))
    pairs = list(zip(ORIGINAL, ["25_outfit_a", "56_outfit_b", "167_outfit_c", "200_misc"],
                     strict=True))
    for old, new in pairs:
        assert (old in now) != (new in now), (old, new, now)
    assert sum(new in now for _, new in pairs) == kill_at
    j = Journal(small_dataset)
    pending = j.interrupted()
    assert pending is not None and pending.state == APPLYING
    # new changes are refused until the interrupted one is dealt with
    with pytest.raises(LorabakeError, match="interrupted"):
        j.apply("balance", "again", [Rename("10_outfit_a", "1_outfit_a")])
    # `lorabake undo` rolls it back
    from lorabake_tui.cli import main

    assert main(["undo", str(small_dataset)]) == 0
    assert folders(small_dataset) == ORIGINAL
    assert j.interrupted() is None
    assert j.entries()[-1].state == ROLLED_BACK
    assert len(list((small_dataset / "10_outfit_a").glob("*.png"))) == 40


def test_undo_with_no_journal_creates_nothing(tmp_path):
    assert Journal(tmp_path).undo() is None
    assert Journal(tmp_path).redo() is None
    assert list(tmp_path.iterdir()) == []


def test_move_aside_then_write_in_its_place_and_undo(tmp_path):
    (tmp_path / "1_a").mkdir()
    img = tmp_path / "1_a" / "x.png"
    img.write_bytes(b"original")
    j = Journal(tmp_path)
    cs = ChangeSet()
    cs.rename("1_a/x.png", ".lorabake/originals/1_a/x.png")
    cs.write("1_a/x.png", b"resized", None)
    j.apply("images", "resize", cs)
    assert img.read_bytes() == b"resized"
    assert (tmp_path / ".lorabake/originals/1_a/x.png").read_bytes() == b"original"
    j.undo()
    assert img.read_bytes() == b"original"
    assert not (tmp_path / ".lorabake/originals/1_a/x.png").exists()
    j.redo()
    assert img.read_bytes() == b"resized"


def test_two_writes_creating_one_file_are_refused(tmp_path):
    (tmp_path / "1_a").mkdir()
    cs = ChangeSet()
    cs.write("1_a/n.txt", b"a", None)
    cs.write("1_a/n.txt", b"b", None)
    with pytest.raises(LorabakeError):
        Journal(tmp_path).apply("x", "x", cs)
    assert not (tmp_path / "1_a" / "n.txt").exists()


def test_the_pending_question_reads_state_files_not_whole_entries(small_dataset):
    ds = scan_dataset(small_dataset)
    entry = apply_plan(ds, plan_balance(ds, 1000))
    j = Journal(small_dataset)
    big = j.dir / f"{entry.id:06d}.json"
    state = big.with_suffix(".state")
    # a done entry is never parsed to answer it (an unreadable body goes unnoticed here)
    body = big.read_bytes()
    big.write_bytes(b"{not json")
    assert Journal(small_dataset).interrupted() is None
    # killed before its first state file: the body says "applying", and is read
    data = json.loads(body)
    data["state"] = APPLYING
    big.write_text(json.dumps(data))
    state.unlink()
    pending = Journal(small_dataset).interrupted()
    assert pending is not None and pending.id == entry.id and pending.state == APPLYING
    # a damaged state file: the whole entry is read, and the damage named
    state.write_text("{")
    with pytest.raises(LorabakeError, match="damaged"):
        Journal(small_dataset).interrupted()
