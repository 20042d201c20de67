"""Images as the WD taggers want them, and a pipeline that decodes them in batches on every
core (ahead of inference when that runs on a GPU).

Preprocessing (the taggers' own): transparency composited on white, padded to a centred
square with white, resized to the model's input size, float32 0..255 (not normalised), BGR
channel order. Two speed-ups that do not change what the model sees in any way that matters:
a JPEG is decoded at a reduced DCT scale when it is at least twice the input size (its short
side stays >= the input size), and a very large image is box-reduced before the final resize.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..images.imageops import WHITE, ImageDecodeError, decode_image, flatten_alpha

RESAMPLE = Image.Resampling.BICUBIC
REDUCIBLE = ("RGB", "RGBA", "L", "LA")


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """[size, size, 3] float32 BGR, 0..255."""
    if image.mode not in REDUCIBLE:  # palette, CMYK, 16-bit: to RGB first
        image = flatten_alpha(image, WHITE)
    factor = max(image.size) // (2 * size)
    if factor >= 2:
        # keep >= 2x the target for the resize filter, box-average the rest; Pillow reduces
        # RGBA premultiplied, so compositing afterwards gives the same picture, cheaper
        image = image.reduce(factor)
    rgb = image if image.mode == "RGB" else flatten_alpha(image, WHITE)
    w, h = rgb.size
    side = max(w, h)
    if w != h:
        canvas = Image.new("RGB", (side, side), WHITE)
        canvas.paste(rgb, ((side - w) // 2, (side - h) // 2))
        rgb = canvas
    if side != size:
        rgb = rgb.resize((size, size), RESAMPLE)
    arr = np.asarray(rgb, dtype=np.float32)
    return np.ascontiguousarray(arr[:, :, ::-1])


def load_image(path: Path | str, size: int) -> np.ndarray:
    """Read, decode and prepare one file; ImageDecodeError for unusable ones. The pixels as
    stored (EXIF orientation ignored): the tags describe what kohya trains, and kohya's own
    tagger script reads images the same way."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read: {exc.strerror}") from None
    return prepare_image(decode_image(data, upright=False, draft=size), size)


@dataclass(slots=True)
class Batch:
    indices: list[int]  # positions in the input list of the images in `probs`
    probs: np.ndarray | None  # [len(indices), tags]; None when every image failed
    failed: list[tuple[int, str]]  # (position, reason)


def default_workers(on_gpu: bool) -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def predict_stream(run: Callable[[np.ndarray], np.ndarray], paths: Iterable[Path | str],
                   size: int, *, batch: int, workers: int, overlap: bool,
                   cancel: threading.Event | None = None) -> Iterator[Batch]:
    """Decode and prepare images in a thread pool and run them `batch` at a time.

    `overlap` (for a GPU): the next batches decode while `run` infers this one. Without it
    (the CPU) a group of images decodes on every core, then they are inferred on every core:
    onnxruntime splits each op across all cores and waits for the slowest part, so a decoder
    holding a core would stall the whole model; taking turns keeps both at full speed.
    Results come in input order, one Batch per `run` call. Stops between batches once
    `cancel` is set; pending decodes are dropped when the generator is closed."""
    batch = max(1, batch)
    lookahead = 2 * batch + workers if overlap else max(batch, 2 * workers)
    pending: deque[tuple[int, Future[np.ndarray]]] = deque()
    source = iter(enumerate(paths))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autotag") as pool:
        def fill() -> None:
            while len(pending) < lookahead:
                nxt = next(source, None)
                if nxt is None:
                    return
                pending.append((nxt[0], pool.submit(load_image, nxt[1], size)))

        try:
            while True:
                if overlap or not pending:
                    fill()
                if not pending or (cancel is not None and cancel.is_set()):
                    return
                indices: list[int] = []
                arrays: list[np.ndarray] = []
                failed: list[tuple[int, str]] = []
                while len(arrays) < batch:
                    if not pending:
                        fill()  # a group ran out mid-batch: decode the next one now
                        if not pending:
                            break
                    i, fut = pending.popleft()
                    try:
                        arrays.append(fut.result())
                        indices.append(i)
                    except ImageDecodeError as exc:
                        failed.append((i, str(exc)))
                if overlap:
                    fill()  # the next batch decodes while this one runs
                probs = run(np.stack(arrays)) if arrays else None
                yield Batch(indices, probs, failed)
        finally:
            for _, fut in pending:
                fut.cancel()
