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

from lorabake_tui.core.base import atomic
from lorabake_tui.core.base.journal import (
    APPLYING,
    DONE,
    ROLLED_BACK,
    UNDOING,
    UNDONE,
    ChangeSet,
    Journal,
)
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


@pytest.fixture
def reused(monkeypatch) -> list[str]:
    """The captions whose temp file was a reused one, in order (inode numbers cannot tell:
    the filesystem hands a freed one to the next new file)."""
    real, out = atomic._reuse, []

    def spy(spare, tmp, data, mode, kept):
        ok = real(spare, tmp, data, mode, kept)
        if ok:
            out.append(os.path.basename(tmp).split(".")[1] + ".txt")
        return ok

    monkeypatch.setattr(atomic, "_reuse", spy)
    return out


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


KILL_UNDO_AFTER_SWAPS = KILL_AFTER_SWAPS.split("store = ")[0] + textwrap.dedent("""
    from lorabake_tui.core.base.journal import Journal
    Journal(sys.argv[1]).undo()
""")


def killed(script: str, root: Path, swaps: int):
    """Run `script` until its `swaps`-th swap, then SIGKILL it; the entry it left."""
    proc = subprocess.run([sys.executable, "-c", script, str(root), str(swaps)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    entry = Journal(root).interrupted()
    assert entry is not None
    return entry


def versions(root: Path, entry) -> tuple[list[bytes], list[bytes], list[Path]]:
    """Each change's old bytes, new bytes and path, in the entry's order."""
    blobs = Journal(root)._read_blobs(entry)
    return ([blobs[c.before] for c in entry.changes], [blobs[c.after] for c in entry.changes],
            [root / c.path for c in entry.changes])


def test_a_reused_file_a_power_cut_left_mixed_is_put_back_but_an_edit_is_not(ds):
    """The file a swap takes out is overwritten with the next change's bytes. A power cut
    can leave in that change's place the old bytes of the change before it, whole, cut to
    the new length or under zeros; those are put back. The old bytes of any other change,
    or a cut anywhere, are an edit."""
    original = snapshot(ds)
    entry = killed(KILL_AFTER_SWAPS, ds, 6)
    assert entry.state == APPLYING
    ch = entry.changes
    old, new, path = versions(ds, entry)
    assert [p.read_bytes() for p in path[:6]] == new[:6]  # six swapped, in the entry's order
    assert all(len(o) < len(n) for o, n in zip(old, new, strict=True))
    path[1].write_bytes(old[0])  # the rename reached the disk, the bytes did not
    path[2].write_bytes(new[2][:len(old[1])])  # the bytes did, the new size did not
    path[3].write_bytes(old[2] + b"\0" * (len(new[3]) - len(old[2])))  # the size did
    path[4].write_bytes(old[2])  # not the previous change's bytes: an edit
    path[5].write_bytes(old[4][:10])  # the previous change's bytes cut anywhere: an edit
    edits = {4: old[2], 5: old[4][:10]}
    done = Journal(ds).recover()
    assert done.state == ROLLED_BACK
    assert done.conflicts == [f"{ch[k].path} was edited after this operation; left as is"
                              for k in (5, 4)]
    for k, p in enumerate(path):
        assert p.read_bytes() == edits.get(k, original[ch[k].path]), k
    assert not list(ds.rglob(".*.tmp"))


def test_an_undo_a_power_cut_left_mixed_is_finished(ds):
    """Undo goes from the last change to the first: the file it swaps out of one change's
    place holds that change's new bytes and is overwritten with the old bytes of the change
    before it, which are shorter here: the longer new bytes may show past them."""
    original = snapshot(ds)
    apply_tag(ds, "scarf")
    entry = killed(KILL_UNDO_AFTER_SWAPS, ds, 4)
    assert entry.state == UNDOING
    ch = entry.changes
    old, new, path = versions(ds, entry)
    last = len(ch) - 1
    assert [p.read_bytes() for p in path[last - 3:]] == old[last - 3:]
    path[last - 1].write_bytes(new[last])  # the rename reached the disk, the bytes did not
    path[last - 2].write_bytes(old[last - 2] + new[last - 1][len(old[last - 2]):])  # no size
    done = Journal(ds).recover()
    assert done.state == UNDONE and done.conflicts == []
    assert snapshot(ds) == original
    assert not list(ds.rglob(".*.tmp"))


def test_the_file_a_swap_takes_out_carries_the_next_change_only(ds, reused):
    """Each replaced caption is the file the previous change's swap took out (one new file
    per folder), and bytes shorter than what the reused file held leave nothing behind."""
    paths = captions(ds)  # 10_a: 6, then 5_b: 4
    inodes = [p.stat().st_ino for p in paths]
    apply_tag(ds, "hat")
    chain = [*range(1, 6), *range(7, 10)]
    assert reused == [paths[k].name for k in chain]
    assert [paths[k].stat().st_ino for k in chain] == [inodes[k - 1] for k in chain]
    store = load(ds)
    res = store.apply(store.plan(lambda t: t[:1], store.records, "keep the first tag"))
    assert res.entry.state == DONE
    assert [p.read_bytes() for p in paths] == [b"mira\n"] * 6 + [b"zoe\n"] * 4


def test_a_reused_file_is_never_carried_past_a_rename(tmp_path, reused):
    """Reuse is between neighbours only (what recovery can tell from an edit): the file
    the change before a rename took out is not carried past it."""
    for name in ("a.txt", "b.txt", "c.txt", "x.txt"):
        (tmp_path / name).write_bytes(b"old " + name.encode())
    cs = ChangeSet()
    for name in ("a.txt", "b.txt"):
        cs.write(name, b"new " + name.encode(), b"old " + name.encode())
    cs.rename("x.txt", "y.txt")
    cs.write("c.txt", b"new c", b"old c.txt")
    Journal(tmp_path).apply("tags", "edit", cs)
    assert reused == ["b.txt"]
    assert [(tmp_path / n).read_bytes() for n in ("a.txt", "b.txt", "c.txt")] == \
        [b"new a.txt", b"new b.txt", b"new c"]


def test_write_batch_reuses_within_one_batch_only(tmp_path, reused):
    paths = [tmp_path / f"{n}.txt" for n in "abcd"]
    for p in paths:
        p.write_bytes(b"old " + p.name.encode())
    want = [atomic.file_sha256(p) for p in paths]
    with atomic.bytes_kept_elsewhere(tmp_path):
        atomic.write_batch([(p, b"new") for p in paths[:2]], "t", want[:2])
        atomic.write_batch([(p, b"new") for p in paths[2:]], "t", want[2:],
                           chained=[True, False])
    assert reused == ["b.txt"]  # not c (another batch), not d (the caller said no)
    assert [p.read_bytes() for p in paths] == [b"new"] * 4
    assert sorted(os.listdir(tmp_path)) == [p.name for p in paths]


def test_an_undo_reuses_no_file_past_a_change_it_left_alone(ds, reused):
    """Undo skips a caption edited since; the change before it gets a new temp file, not
    the one the change after it took out."""
    original = snapshot(ds)
    res = apply_tag(ds, "hat")
    ch = res.entry.changes
    (ds / ch[3].path).write_bytes(b"edited\n")
    reused.clear()
    undone = Journal(ds).undo()
    assert undone.conflicts == [f"{ch[3].path} was edited after this operation; left as is"]
    names = [Path(c.path).name for c in ch]
    # backwards, a new file for the first in each folder (9, 5) and past the edited one (2)
    assert reused == [names[k] for k in (8, 7, 6, 4, 1, 0)]
    assert {k: v for k, v in snapshot(ds).items() if k != ch[3].path} == \
        {k: v for k, v in original.items() if k != ch[3].path}


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
