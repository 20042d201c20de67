"""What the journal leaves alone: a file edited while an operation writes (seen by content
right before it is replaced), a read-only file, a link out of the dataset; a link inside the
dataset is edited at its target and stays a link. Also a kill in the middle of the swap that
replaces a file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lorabake_tui.core.base import atomic
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import DONE, ChangeSet, Journal, stat_signature
from lorabake_tui.core.captions.store import CaptionStore
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept

READ_ONLY_MSG = "read-only: left alone (chmod u+w to let lorabake edit it)"


@pytest.fixture
def ds(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_concept(root, "10_a", 3, caption="mira, tiara")
    return root


def cap(root: Path, i: int) -> Path:
    return root / "10_a" / f"img_{i:03d}.txt"


def load(root: Path) -> CaptionStore:
    return CaptionStore.load(scan_dataset(root))


def add_tag(store: CaptionStore, tag: str = "hat"):
    return store.plan(lambda tags: [*tags, tag], store.records, f"add {tag}")


def edit_in_window(monkeypatch, target: Path, data: bytes) -> list[Path]:
    """Edit `target` between its final content check and its replacement."""
    seen: list[Path] = []

    def hook(path: Path) -> None:
        seen.append(path)
        if path == target:
            target.write_bytes(data)

    monkeypatch.setattr(atomic, "after_final_check", hook)
    return seen


# ---- an edit while lorabake writes -----------------------------------------------------------

def test_edit_between_final_check_and_rename_is_kept_reported_and_left_by_undo(
        ds, monkeypatch):
    store = load(ds)
    plan = add_tag(store)
    seen = edit_in_window(monkeypatch, cap(ds, 1), b"mira, tiara, my own edit\n")
    result = store.apply(plan)
    assert len(seen) == 3  # every file was checked; the hook ran in the window
    assert cap(ds, 1).read_bytes() == b"mira, tiara, my own edit\n"  # never overwritten
    assert result.written == 2
    assert result.skipped == ["10_a/img_001.txt changed on disk since it was read"]
    assert cap(ds, 0).read_bytes() == cap(ds, 2).read_bytes() == b"mira, tiara, hat\n"
    assert store.by_rel["10_a/img_001.txt"].tags == ["mira", "tiara", "my own edit"]
    monkeypatch.setattr(atomic, "after_final_check", None)
    # the entry, read back from disk, knows the file was left out: undo does not touch it
    j = Journal(ds)
    entry = j.can_undo()
    assert [ch.path for ch in entry.changes] == ["10_a/img_000.txt", "10_a/img_002.txt"]
    assert entry.skipped == result.skipped
    undone = j.undo()
    assert undone.conflicts == []
    assert cap(ds, 1).read_bytes() == b"mira, tiara, my own edit\n"
    assert cap(ds, 0).read_bytes() == cap(ds, 2).read_bytes() == b"mira, tiara\n"
    assert j.redo().conflicts == []
    assert cap(ds, 1).read_bytes() == b"mira, tiara, my own edit\n"
    assert cap(ds, 0).read_bytes() == b"mira, tiara, hat\n"


def test_edit_in_the_window_refuses_an_all_or_nothing_operation(ds, monkeypatch):
    before = [cap(ds, i).read_bytes() for i in range(3)]
    cs = ChangeSet()
    for i in range(3):
        cs.write(f"10_a/img_{i:03d}.txt", b"new\n", before[i],
                 stat_signature(cap(ds, i)))
    edit_in_window(monkeypatch, cap(ds, 2), b"mine\n")
    with pytest.raises(LorabakeError, match="rolled back.*img_002.txt changed on disk"):
        Journal(ds).apply("tags", "edit", cs)
    assert [cap(ds, i).read_bytes() for i in range(3)] == [*before[:2], b"mine\n"]
    entry = Journal(ds).entries()[-1]
    assert entry.state == "rolled-back" and entry.conflicts == []


def test_same_size_edit_with_the_old_mtime_is_caught_by_content(ds):
    """`rsync -t`, `cp -p`: size and mtime as when lorabake read the file."""
    store = load(ds)
    plan = add_tag(store)
    target = cap(ds, 0)
    st = target.stat()
    target.write_bytes(b"mira, TIARA\n")  # same length as "mira, tiara\n"
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert stat_signature(target) == store.by_rel["10_a/img_000.txt"].stat
    result = store.apply(plan)
    assert result.skipped == ["10_a/img_000.txt changed on disk since it was read"]
    assert target.read_bytes() == b"mira, TIARA\n"
    entry = Journal(ds).undo()
    assert entry.conflicts == [] and target.read_bytes() == b"mira, TIARA\n"


def test_every_file_edited_in_the_window_is_an_error_and_changes_nothing(ds, monkeypatch):
    store = load(ds)
    plan = add_tag(store)
    monkeypatch.setattr(atomic, "after_final_check", lambda p: p.write_bytes(b"theirs\n"))
    with pytest.raises(LorabakeError, match="every file was left alone"):
        store.apply(plan)
    assert {cap(ds, i).read_bytes() for i in range(3)} == {b"theirs\n"}
    assert Journal(ds).can_undo() is None  # nothing to undo: nothing was done


def test_undo_never_replaces_a_file_edited_in_its_window(ds, monkeypatch):
    store = load(ds)
    store.apply(add_tag(store))
    edit_in_window(monkeypatch, cap(ds, 0), b"edited during the undo\n")
    entry = Journal(ds).undo()
    assert entry.conflicts == ["10_a/img_000.txt was edited after this operation; left as is"]
    assert cap(ds, 0).read_bytes() == b"edited during the undo\n"
    assert cap(ds, 1).read_bytes() == b"mira, tiara\n"


# ---- read-only files ---------------------------------------------------------------------

def test_a_read_only_caption_is_left_alone_and_reported(ds):
    os.chmod(cap(ds, 1), 0o444)
    mtime = cap(ds, 1).stat().st_mtime_ns
    store = load(ds)
    result = store.apply(add_tag(store))
    assert result.skipped == [f"10_a/img_001.txt: {READ_ONLY_MSG}"]
    assert cap(ds, 1).read_bytes() == b"mira, tiara\n"
    assert cap(ds, 1).stat().st_mtime_ns == mtime and cap(ds, 1).stat().st_mode & 0o777 == 0o444
    assert cap(ds, 0).read_bytes() == b"mira, tiara, hat\n"


def test_undo_and_redo_never_replace_a_read_only_file(ds):
    store = load(ds)
    store.apply(add_tag(store))
    j = Journal(ds)
    os.chmod(cap(ds, 0), 0o444)
    entry = j.undo()
    assert entry.conflicts == [f"10_a/img_000.txt: {READ_ONLY_MSG}"]
    assert cap(ds, 0).read_bytes() == b"mira, tiara, hat\n"
    assert cap(ds, 1).read_bytes() == b"mira, tiara\n"
    os.chmod(cap(ds, 0), 0o644)
    # redo: a file made read-only meanwhile refuses the redo, nothing changed
    os.chmod(cap(ds, 1), 0o444)
    with pytest.raises(LorabakeError, match=re.escape(f"img_001.txt: {READ_ONLY_MSG}")):
        j.redo()
    assert cap(ds, 1).read_bytes() == cap(ds, 2).read_bytes() == b"mira, tiara\n"
    os.chmod(cap(ds, 1), 0o644)
    # the one undo left alone is already as the entry has it: redo does the others
    assert j.redo().conflicts == []
    assert {cap(ds, i).read_bytes() for i in range(3)} == {b"mira, tiara, hat\n"}


# ---- links -------------------------------------------------------------------------------

def test_a_linked_caption_is_edited_at_its_target_and_stays_a_link(ds):
    shared = ds / "shared"
    shared.mkdir()
    (shared / "mira.txt").write_bytes(b"mira, tiara\n")
    link = cap(ds, 1)
    link.unlink()
    os.symlink("../shared/mira.txt", link)
    store = load(ds)
    result = store.apply(add_tag(store))
    assert result.skipped == [] and result.written == 3
    assert link.is_symlink() and os.readlink(link) == "../shared/mira.txt"
    assert (shared / "mira.txt").read_bytes() == b"mira, tiara, hat\n"
    entry = Journal(ds).can_undo()
    written = {ch.path: ch.via for ch in entry.changes}
    assert written[os.path.join("shared", "mira.txt")] == "10_a/img_001.txt"
    assert store.by_rel["10_a/img_001.txt"].tags == ["mira", "tiara", "hat"]
    j = Journal(ds)
    undone = j.undo()
    assert undone.conflicts == []
    assert link.is_symlink() and (shared / "mira.txt").read_bytes() == b"mira, tiara\n"
    store.refresh_entry(undone)
    assert store.by_rel["10_a/img_001.txt"].tags == ["mira", "tiara"]
    j.redo()
    assert link.is_symlink() and (shared / "mira.txt").read_bytes() == b"mira, tiara, hat\n"


def test_a_link_out_of_the_dataset_is_left_alone(ds, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes(b"mira, tiara\n")
    os.chmod(outside, 0o644)
    cap(ds, 0).unlink()
    os.symlink(outside, cap(ds, 0))
    cap(ds, 2).unlink()
    os.symlink("gone.txt", cap(ds, 2))  # dangling
    store = load(ds)
    result = store.apply(add_tag(store, "x"))
    assert result.skipped == [
        "10_a/img_000.txt: is a link to a file outside the dataset: left alone"]
    assert outside.read_bytes() == b"mira, tiara\n" and cap(ds, 0).is_symlink()
    assert cap(ds, 1).read_bytes() == b"mira, tiara, x\n"
    # a dangling link is never replaced by a new caption either
    plan = store.plan(lambda t: ["y"], store.records, "y", create_missing=True)
    result = store.apply(plan)
    assert "10_a/img_002.txt: is a link to a missing file: left alone" in result.skipped
    assert cap(ds, 2).is_symlink() and not cap(ds, 2).exists()


def test_two_links_to_one_file_are_written_once(ds):
    (ds / "shared.txt").write_bytes(b"mira\n")
    for i in (0, 1):
        cap(ds, i).unlink()
        os.symlink("../shared.txt", cap(ds, i))
    # the same edit through both: written once, nothing to report
    store = load(ds)
    result = store.apply(add_tag(store))
    assert result.skipped == [] and (ds / "shared.txt").read_bytes() == b"mira, hat\n"
    assert len(Journal(ds).can_undo().changes) == 2  # shared.txt and img_002.txt
    # different edits of one file in one operation: the second is reported
    cs = ChangeSet()
    cs.write("10_a/img_000.txt", b"first\n", b"mira, hat\n")
    cs.write("10_a/img_001.txt", b"second\n", b"mira, hat\n")
    entry = Journal(ds).apply("tags", "two", cs, skip_conflicts=True)
    assert (ds / "shared.txt").read_bytes() == b"first\n"
    assert entry.skipped == ["10_a/img_001.txt: the same file as 10_a/img_000.txt (a link), "
                             "which this operation already changes differently: left alone"]
    Journal(ds).undo()
    assert (ds / "shared.txt").read_bytes() == b"mira, hat\n"
    assert cap(ds, 0).is_symlink() and cap(ds, 1).is_symlink()


def test_a_link_moved_aside_is_not_resolved_and_a_new_file_takes_its_place(tmp_path):
    """The image tools move a file aside, then write a new one at its name: when the file
    moved is a link, the link moves (still a link) and its target is not written."""
    (tmp_path / "1_a").mkdir()
    (tmp_path / "src.png").write_bytes(b"target bytes")
    os.symlink("../src.png", tmp_path / "1_a" / "x.png")
    cs = ChangeSet()
    cs.rename("1_a/x.png", "1_a/.orig/x.png")
    cs.write("1_a/x.png", b"new file", None)
    j = Journal(tmp_path)
    j.apply("images", "convert", cs)
    assert not (tmp_path / "1_a" / "x.png").is_symlink()
    assert (tmp_path / "1_a" / "x.png").read_bytes() == b"new file"
    assert (tmp_path / "src.png").read_bytes() == b"target bytes"
    assert (tmp_path / "1_a" / ".orig" / "x.png").is_symlink()
    j.undo()
    assert (tmp_path / "1_a" / "x.png").is_symlink()
    assert (tmp_path / "1_a" / "x.png").read_bytes() == b"target bytes"


def test_redo_refuses_a_file_that_became_a_link(ds):
    store = load(ds)
    store.apply(add_tag(store))
    j = Journal(ds)
    j.undo()
    (ds / "copy.txt").write_bytes(cap(ds, 0).read_bytes())  # the very bytes redo expects
    cap(ds, 0).unlink()
    os.symlink("../copy.txt", cap(ds, 0))
    with pytest.raises(LorabakeError, match="img_000.txt: is a link now: left alone"):
        j.redo()
    assert cap(ds, 0).is_symlink() and (ds / "copy.txt").read_bytes() == b"mira, tiara\n"
    assert cap(ds, 1).read_bytes() == b"mira, tiara\n"


# ---- a kill in the middle of a swap ----------------------------------------------------------

SWAP_KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from lorabake_tui.core.base import atomic
    from lorabake_tui.core.captions.store import CaptionStore
    from lorabake_tui.core.dataset.scan import scan_dataset

    root, kill_at, edit = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    real, calls = atomic._exchange, [0]

    def exchange(a, b):
        ok = real(a, b)
        calls[0] += 1
        if calls[0] == kill_at:  # killed right after this swap
            os.kill(os.getpid(), signal.SIGKILL)
        return ok

    def hook(path):
        if path.name == edit:
            path.write_bytes(b"edited in the window, longer\\n")

    atomic._exchange = exchange
    atomic.after_final_check = hook
    store = CaptionStore.load(scan_dataset(root))
    store.apply(store.plan(lambda t: [*t, "hat"], store.records, "add hat"))
""")


