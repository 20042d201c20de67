"""The write primitives: modes of new and replaced files, and the per-file content check of
a checked batch (atomic.write_batch with `expect`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lorabake_tui.core.base import atomic
from lorabake_tui.core.base.atomic import (
    CHANGED,
    EXISTS,
    GONE,
    LINK,
    READ_ONLY,
    atomic_write_bytes,
    write_batch,
)
from lorabake_tui.core.base.journal import ChangeSet, Journal


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664),
                                                (0o077, 0o600)])
def test_new_files_get_the_default_mode(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_bytes(tmp_path / "plain.toml", b"x")
    assert mode(tmp_path / "plain.toml") == expected
    write_batch([(tmp_path / "batch.txt", b"y")], "t")
    assert mode(tmp_path / "batch.txt") == expected
    (tmp_path / "1_a").mkdir()
    cs = ChangeSet()
    cs.write("1_a/new.txt", b"z\n", None)
    Journal(tmp_path).apply("tags", "create", cs)
    assert mode(tmp_path / "1_a" / "new.txt") == expected
    # the journal's own files are ordinary files too
    assert {mode(p) for p in (tmp_path / ".lorabake" / "journal").iterdir()} == {expected}


def test_a_replaced_file_keeps_its_mode_whatever_the_umask(tmp_path, umask):
    umask(0o077)  # would give 0600 to a new file
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, 0o640)
    atomic_write_bytes(tmp_path / "a.txt", b"new")
    write_batch([(tmp_path / "b.txt", b"new")], "t", [sha(b"old")])
    cs = ChangeSet()
    cs.write("c.txt", b"new", b"old")
    j = Journal(tmp_path)
    j.apply("tags", "edit", cs)
    assert [mode(tmp_path / n) for n in ("a.txt", "b.txt", "c.txt")] == [0o640] * 3
    j.undo()
    assert (tmp_path / "c.txt").read_bytes() == b"old" and mode(tmp_path / "c.txt") == 0o640
    os.chmod(tmp_path / "a.txt", 0o664)
    umask(0o022)  # the temp file is created narrowed by it, then given the file's mode
    atomic_write_bytes(tmp_path / "a.txt", b"newer")
    assert mode(tmp_path / "a.txt") == 0o664


def test_checked_batch_leaves_alone_what_is_not_as_expected(tmp_path):
    d = tmp_path
    for name, data in [("same", b"1"), ("edited", b"2"), ("ro", b"3"), ("target", b"4")]:
        (d / name).write_bytes(data)
    os.chmod(d / "ro", 0o444)
    os.symlink("target", d / "link")
    (d / "taken").write_bytes(b"someone's")
    items = [(d / n, b"NEW") for n in ("same", "edited", "ro", "link", "missing", "taken",
                                       "fresh")]
    expect = [sha(b"1"), sha(b"old 2"), sha(b"3"), sha(b"4"), sha(b"5"), None, None]
    refused = write_batch(items, "t", expect)
    assert refused == [(1, CHANGED), (2, READ_ONLY), (3, LINK), (4, GONE), (5, EXISTS)]
    assert (d / "same").read_bytes() == b"NEW" and (d / "fresh").read_bytes() == b"NEW"
    assert (d / "edited").read_bytes() == b"2" and (d / "ro").read_bytes() == b"3"
    assert (d / "link").is_symlink() and (d / "target").read_bytes() == b"4"
    assert (d / "taken").read_bytes() == b"someone's" and not (d / "missing").exists()
    assert not list(d.glob(".*.tmp"))  # every temp file consumed or removed


@pytest.mark.parametrize("how", ["in place", "saved by rename"])
def test_an_edit_after_the_final_check_is_put_back(tmp_path, monkeypatch, how):
    """The window the check cannot see: the file is swapped, and what the swap took out is
    compared with what the check read."""
    target = tmp_path / "cap.txt"
    target.write_bytes(b"as read\n")
    calls = []

    def edit(path: Path) -> None:
        calls.append(path)
        if how == "in place":
            path.write_bytes(b"their longer edit\n")
        else:  # an editor's save: same size, a new file renamed over the old
            (tmp_path / "editor.tmp").write_bytes(b"as READ\n")
            os.replace(tmp_path / "editor.tmp", path)

    monkeypatch.setattr(atomic, "after_final_check", edit)
    refused = write_batch([(target, b"lorabake's\n")], "t", [sha(b"as read\n")])
    assert calls == [target]
    assert refused == [(0, CHANGED)]
    assert target.read_bytes() == (b"their longer edit\n" if how == "in place"
                                   else b"as READ\n")
    assert not list(tmp_path.glob(".*.tmp"))
