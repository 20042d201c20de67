"""The journal's fast path: files are replaced without a sync each (the blob pack holds the
bytes), and the file each swap takes out is reused as the next temp file. A kill after the
entry is recorded and before any file is touched; what a power cut can leave (an empty or
zero-filled file) is put back from the journal, an edit is not; a reader or another name of
the old file never sees the reused file's new bytes; modes are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lorabake_tui.core.base.journal import APPLYING, DONE, ROLLED_BACK, ChangeSet, Journal
from lorabake_tui.core.captions.store import CaptionStore
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept


@pytest.fixture
def ds(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_concept(root, "10_a", 6, caption="mira, tiara")
    make_concept(root, "5_b", 4, caption="zoe, hat")
    for i, p in enumerate(captions(root)):  # every caption different
        p.write_bytes(p.read_bytes().rstrip(b"\n") + f", n{i}\n".encode())
    return root


def captions(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.txt"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in captions(root)}


def load(root: Path) -> CaptionStore:
    return CaptionStore.load(scan_dataset(root))


def apply_tag(root: Path, tag: str):
    store = load(root)
    return store.apply(store.plan(lambda t: [*t, tag], store.records, f"add {tag}"))


# ---- a kill once the entry is on disk, before any file is touched ---------------------------

KILL_RECORDED = textwrap.dedent("""
    import os, signal, sys
    from lorabake_tui.core.base import journal
    from lorabake_tui.core.captions.store import CaptionStore
    from lorabake_tui.core.dataset.scan import scan_dataset

    def die(entry):
        os.kill(os.getpid(), signal.SIGKILL)

    journal.after_recorded = die
    store = CaptionStore.load(scan_dataset(sys.argv[1]))
    store.apply(store.plan(lambda t: [*t, "scarf"], store.records, "add scarf"))
