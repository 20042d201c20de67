"""The caption store: plan, apply through the journal, conflicts, undo/redo byte identity,
and a child process killed at random moments during a 2k-file operation."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.captions.store import CaptionStore
from lorabake_tui.core.captions.tags import tag_key
from lorabake_tui.core.dataset.scan import scan_dataset

from ...support.helpers import make_concept


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.txt")
            if ".lorabake" not in p.parts}


def replace(old: str, new: str):
    return lambda tags: [new if tag_key(t) == tag_key(old) else t for t in tags]


@pytest.fixture
def captioned(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_concept(root, "10_a", 4, caption="mira, tiara, long_hair")
    make_concept(root, "10_b", 4, caption="mira, circlet, long hair")
    d = root / "10_b"
    (d / "img_000.txt").write_bytes(b"\xef\xbb\xbfmira, tiara\r\nsecond line kept\r\n")
    (d / "img_001.txt").write_bytes(b"caf\xe9, tiara\n")  # not UTF-8
    (d / "img_002.txt").unlink()  # missing caption
    return root


def load(root: Path, style: str = "keep") -> CaptionStore:
    return CaptionStore.load(scan_dataset(root), style=style)


def test_load_counts_and_display_forms(captioned):
    store = load(captioned)
    assert len(store.records) == 8
    assert store.counts[tag_key("long hair")] == 5  # long_hair x4 + long hair x1
    assert store.display(tag_key("long hair")) == "long_hair"  # the more common form
    assert dict(store.frequencies())["tiara"] == 5
    bad = store.by_rel["10_b/img_001.txt"]
    assert not bad.editable and "UTF-8" in bad.error
    assert not store.by_rel["10_b/img_002.txt"].exists


def test_only_changed_files_are_written_and_undo_redo_are_byte_identical(captioned):
    before = snapshot(captioned)
    mtimes = {p: os.stat(captioned / p).st_mtime_ns for p in before}
    store = load(captioned)
    plan = store.plan(replace("tiara", "circlet"), store.records, "tiara -> circlet")
    assert plan.files == 5  # 4 in 10_a + the BOM one; not the non-UTF-8 one
    assert any("img_001" in s for s in plan.not_editable)
    result = store.apply(plan)
    assert result.written == 5 and result.skipped == []
    after = snapshot(captioned)
    assert after["10_b/img_000.txt"] == b"\xef\xbb\xbfmira, circlet\r\nsecond line kept\r\n"
    assert after["10_b/img_001.txt"] == b"caf\xe9, tiara\n"  # never rewritten
    assert os.stat(captioned / "10_b/img_001.txt").st_mtime_ns == mtimes["10_b/img_001.txt"]
    assert store.counts.get("tiara", 0) == 0 and store.counts["circlet"] == 6
    j = Journal(captioned)
    entry = j.undo()
    assert snapshot(captioned) == before
    store.refresh_entry(entry)
    assert store.counts["tiara"] == 5
    j.redo()
    assert snapshot(captioned) == after
    assert after["10_b/img_003.txt"] == before["10_b/img_003.txt"]


def test_conflicting_file_is_skipped_and_reported(captioned):
    store = load(captioned)
    plan = store.plan(replace("mira", "mira_(lorabake)"), store.records, "rename trigger")
    target = captioned / "10_a" / "img_002.txt"
    time.sleep(0.01)
    target.write_bytes(b"edited elsewhere, mira\n")  # after the store read it
    result = store.apply(plan)
    assert any("10_a/img_002.txt" in s for s in result.skipped)
    assert target.read_bytes() == b"edited elsewhere, mira\n"
    assert (captioned / "10_a" / "img_000.txt").read_text().startswith("mira_(lorabake)")
    # the store now shows what is on disk
    assert store.by_rel["10_a/img_002.txt"].tags == ["edited elsewhere", "mira"]


def test_write_style_applies_to_written_files_only(captioned):
    store = load(captioned, style="spaces")
    plan = store.plan(replace("tiara", "silver_tiara"), store.select(concept="10_a"), "x")
    store.apply(plan)
    assert (captioned / "10_a/img_000.txt").read_text() == "mira, silver tiara, long hair\n"
    assert (captioned / "10_b/img_000.txt").read_bytes().startswith(b"\xef\xbb\xbfmira, tiara")


def test_missing_captions_only_created_when_asked(captioned):
    store = load(captioned)
    add = lambda tags: ["mira", *[t for t in tags if t != "mira"]]  # noqa: E731
    assert all(c.record.exists for c in store.plan(add, store.records, "add").changes)
    plan = store.plan(add, store.records, "add", create_missing=True)
    created = [c for c in plan.changes if not c.record.exists]
    assert len(created) == 1
    store.apply(plan)
    assert (captioned / "10_b/img_002.txt").read_bytes() == b"mira\n"
    Journal(captioned).undo()
    assert not (captioned / "10_b/img_002.txt").exists()


def test_nothing_to_change_is_an_error_not_an_empty_entry(captioned):
    store = load(captioned)
    plan = store.plan(lambda t: t, store.records, "noop")
    with pytest.raises(LorabakeError, match="nothing to change"):
        store.apply(plan)
    assert Journal(captioned).entries() == []


def test_unknown_concept_scope(captioned):
    with pytest.raises(LorabakeError, match="no concept folder"):
        load(captioned).select(concept="nope")


CHILD = textwrap.dedent("""
    import os, signal, sys
    from lorabake_tui.core.base import atomic
    from lorabake_tui.core.captions.store import CaptionStore
    from lorabake_tui.core.dataset.scan import scan_dataset

    kill_after = int(sys.argv[2])  # -1: run to the end (or until the parent kills us)
    if kill_after >= 0:
        real_put, done = atomic._put_checked, [0]
        def put(tmp, path, expect):  # the batch writer's check-and-replace of one file
            if done[0] == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            why = real_put(tmp, path, expect)
            done[0] += 1
            return why
        atomic._put_checked = put
    store = CaptionStore.load(scan_dataset(sys.argv[1]))
    plan = store.plan(lambda tags: [t.replace("blue", "green") for t in tags],
                      store.records, "recolour")
    print("ready", flush=True)
    store.apply(plan)
    print("done", flush=True)
