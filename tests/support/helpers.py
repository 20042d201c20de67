"""Small builders of real datasets on disk for tests."""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image


def make_image(path: Path, size=(64, 64), fmt: str | None = None, color=(200, 120, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def make_concept(root: Path, folder: str, images: int, *, caption: str | None = "mira, 1girl",
                 ext: str = ".png", size=(64, 64)) -> Path:
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        make_image(d / f"img_{i:03d}{ext}", size)
        if caption is not None:
            (d / f"img_{i:03d}.txt").write_text(caption + "\n", encoding="utf-8")
    return d


async def settle(pilot, rounds: int = 4) -> None:
    """Let the app's workers (scans, thumbnails, plans) finish and their results land."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def until(pilot, pred, what: str, timeout: float = 20.0):
    """Pause the app until pred() is truthy (and return it); fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.1)