""")


def test_kill_after_the_journal_is_synced_and_before_any_swap(ds):
    original = snapshot(ds)
    first = apply_tag(ds, "hat")  # a done entry before the killed one
    after_first = snapshot(ds)
    proc = subprocess.run([sys.executable, "-c", KILL_RECORDED, str(ds)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(ds) == after_first  # no file was touched
    j = Journal(ds)
    pending = j.interrupted()
    assert pending is not None and pending.state == APPLYING and pending.id == first.entry.id + 1
    assert len(pending.changes) == len(original)  # the entry holds every write, ...
    blobs = j._read_blobs(pending)  # ... and its old and new bytes are on disk
    assert {ch.before for ch in pending.changes} | {ch.after for ch in pending.changes} \
        <= blobs.keys()
    # the next start rolls it back, as any interrupted entry
    entry = j.recover()
    assert entry.state == ROLLED_BACK and entry.conflicts == []
    assert snapshot(ds) == after_first and not list(ds.rglob(".*.tmp"))
    # and the history before it is intact: undo restores every byte
    undone = j.undo()
    assert undone is not None and undone.id == first.entry.id and undone.conflicts == []
    assert snapshot(ds) == original


# ---- what a power cut can leave -------------------------------------------------------------

KILL_AFTER_SWAPS = textwrap.dedent("""
    import os, signal, sys
    from lorabake_tui.core.base import atomic
    from lorabake_tui.core.captions.store import CaptionStore
    from lorabake_tui.core.dataset.scan import scan_dataset

    real, calls = atomic._exchange, [0]

    def exchange(a, b):
        ok = real(a, b)
        calls[0] += 1
        if calls[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        return ok

    atomic._exchange = exchange
    store = CaptionStore.load(scan_dataset(sys.argv[1]))
    store.apply(store.plan(lambda t: [*t, "scarf"], store.records, "add scarf"))
""")


def test_files_a_power_cut_left_short_are_put_back_but_an_edit_is_not(ds):
    original = snapshot(ds)
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_SWAPS, str(ds), "5"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    now = snapshot(ds)
    swapped = sorted(k for k in now if now[k] != original[k])
    assert len(swapped) == 5
    # What a power cut would have left of four of them (the swap on disk, the bytes not):
    # empty, zeros, the start then zeros; and one a user edited by cutting its last tag off.
    empty, zeros, start, edited = (ds / k for k in swapped[:4])
    empty.write_bytes(b"")
    zeros.write_bytes(b"\0" * len(now[swapped[1]]))
    start.write_bytes(now[swapped[2]][:5] + b"\0" * (len(now[swapped[2]]) - 5))
    edited.write_bytes(now[swapped[3]][:-len(b"scarf\n")])  # "mira, tiara, n3, "
    edit = edited.read_bytes()
    entry = Journal(ds).recover()
    assert entry.state == ROLLED_BACK
    assert entry.conflicts == [f"{swapped[3]} was edited after this operation; left as is"]
    assert edited.read_bytes() == edit
    assert {k: v for k, v in snapshot(ds).items() if k != swapped[3]} == \
        {k: v for k, v in original.items() if k != swapped[3]}
    assert not list(ds.rglob(".*.tmp"))


def test_a_done_entry_never_takes_a_short_file_for_its_own(ds):
    """Only an interrupted entry can have left a file short: after it is done, an emptied
    caption is the user's."""
    res = apply_tag(ds, "hat")
    assert res.entry.state == DONE
    victim = captions(ds)[0]
    victim.write_bytes(b"")
    undone = Journal(ds).undo()
    assert undone.conflicts == [f"{victim.relative_to(ds)} was edited after this operation; "
                                "left as is"]
    assert victim.read_bytes() == b""


# ---- a reused file is one nobody else can see ------------------------------------------------

def test_a_reader_of_the_old_file_keeps_reading_the_old_bytes(ds):
    first, second = captions(ds)[:2]  # same folder: the second would reuse the first's file
    old = first.read_bytes()
    with open(first, "rb") as reader:  # e.g. a training run reading captions
        apply_tag(ds, "hat")
        assert first.read_bytes() != old and second.read_bytes().endswith(b", hat\n")
        assert reader.read() == old


def test_another_name_of_the_old_file_keeps_the_old_bytes(ds, tmp_path):
    first = captions(ds)[0]
    old = first.read_bytes()
    os.link(first, tmp_path / "hard-link.txt")
    apply_tag(ds, "hat")
    assert (tmp_path / "hard-link.txt").read_bytes() == old
    assert first.read_bytes() == old.rstrip(b"\n") + b", hat\n"


def test_each_replaced_file_keeps_its_own_mode(ds, umask):
    umask(0o022)
    modes = [0o600, 0o644, 0o640, 0o664, 0o604, 0o660]
    files = captions(ds)[:6]
    for p, m in zip(files, modes, strict=True):
        os.chmod(p, m)
    before = snapshot(ds)
    apply_tag(ds, "hat")
    assert [p.stat().st_mode & 0o7777 for p in files] == modes
    Journal(ds).undo()
    assert [p.stat().st_mode & 0o7777 for p in files] == modes
    assert snapshot(ds) == before


def test_a_new_file_between_two_replaced_ones_leaves_no_temp_file(tmp_path, umask):
    umask(0o022)
    for name in ("a.txt", "c.txt"):
        (tmp_path / name).write_bytes(b"old " + name.encode())
        os.chmod(tmp_path / name, 0o600)
    cs = ChangeSet()
    cs.write("a.txt", b"new a", b"old a.txt")
    cs.write("b.txt", b"new b", None)  # created: a new file's mode, not a reused one's
    cs.write("c.txt", b"new c", b"old c.txt")
    j = Journal(tmp_path)
    j.apply("tags", "edit", cs)
    assert [(tmp_path / n).read_bytes() for n in ("a.txt", "b.txt", "c.txt")] == \
        [b"new a", b"new b", b"new c"]
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".*.tmp"))
    j.undo()
    assert not (tmp_path / "b.txt").exists() and not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "a.txt").read_bytes() == b"old a.txt"