@pytest.mark.parametrize(("kill_at", "edit"), [
    (1, "none"),  # after the first file's swap, before its old bytes are checked and removed
    (2, "none"),
    (2, "img_001.txt"),  # swapped in over an edit, killed before the edit is swapped back
])
def test_kill_inside_a_swap_then_rollback(ds, kill_at, edit):
    proc = subprocess.run([sys.executable, "-c", SWAP_KILLER, str(ds), str(kill_at), edit],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    j = Journal(ds)
    assert j.interrupted() is not None
    entry = j.recover()
    assert not list(ds.rglob(".*.tmp"))
    if edit == "none":
        assert entry.conflicts == []
        assert {cap(ds, i).read_bytes() for i in range(3)} == {b"mira, tiara\n"}
    else:
        # the edit found in the temp file is put back, and rollback leaves it be
        assert cap(ds, 1).read_bytes() == b"edited in the window, longer\n"
        assert entry.conflicts == [
            "10_a/img_001.txt was edited after this operation; left as is"]
        assert cap(ds, 0).read_bytes() == cap(ds, 2).read_bytes() == b"mira, tiara\n"


def test_an_entry_without_the_new_fields_still_loads_and_undoes(ds):
    """Entries written before left_out/via existed: read as before."""
    store = load(ds)
    store.apply(add_tag(store))
    jdir = ds / ".lorabake" / "journal"
    state = json.loads(next(jdir.glob("*.state")).read_text())
    assert set(state) == {"state", "conflicts"}  # nothing new when nothing was left out
    data = json.loads(next(jdir.glob("*.json")).read_text())
    assert all("via" not in ch for ch in data["changes"])
    entry = Journal(ds).undo()
    assert entry.state == "undone" and entry.conflicts == []
    assert Journal(ds).can_redo().state == "undone"
    assert Journal(ds).redo().state == DONE
