"""`lorabake images` as a real process. Stopped while its worker pool is busy: SIGTERM and
SIGINT end it cleanly (every worker gone, no traceback, 143/130, nothing written); SIGKILL
leaves no worker behind, the caller's pipes reach EOF and the dataset is whole (an
interrupted entry is rolled back by `lorabake undo`). Images over the pixel limit: one line
each naming the file and the fix, never a raw Python warning."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from lorabake_tui.cli import main
from lorabake_tui.core.base.journal import Journal

from ..core.base.test_workers import gone, wait_gone
from ..core.dataset.test_imagetools import snapshot
from ..support.paths import REPO

IMAGES = 16  # noise JPEGs of 1500 px a side: about half a second of PNG encoding each


@pytest.fixture
def busy(tmp_path) -> Path:
    root = tmp_path / "ds"
    d = root / "10_mira"
    d.mkdir(parents=True)
    noise = np.random.default_rng(7).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    Image.fromarray(noise).save(d / "img_00.jpg", quality=90)
    for i in range(1, IMAGES):
        shutil.copyfile(d / "img_00.jpg", d / f"img_{i:02d}.jpg")
        (d / f"img_{i:02d}.txt").write_text("mira\n", encoding="utf-8")
    return root


def start_convert(root: Path) -> tuple[subprocess.Popen, list[int]]:
    """The command, once its two workers have started on the images."""
    proc = subprocess.Popen([sys.executable, "-m", "lorabake_tui", "images", str(root),
                             "convert", "--workers", "2"], env=dict(os.environ,
                            PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while len(me.children()) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.3)  # busy with the first images; the whole batch takes seconds
    return proc, [c.pid for c in me.children()]


def stop(proc: subprocess.Popen, workers: list[int]) -> None:
    """However a test ends, no process of it is left running."""
    proc.kill()
    proc.wait()
    for pid in workers:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_pool_and_writes_nothing(busy, sig, code):
    before = snapshot(busy)
    proc, workers = start_convert(busy)
    try:
        proc.send_signal(sig)
        t0 = time.monotonic()
        assert wait_gone(workers, 5.0) == []
        out, err = proc.communicate(timeout=10)  # the pipes reach EOF
        assert time.monotonic() - t0 < 5
    finally:
        stop(proc, workers)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "Warning" not in err
    assert "cancelled: nothing written" in out
    assert snapshot(busy) == before
    assert Journal(busy).entries() == []


def test_sigkill_leaves_no_worker_and_a_whole_dataset(busy):
    before = snapshot(busy)
    proc, workers = start_convert(busy)
    try:
        proc.kill()
        assert wait_gone(workers, 5.0) == [], "workers outlived a killed command"
        proc.communicate(timeout=10)  # nothing holds the caller's pipes open
    finally:
        stop(proc, workers)
    assert proc.returncode == -signal.SIGKILL
    for i in range(IMAGES):
        assert ((busy / "10_mira" / f"img_{i:02d}.jpg").exists()
                or (busy / "10_mira" / f"img_{i:02d}.png").exists())
    if Journal(busy).interrupted() is not None:
        assert main(["undo", str(busy)]) == 0
    assert snapshot(busy) == before


# the real command, sent SIGTERM by itself when the journal moves the first original away
TERM_WHILE_WRITING = textwrap.dedent("""
    import os, signal, sys
    from lorabake_tui.cli.main import main
    from lorabake_tui.core.base import journal

    real = journal.rename_noreplace

    def rename(src, dst):
        os.kill(os.getpid(), signal.SIGTERM)
        real(src, dst)

    journal.rename_noreplace = rename
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_while_the_journal_writes_lets_the_entry_complete(tmp_path):
    root = tmp_path / "ds"
    d = root / "10_mira"
    d.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (20 + i, 10), (i, 2, 3)).save(d / f"img_{i}.jpg")
    p = subprocess.run([sys.executable, "-c", TERM_WHILE_WRITING, "images", str(root),
                        "convert", "--workers", "1"], env=dict(os.environ,
                       PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "SIGTERM came while the change was being written; it was completed" in p.stderr
    assert "Traceback" not in p.stderr
    assert sorted(x.name for x in d.iterdir()) == [f"img_{i}.png" for i in range(3)]
    assert Journal(root).interrupted() is None
    assert Journal(root).entries()[-1].state == "done"


# ---- the pixel limit -------------------------------------------------------------------------

# the real command with Pillow's limit at 1000 pixels, so that small images are over it
LIMITED = ("import sys; from PIL import Image; Image.MAX_IMAGE_PIXELS = 1000; "
           "from lorabake_tui.cli.main import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("args", [("convert", "--flatten"), ("resize", "--size", "8x8"),
                                  ("pad",), ("dupes",)])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_image_over_the_pixel_limit_is_one_line_never_a_warning(tmp_path, args, workers):
    root = tmp_path / "ds"
    d = root / "10_a"
    d.mkdir(parents=True)
    # Pillow warns from 1000 pixels and refuses from 2000: the limit is its refusal, so the
    # warned images are worked on (without a raw warning) and the refused one is one line
    Image.new("RGBA", (40, 30), (9, 9, 9, 90)).save(d / "warned.png")
    Image.new("RGBA", (64, 48), (9, 9, 9, 90)).save(d / "refused.png")
    Image.new("RGB", (40, 30), (9, 9, 9)).save(d / "warned2.webp")
    Image.new("RGBA", (20, 10), (9, 9, 9, 90)).save(d / "fine.png")
    p = subprocess.run([sys.executable, "-c", LIMITED, "images", str(root), *args,
                        "--workers", workers], env=dict(os.environ, PYTHONPATH=str(REPO)),
                       capture_output=True, text=True, timeout=120)
    assert "Warning" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    said = [ln for ln in lines if "10_a/refused.png" in ln]
    assert len(said) == 1, p.stderr
    assert "64x48 = 3,072 pixels, over the 2,000 pixels limit" in said[0]
    assert "shrink it in an image editor" in said[0]
    assert len(lines) == 1, p.stderr
    assert "warned" not in p.stderr
    assert "10_a/fine.png" not in p.stderr
