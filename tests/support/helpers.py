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


def exif_orientation(orientation: int) -> bytes:
    """An EXIF block with just this Orientation tag (plus a camera make, as phones write)."""
    exif = Image.Exif()
    exif[0x010F] = "Phone"
    exif[0x0112] = orientation
    return exif.tobytes()


def make_exif_rotated(path: Path, size=(640, 320), orientation: int = 6, fmt: str = "JPEG"
                      ) -> Path:
    """A phone-style photo stored `size` (default landscape) with an EXIF orientation (6:
    viewers turn it 90 deg clockwise, so it looks portrait). The stored pixels have structure
    that any turn or mirror changes: a horizontal gradient in red, a vertical one in green,
    and a blue block in the top-left corner."""
    import numpy as np

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = (255 * xx / max(w - 1, 1)).astype(np.uint8)
    arr[..., 1] = (255 * yy / max(h - 1, 1)).astype(np.uint8)
    arr[: h // 4, : w // 4, 2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(arr, "RGB").save(path, format=fmt, exif=exif_orientation(orientation),
                                     **extra)
    return path


def write_safetensors_stub(path: Path) -> Path:
    """A well-formed .safetensors file holding one 4-byte tensor: passes the config check's
    header test (the trainer could not train on it: tests that never start a run use it)."""
    import json

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    return path