""")

FILES = 2000


def make_2k(root: Path) -> dict[str, bytes]:
    for f in range(4):
        d = root / f"5_c{f}"
        d.mkdir(parents=True)
        for i in range(FILES // 4):
            (d / f"i{i:04d}.png").write_bytes(PNG_1PX)
            eol = b"\r\n" if i % 7 == 0 else b"\n"
            (d / f"i{i:04d}.txt").write_bytes(b"mira, blue eyes, n" + str(i).encode() + eol)
    return snapshot(root)


def run_child(root: Path, kill_after: int = -1, kill_at: float | None = None) -> float:
    """Seconds from "ready" to the end (done, or killed)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(kill_after)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    if kill_at is not None:
        time.sleep(kill_at)
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    return time.monotonic() - start


def check_old_or_new_then_rollback(root: Path, old: dict[str, bytes]) -> int:
    """Every caption whole-old or whole-new; rollback restores every old byte. Returns how
    many files were new at the moment of the kill."""
    now = snapshot(root)
    assert now.keys() == old.keys()
    new_count = 0
    for k, v in now.items():
        new = old[k].replace(b"blue", b"green")
        assert v in (old[k], new), k  # never torn, never empty
        new_count += v == new
    j = Journal(root)
    if j.interrupted() is not None:
        j.recover()
    elif j.can_undo() is not None:
        j.undo()  # the kill came after the entry was marked done
    assert {k: digest(v) for k, v in snapshot(root).items()} == \
        {k: digest(v) for k, v in old.items()}
    assert not list(root.rglob(".*.tmp"))  # a crash's temp files are cleaned up
    assert j.interrupted() is None
    return new_count


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def apply_seconds(tmp_path_factory) -> float:
    root = tmp_path_factory.mktemp("ref") / "ds"
    make_2k(root)
    return run_child(root)


@pytest.mark.parametrize("trial", range(5))
def test_random_sigkill_during_a_2k_file_apply(tmp_path, trial, apply_seconds):
    root = tmp_path / "ds"
    old = make_2k(root)
    # kill anywhere from the start of apply to a little past its usual end
    run_child(root, kill_at=random.Random(trial).uniform(0.0, apply_seconds * 1.1))
    check_old_or_new_then_rollback(root, old)


@pytest.mark.parametrize("kill_after", [0, 1, FILES // 2, FILES - 1])
def test_sigkill_between_two_renames(tmp_path, kill_after):
    root = tmp_path / "ds"
    old = make_2k(root)
    run_child(root, kill_after=kill_after)
    assert check_old_or_new_then_rollback(root, old) == kill_after


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def test_counts_after_apply_match_a_fresh_load(tmp_path):
    """apply recounts only the tags that changed: the result is what loading gives."""
    root = tmp_path / "ds"
    d = root / "5_c"
    d.mkdir(parents=True)
    texts = ["mira, blue eyes, Blue_Eyes, hat", "mira, blue eyes", "zoe, hat, hat, blue eyes",
             "zoe, red eyes"]
    for i, text in enumerate(texts):
        (d / f"i{i}.png").write_bytes(PNG_1PX)
        (d / f"i{i}.txt").write_text(text + "\n")
    store = load(root)

    def edit(tags):
        out = [("green eyes" if t == "blue eyes" else t) for t in tags if t != "mira"]
        return [*out, "new"] if "zoe" in tags else out

    store.apply(store.plan(edit, store.records, "edit"))
    fresh = load(root)
    assert store.counts == fresh.counts
    assert {k: v for k, v in store.forms.items() if v} == \
        {k: v for k, v in fresh.forms.items() if v}
