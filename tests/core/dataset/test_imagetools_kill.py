"""convert killed (SIGKILL, a real process) at every step of its journal entry: each image is
in its folder in at least one form (the old file or the new PNG) at every cut, no file is
half written, and `lorabake undo` puts the dataset back byte for byte. A PNG that appears
where convert would write is still never overwritten."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from lorabake_tui.cli import main
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import APPLYING, ROLLED_BACK, Journal
from lorabake_tui.core.dataset.imagetools import ImageOptions, apply_image_plan, plan_images

from ...support.paths import REPO
from .test_imagetools import animated_gif, caption, originals, picture, save, snapshot

KILLER = textwrap.dedent("""
    import os, signal, sys
    from lorabake_tui.core.base import journal
    from lorabake_tui.core.dataset.imagetools import ImageOptions, apply_image_plan, plan_images

    root, kill_at = sys.argv[1], int(sys.argv[2])
    real_batch, real_rename = journal.write_batch, journal.rename_noreplace
    real_state = journal.Journal._save_state
    step = 0

    def cut():
        global step
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        step += 1

    def write_batch(items, tag, expect=None, chained=None):
        out = []
        # one file at a time: a cut between any two (one-item batches reuse no file)
        for k, item in enumerate(items):
            cut()
            want = None if expect is None else [expect[k]]
            out += [(k, why) for _, why in real_batch([item], tag, want)]
        return out

    def rename(src, dst):
        cut()
        real_rename(src, dst)

    def save_state(self, entry):
        if entry.state == "done":  # every file changed, the entry not yet marked done
            cut()
        real_state(self, entry)

    journal.write_batch, journal.rename_noreplace = write_batch, rename
    journal.Journal._save_state = save_state
    plan = plan_images(root, "convert", ImageOptions(flatten=True))
    apply_image_plan(plan, workers=1)
    print(step)
""")
STEPS = 13  # 8 files written, 4 moved into the originals, the entry marked done


@pytest.fixture
def mixed(tmp_path) -> Path:
    root = tmp_path / "ds"
    d = root / "10_mira"
    caption(save(d / "a.jpg", picture((40, 30), 1), "JPEG"))
    save(d / "b.webp", picture((30, 30), 2), "WEBP")
    caption(animated_gif(d / "c.gif", frames=2), "c, loop")
    save(d / "d.png", Image.new("RGBA", (16, 12), (255, 0, 0, 90)))
    return root


def killed_at(root: Path, step: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", KILLER, str(root), str(step)],
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=120)


def test_the_steps_counted_are_every_step(mixed):
    p = killed_at(mixed, -1)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) == STEPS


@pytest.mark.parametrize("step", range(STEPS))
def test_each_image_stays_in_its_folder_at_every_cut(mixed, step):
    before = snapshot(mixed)
    p = killed_at(mixed, step)
    assert p.returncode == -signal.SIGKILL, p.stderr
    d = mixed / "10_mira"

    def there(*names: str) -> bool:
        return all((d / n).exists() for n in names)

    assert there("a.jpg") or there("a.png")
    assert there("b.webp") or there("b.png")
    assert there("c.gif") or there("c_f000.png", "c_f001.png")
    assert there("c.txt") or there("c_f000.txt", "c_f001.txt")
    assert there("a.txt", "d.png")
    for png in d.glob("*.png"):  # whole files only: old bytes or new
        with Image.open(png) as im:
            im.load()
    entry = Journal(mixed).interrupted()
    assert entry is not None and entry.state == APPLYING
    assert main(["undo", str(mixed)]) == 0
    assert snapshot(mixed) == before  # byte for byte, no temp file left behind
    assert originals(mixed) == {}
    assert Journal(mixed).entries()[-1].state == ROLLED_BACK


def test_a_png_that_appears_before_the_apply_is_never_overwritten(mixed):
    plan = plan_images(mixed, "convert")
    theirs = mixed / "10_mira" / "a.png"
    theirs.write_bytes(b"someone else's a.png")
    before = snapshot(mixed)
    with pytest.raises(LorabakeError, match="a.png"):
        apply_image_plan(plan, workers=1)
    assert snapshot(mixed) == before
    assert Journal(mixed).entries() == []


def test_convert_writes_the_new_file_before_moving_the_old_one(mixed):
    plan = plan_images(mixed, "convert", ImageOptions(flatten=True))
    entry = apply_image_plan(plan, workers=1).entry
    assert entry is not None
    kinds = [type(ch).__name__ for ch in entry.changes]
    assert kinds == ["Write"] * 8 + ["Rename"] * 4
