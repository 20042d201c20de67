"""Batch image tools over a dataset: convert, pad, resize, upscale (changing) and dupes,
lowres (reports).

A changing tool first builds a plan: one row per image of the training concept folders (or
one folder) with what would happen to it and why (`skip` rows say why not). Applying the plan
decodes and encodes the images in worker processes, then makes every change in the parent as
ONE journal entry, so `lorabake undo DIR` takes the whole batch back byte for byte.

Every output is upright: an image with an EXIF orientation (a phone photo stored sideways,
which kohya would train sideways) is turned as the tag says, and the tag is not written. So
convert also rewrites a PNG that has an EXIF orientation; without --flatten its transparency
stays.

Non-destructive: an image that is changed keeps its original in
`<root>/.lorabake/originals/<folder>/<name>` (`name~2.ext`, `~3`, ... when a earlier run
already left one there). Every output is a PNG:
- a source with another extension (a.webp, a.jpg): a.png is created next to it, then the
  source is moved there (a journal rename), so a kill at any point leaves the image in its
  folder in one form or the other; the caption keeps matching the stem. If a.png (in any
  letter case) already exists, or another source of the batch claims it, that source is a
  `conflict`: reported and left alone, never overwritten;
- a PNG changed in place (pad, resize, upscale, convert --flatten or upright) is copied there
  (a created file) and rewritten (a replace of its old bytes): a rename plus a create of the
  same path would not survive the journal's redo check;
- an animation (GIF, animated WebP/AVIF) becomes one PNG per frame, `a_f000.png`,
  `a_f001.png`, ...; if it had a caption, every frame gets a copy of it and the caption
  itself goes to the originals with the animation (it would match no image any more).
  A one-frame GIF becomes plain a.png and keeps its caption.
One bad file (damaged, truncated, not an image, over the pixel limit) is reported with a
reason and skipped; the rest of the batch goes on.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image

from ..base.errors import LorabakeError
from ..base.journal import ChangeSet, Entry, Journal
from ..base.project_files import ORIGINALS_REL
from ..base.workers import CancelFn, ProgressFn, run_tasks
from ..images.dupes import DEFAULT_THRESHOLD, group_near_duplicates, phash
from ..images.imageinfo import ImageReadError, read_image_header
from ..images.imageops import (
    ANIMATED_FORMATS,
    RGB,
    WHITE,
    ImageDecodeError,
    decode_frames,
    decode_image,
    downscale_max_side,
    encode_png,
    frame_count,
    has_transparency,
    max_side_size,
    min_side_size,
    over_pixel_limit,
    pad_to_square,
    pixel_limit,
    resize_image,
    to_rgb,
)
from ..images.limits import pixel_limit_message
from ..images.media import DEFAULT_CAPTION_EXT
from .scan import Concept, Dataset, ImageItem, scan_dataset

OPERATIONS = ("convert", "pad", "resize", "upscale")
REPORTS = ("dupes", "lowres")
ORIGINALS = ORIGINALS_REL
CONVERT_EXTS = frozenset({".webp", ".avif", ".gif", ".jpg", ".jpeg", ".bmp"})
DEFAULT_MIN_SIDE = 512
SKIP, CONFLICT, ERROR = "skip", "conflict", "error"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """Settings of one batch. `background`: alpha is composited on it, padding uses it."""
    background: RGB = WHITE
    flatten: bool = False  # convert: also PNGs with transparency
    size: tuple[int, int] | None = None  # resize to exactly this (with `mode`)
    mode: str = "cover"  # fit | cover | stretch
    max_side: int | None = None  # resize: downscale so the long side is at most this
    min_side: int = DEFAULT_MIN_SIDE  # upscale: short sides below this are enlarged to it
    model: str | None = None  # upscale: an ONNX super-resolution model
    tile: int = 256
    overlap: int = 16


@dataclass(slots=True)
class FileAction:
    """One image in a plan and, after applying, what became of it."""
    path: str  # relative to the root, '/'-separated
    action: str  # the operation's name, or skip / conflict / error
    reason: str
    new_paths: list[str] = field(default_factory=list)
    original: str | None = None  # where the original is kept (.lorabake/originals/...)
    error: str | None = None
    size: tuple[int, int] | None = None  # header size
    new_size: tuple[int, int] | None = None
    caption: str | None = None  # the source's caption (moved along for animations)
    caption_copies: list[str] = field(default_factory=list)  # one per frame
    caption_original: str | None = None  # where an animation's caption is kept

    @property
    def new_path(self) -> str | None:
        return self.new_paths[0] if self.new_paths else None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "action": self.action, "new_path": self.new_path,
                "error": self.error, "reason": self.reason, "new_paths": list(self.new_paths),
                "original": self.original, "captions": list(self.caption_copies)}


@dataclass(slots=True)
class ImagePlan:
    root: Path
    operation: str
    options: ImageOptions
    caption_ext: str
    files: list[FileAction]
    notes: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[FileAction]:
        return [f for f in self.files if f.action == self.operation]

    def count(self, action: str) -> int:
        return sum(1 for f in self.files if f.action == action)

    def to_json(self, applied: bool = False) -> dict[str, Any]:
        return {"operation": self.operation, "files": [f.to_json() for f in self.files],
                "applied": applied, "notes": list(self.notes)}


@dataclass(slots=True)
class ImageRunResult:
    plan: ImagePlan
    entry: Entry | None = None
    cancelled: bool = False

    @property
    def applied(self) -> bool:
        return self.entry is not None

    @property
    def changed(self) -> list[FileAction]:
        return self.plan.todo if self.entry is not None else []

    @property
    def failures(self) -> list[FileAction]:
        return [f for f in self.plan.files if f.action in (ERROR, CONFLICT)]


# ---- scope ----------------------------------------------------------------------------------

def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _scope(root: Path | str, concept: str | None, caption_ext: str
           ) -> tuple[Dataset, list[Concept]]:
    ds = scan_dataset(root, caption_ext=caption_ext)
    concepts = ds.train_concepts
    if concept is not None:
        picked = [c for c in concepts if c.folder == concept.strip("/")]
        if not picked:
            names = ", ".join(c.folder for c in concepts) or "none"
            raise LorabakeError(f"no concept folder {concept!r} in {ds.root}",
                                f"concept folders: {names}")
        concepts = picked
    return ds, concepts


def _rel(concept: Concept, name: str) -> str:
    return f"{concept.folder}/{name}"


def _stem_ext(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if dot > 0 else (name, "")


# ---- planning -------------------------------------------------------------------------------

class _Claims:
    """Names in use: files on disk (any letter case) and outputs claimed by this plan."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listed: dict[str, set[str]] = {}
        self._claimed: set[str] = set()

    def _names(self, folder: str) -> set[str]:
        names = self._listed.get(folder)
        if names is None:
            try:
                names = {n.lower() for n in os.listdir(self.root / folder)}
            except OSError:
                names = set()
            self._listed[folder] = names
        return names

    def taken(self, rel: str) -> bool:
        folder, _, name = rel.rpartition("/")
        return rel.lower() in self._claimed or name.lower() in self._names(folder)

    def claim(self, rel: str) -> None:
        self._claimed.add(rel.lower())

    def original_for(self, rel: str) -> str:
        """A free place under .lorabake/originals for `rel`."""
        stem, ext = _stem_ext(rel)
        n = 1
        while True:
            cand = f"{ORIGINALS}/{rel}" if n == 1 else f"{ORIGINALS}/{stem}~{n}{ext}"
            if cand.lower() not in self._claimed and not os.path.lexists(self.root / cand):
                self._claimed.add(cand.lower())
                return cand
            n += 1


def plan_images(root: Path | str, operation: str, options: ImageOptions | None = None, *,
                concept: str | None = None, caption_ext: str = DEFAULT_CAPTION_EXT,
                max_pixels: int | None = None) -> ImagePlan:
    """What `operation` would do to each image of the training folders (or `concept`)."""
    if operation not in OPERATIONS:
        raise LorabakeError(f"unknown image operation {operation!r}",
                            "one of: " + ", ".join(OPERATIONS))
    opts = options or ImageOptions()
    _check_options(operation, opts)
    ds, concepts = _scope(root, concept, caption_ext)
    plan = ImagePlan(ds.root, operation, opts, caption_ext, [])
    if operation == "upscale" and not opts.model:
        plan.notes.append("no --model given: plain Lanczos upscaling (a super-resolution "
                          "model gives sharper results)")
    claims = _Claims(ds.root)
    limit = pixel_limit() if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        # headers are read here (frames, transparency): a problem is a row, never raw text
        warnings.simplefilter("ignore")
        for c in concepts:
            for item in sorted(c.images, key=lambda im: im.name):
                plan.files.append(_plan_one(plan, c, item, claims, limit))
    return plan


def _check_options(operation: str, o: ImageOptions) -> None:
    if operation == "resize":
        if (o.size is None) == (o.max_side is None):
            raise LorabakeError("resize needs either --size WxH or --max-side N")
        if o.mode not in ("fit", "cover", "stretch"):
            raise LorabakeError(f"unknown resize mode {o.mode!r}", "fit, cover or stretch")
        if o.max_side is not None and o.max_side < 1:
            raise LorabakeError("--max-side must be at least 1")
    if operation == "upscale":
        if o.min_side < 1:
            raise LorabakeError("--min-side must be at least 1")
        if o.tile < 8 or o.overlap < 0 or o.overlap >= o.tile:
            raise LorabakeError("--tile must be at least 8 and --overlap between 0 and the tile")


def _plan_one(plan: ImagePlan, c: Concept, item: ImageItem, claims: _Claims,
              limit: int) -> FileAction:
    op, o = plan.operation, plan.options
    rel = _rel(c, item.name)
    fa = FileAction(rel, SKIP, "", size=(item.width, item.height) if item.width else None)
    fa.caption = _rel(c, item.caption_name) if item.caption_name else None
    if not item.readable:
        fa.action, fa.error = ERROR, _header_error(item.path)
        fa.reason = "unreadable"
        return fa
    w, h = item.width or 0, item.height or 0
    # the outputs are upright: sizes swap for the orientations that turn the image by 90 deg
    uw, uh = (h, w) if item.orientation >= 5 else (w, h)
    rotated = item.orientation != 1
    upright = f", upright (EXIF orientation {item.orientation})" if rotated else ""
    frames = 1
    # over the pixel limit: refused from the header, before anything decodes it
    big = over_pixel_limit(w, h, limit)
    if op == "convert":
        if item.ext == ".png":
            if not o.flatten and not rotated:
                fa.reason = "already png"
                return fa
            if big is not None:
                return _refused(fa, big)
            flatten = o.flatten and _png_has_alpha(item.path)
            if not flatten and not rotated:
                fa.reason = "png without transparency"
                return fa
            fa.reason = ("png with transparency: flattened onto the background" + upright
                         if flatten else f"png written upright (EXIF orientation "
                                         f"{item.orientation})")
        elif item.ext in CONVERT_EXTS:
            if big is not None:
                return _refused(fa, big)
            fa.reason = f"{item.ext[1:]} -> png{upright}"
        else:
            fa.reason = f"{item.ext} is not converted"
            return fa
        if item.ext in (".gif", ".webp", ".avif"):
            try:
                frames = frame_count(item.path.read_bytes(), max_pixels=limit)
            except (ImageDecodeError, OSError) as exc:
                fa.action, fa.error, fa.reason = ERROR, _err_text(exc), "unreadable"
                return fa
            if frames > 1:
                fa.reason = f"animated {item.ext[1:]}: {frames} frames -> png each{upright}"
        fa.new_size = (uw, uh)
    elif op == "pad":
        if w == h:
            fa.reason = "already square"
            return fa
        side = max(w, h)
        fa.reason, fa.new_size = f"{uw}x{uh} -> {side}x{side}{upright}", (side, side)
    elif op == "resize":
        if o.size is not None:
            tw, th = o.size
            if (w, h) == (tw, th) and not rotated:
                fa.reason = f"already {tw}x{th}"
                return fa
            fa.reason, fa.new_size = f"{uw}x{uh} -> {tw}x{th} ({o.mode}){upright}", (tw, th)
        else:
            assert o.max_side is not None
            if max(w, h) <= o.max_side:
                fa.reason = f"long side {max(w, h)} <= {o.max_side}"
                return fa
            fa.new_size = max_side_size(uw, uh, o.max_side)
            fa.reason = f"{uw}x{uh} -> {fa.new_size[0]}x{fa.new_size[1]}{upright}"
    elif op == "upscale":
        if min(w, h) >= o.min_side:
            fa.reason = f"short side {min(w, h)} >= {o.min_side}"
            return fa
        fa.new_size = min_side_size(uw, uh, o.min_side)
        how = "model" if o.model else "lanczos"
        fa.reason = f"{uw}x{uh} -> {fa.new_size[0]}x{fa.new_size[1]} ({how}){upright}"
    if big is not None:
        return _refused(fa, big)
    return _name_outputs(fa, op, item, c, claims, frames, plan.caption_ext)


def _refused(fa: FileAction, problem: str) -> FileAction:
    fa.action, fa.error, fa.reason, fa.new_size = ERROR, problem, "over the pixel limit", None
    return fa


def _name_outputs(fa: FileAction, op: str, item: ImageItem, c: Concept, claims: _Claims,
                  frames: int, caption_ext: str) -> FileAction:
    stem, _ = _stem_ext(item.name)
    if frames == 1 and item.ext == ".png":
        outs, caps = [fa.path], []  # in place
    elif frames == 1:
        outs, caps = [_rel(c, stem + ".png")], []
    else:
        outs = [_rel(c, f"{stem}_f{i:03d}.png") for i in range(frames)]
        caps = ([_rel(c, f"{stem}_f{i:03d}{caption_ext}") for i in range(frames)]
                if fa.caption else [])
    fresh = [p for p in outs + caps if p != fa.path]
    clash = next((p for p in fresh if claims.taken(p)), None)
    if clash is not None:
        fa.action, fa.new_paths = CONFLICT, outs
        fa.error = f"{clash} already exists; not overwritten"
        return fa
    for p in fresh:
        claims.claim(p)
    fa.action, fa.new_paths, fa.caption_copies = op, outs, caps
    fa.original = claims.original_for(fa.path)
    if caps and fa.caption:
        fa.caption_original = claims.original_for(fa.caption)
    return fa


def _header_error(path: Path) -> str:
    try:
        read_image_header(path)
    except ImageReadError as exc:
        return f"unreadable image: {exc}"
    return "unreadable image"


def _err_text(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)


def _png_has_alpha(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return has_transparency(im)
    except Exception:  # noqa: BLE001 - the worker reports a broken file properly
        return True


# ---- the per-image work (runs in worker processes) ------------------------------------------

class _Task(NamedTuple):
    rel: str
    path: str
    operation: str
    options: ImageOptions
    max_pixels: int
    threads: int | None = None


class WorkerResult(NamedTuple):
    """(rel, new PNG bytes per output | None, error | None) plus what the source was, so the
    parent can tell it did not change while it was being processed."""
    rel: str
    outputs: tuple[bytes, ...] | None
    error: str | None
    sig: tuple[int, int] | None = None  # (size, mtime_ns) of the source as read
    sha: str | None = None  # sha256 of the source bytes


def process_image(data: bytes, operation: str, options: ImageOptions, *,
                  max_pixels: int | None = None, upscaler=None) -> list[bytes]:
    """The new PNG(s) for one source image's bytes. Raises ImageDecodeError."""
    o = options
    limit = pixel_limit() if max_pixels is None else max_pixels
    if operation == "convert":
        if frame_count(data, max_pixels=limit) > 1:
            return [encode_png(to_rgb(f, o.background))
                    for f in decode_frames(data, upright=True, max_pixels=limit)]
        image = decode_image(data, upright=True, max_pixels=limit)
        if data.startswith(_PNG_SIGNATURE) and not o.flatten and has_transparency(image):
            # a PNG converted only to stand it upright keeps its transparency
            return [encode_png(_rgba(image))]
        return [encode_png(to_rgb(image, o.background))]
    if frame_count(data, max_pixels=limit) > 1:
        raise ImageDecodeError("animated image: convert it first (one PNG per frame)")
    rgb = to_rgb(decode_image(data, upright=True, max_pixels=limit), o.background)
    icc = rgb.info.get("icc_profile")
    target = (o.size if operation == "resize" and o.size is not None
              else min_side_size(rgb.width, rgb.height, o.min_side) if operation == "upscale"
              else None)
    if target is not None and limit and target[0] * target[1] > limit:
        raise ImageDecodeError("refused: the result would be "
                               + pixel_limit_message(target[0], target[1], limit))
    if operation == "pad":
        out = pad_to_square(rgb, o.background)
    elif operation == "resize":
        if o.size is not None:
            out = resize_image(rgb, o.size[0], o.size[1], o.mode, o.background)  # type: ignore
        else:
            assert o.max_side is not None
            out = downscale_max_side(rgb, o.max_side)
    elif operation == "upscale":
        from ..images.upscale import upscale_to_min_side

        out = upscale_to_min_side(rgb, o.min_side, upscaler, tile=o.tile, overlap=o.overlap)
    else:
        raise ValueError(f"unknown operation {operation!r}")
    out.info = {"icc_profile": icc} if icc else {}
    return [encode_png(out)]


def _rgba(image: Image.Image) -> Image.Image:
    """RGBA (a palette's transparent index becomes alpha), keeping an ICC profile."""
    icc = image.info.get("icc_profile")
    rgba = image.convert("RGBA")
    rgba.info = {"icc_profile": icc} if icc else {}
    return rgba


def _read_source(path: str) -> tuple[bytes, tuple[int, int]]:
    st = os.stat(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return data, (st.st_size, st.st_mtime_ns)


def _work(task: _Task) -> WorkerResult:
    try:
        data, sig = _read_source(task.path)
    except OSError as exc:
        return WorkerResult(task.rel, None, _err_text(exc))
    sha = hashlib.sha256(data).hexdigest()
    try:
        upscaler = None
        if task.operation == "upscale" and task.options.model:
            from ..images.upscale import load_upscaler

            upscaler = load_upscaler(task.options.model, threads=task.threads)
        outs = process_image(data, task.operation, task.options, max_pixels=task.max_pixels,
                             upscaler=upscaler)
    except ImageDecodeError as exc:
        return WorkerResult(task.rel, None, str(exc), sig, sha)
    except LorabakeError as exc:
        return WorkerResult(task.rel, None, str(exc), sig, sha)
    except MemoryError:
        return WorkerResult(task.rel, None, "out of memory while processing", sig, sha)
    except Exception as exc:  # noqa: BLE001 - one odd file must not end the batch
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return WorkerResult(task.rel, None, f"failed: {type(exc).__name__}: {text}".rstrip(": "),
                            sig, sha)
    return WorkerResult(task.rel, tuple(outs), None, sig, sha)


class _HashTask(NamedTuple):
    rel: str
    path: str
    max_pixels: int


def _hash_work(task: _HashTask) -> tuple[str, int | None, str | None]:
    try:
        with open(task.path, "rb") as fh:
            data = fh.read()
        # upright: one picture is one picture however its file stores it
        image = decode_image(data, upright=True, max_pixels=task.max_pixels, draft=256)
        return task.rel, phash(image), None
    except OSError as exc:
        return task.rel, None, _err_text(exc)
    except ImageDecodeError as exc:
        return task.rel, None, str(exc)
    except Exception as exc:  # noqa: BLE001
        return task.rel, None, f"failed: {type(exc).__name__}: {exc}"


# ---- applying -------------------------------------------------------------------------------

def _label(plan: ImagePlan, n: int) -> str:
    o = plan.options
    if plan.operation == "convert":
        return f"convert {n} image(s) to png"
    if plan.operation == "pad":
        return f"pad {n} image(s) to square"
    if plan.operation == "resize":
        if o.size is not None:
            return f"resize {n} image(s) to {o.size[0]}x{o.size[1]} ({o.mode})"
        return f"shrink {n} image(s) to a long side of {o.max_side}"
    return f"upscale {n} image(s) to a short side of {o.min_side}"


def apply_image_plan(plan: ImagePlan, *, workers: int | None = None,
                     progress: ProgressFn | None = None, cancelled: CancelFn | None = None,
                     max_pixels: int | None = None) -> ImageRunResult:
    """Process the plan's images and apply the outcome as one journal entry. Files that fail
    are marked `error` in the plan (with the reason) and left alone. Cancelled: nothing is
    written; `cancelled()` is asked until the journal entry starts, which then completes (a
    kill after that is rolled back by `lorabake undo`). `workers`: None for one per CPU (one
    for a model upscale, which is threaded)."""
    todo = plan.todo
    result = ImageRunResult(plan)
    if not todo:
        return result
    model = plan.options.model if plan.operation == "upscale" else None
    if workers is None:
        workers = 1 if model else default_workers()
    threads = None
    if model:
        from ..images.upscale import load_upscaler

        threads = max(1, default_workers() // workers) if workers > 1 else None
        load_upscaler(model, threads=threads)  # a bad model: one clear error, nothing done
    limit = pixel_limit() if max_pixels is None else max_pixels
    tasks = [_Task(f.path, str(plan.root / f.path), plan.operation, plan.options, limit,
                   threads) for f in todo]
    outcomes = run_tasks(_work, tasks, workers=workers, progress=progress, cancelled=cancelled)
    if outcomes is None:
        result.cancelled = True
        return result
    cs = _changes(plan, todo, outcomes)
    if cs is None:
        return result
    if cancelled is not None and cancelled():  # the last moment nothing is written yet
        result.cancelled = True
        return result
    for folder in {Path(f.original).parent for f in plan.todo if f.original}:
        (plan.root / folder).mkdir(parents=True, exist_ok=True)
    result.entry = Journal(plan.root).apply(f"images-{plan.operation}",
                                            _label(plan, len(plan.todo)), cs)
    return result


def _changes(plan: ImagePlan, todo: list[FileAction], outcomes: list[WorkerResult]
             ) -> ChangeSet | None:
    renames: list[tuple[str, str]] = []
    writes: list[tuple[str, bytes, bytes | None, tuple[int, int] | None]] = []
    for fa, res in zip(todo, outcomes, strict=True):
        try:
            moves, files = _file_changes(plan.root, fa, res)
        except _Skip as exc:
            fa.action, fa.error = ERROR, str(exc)
            continue
        renames.extend(moves)
        writes.extend(files)
    if not renames and not writes:
        return None
    cs = ChangeSet()
    # every new file first (one batch, one sync), then the moves into the originals: after a
    # kill at any point each image is still in its folder, as the old file or the new one
    for rel, new, old, sig in writes:
        cs.write(rel, new, old, sig)
    for src_rel, dst_rel in renames:
        cs.rename(src_rel, dst_rel)
    return cs


class _Skip(Exception):
    pass


_CHANGED = "changed on disk while it was processed; skipped"


def _file_changes(root: Path, fa: FileAction, res: WorkerResult):
    """(renames, writes) for one processed image; _Skip with the reason if it cannot go."""
    if res.error is not None or res.outputs is None:
        raise _Skip(res.error or "no output")
    if len(res.outputs) != len(fa.new_paths):
        raise _Skip(f"decoded {len(res.outputs)} frame(s) where the header said "
                    f"{len(fa.new_paths)}; skipped")
    src = root / fa.path
    try:
        st = os.stat(src)
    except OSError as exc:
        raise _Skip(_err_text(exc)) from None
    sig = (st.st_size, st.st_mtime_ns)
    if sig != res.sig:
        raise _Skip(_CHANGED)
    assert fa.original is not None
    if fa.new_paths == [fa.path]:  # a PNG rewritten in place: keep a copy, then replace
        try:
            old = src.read_bytes()
        except OSError as exc:
            raise _Skip(_err_text(exc)) from None
        if hashlib.sha256(old).hexdigest() != res.sha:
            raise _Skip(_CHANGED)
        return [], [(fa.original, old, None, None), (fa.path, res.outputs[0], old, sig)]
    renames = [(fa.path, fa.original)]
    writes = [(p, data, None, None) for p, data in zip(fa.new_paths, res.outputs, strict=True)]
    if fa.caption_copies and fa.caption and fa.caption_original:
        try:
            caption = (root / fa.caption).read_bytes()
        except OSError as exc:
            raise _Skip(f"caption {fa.caption}: {_err_text(exc)}") from None
        renames.append((fa.caption, fa.caption_original))
        writes.extend((p, caption, None, None) for p in fa.caption_copies)
    return renames, writes


# ---- reports --------------------------------------------------------------------------------

@dataclass(slots=True)
class LowRes:
    path: str
    size: tuple[int, int]


def find_lowres(root: Path | str, min_side: int = DEFAULT_MIN_SIDE, *,
                concept: str | None = None, caption_ext: str = DEFAULT_CAPTION_EXT
                ) -> tuple[list[LowRes], list[tuple[str, str]]]:
    """Images whose short side is below `min_side`, from their headers (fast), and the
    unreadable ones as (path, reason)."""
    if min_side < 1:
        raise LorabakeError("--min-side must be at least 1")
    _, concepts = _scope(root, concept, caption_ext)
    low: list[LowRes] = []
    bad: list[tuple[str, str]] = []
    for c in concepts:
        for item in sorted(c.images, key=lambda im: im.name):
            rel = _rel(c, item.name)
            if not item.readable or item.width is None or item.height is None:
                bad.append((rel, _header_error(item.path)))
            elif min(item.width, item.height) < min_side:
                low.append(LowRes(rel, (item.width, item.height)))
    return low, bad


@dataclass(slots=True)
class DupeReport:
    groups: list[list[tuple[str, int]]]  # [(path, distance to the group's first)]
    errors: list[tuple[str, str]]
    images: int
    threshold: int
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"groups": [[{"path": p, "distance": d} for p, d in g] for g in self.groups],
                "errors": [{"path": p, "error": e} for p, e in self.errors],
                "images": self.images, "threshold": self.threshold}


def find_duplicates(root: Path | str, *, threshold: int = DEFAULT_THRESHOLD,
                    concept: str | None = None, caption_ext: str = DEFAULT_CAPTION_EXT,
                    workers: int | None = None, progress: ProgressFn | None = None,
                    cancelled: CancelFn | None = None, max_pixels: int | None = None
                    ) -> DupeReport:
    """Groups of near-duplicate images (pHash Hamming distance <= threshold). Reads only."""
    if not 0 <= threshold <= 64:
        raise LorabakeError("--threshold must be between 0 and 64")
    ds, concepts = _scope(root, concept, caption_ext)
    limit = pixel_limit() if max_pixels is None else max_pixels
    tasks: list[_HashTask] = []
    refused: list[tuple[str, str]] = []  # over the limit by the header: never decoded
    for c in concepts:
        for im in sorted(c.images, key=lambda im: im.name):
            big = over_pixel_limit(im.width or 0, im.height or 0, limit)
            if big is None:
                tasks.append(_HashTask(_rel(c, im.name), str(im.path), limit))
            else:
                refused.append((_rel(c, im.name), big))
    images = len(tasks) + len(refused)
    out = run_tasks(_hash_work, tasks, workers=default_workers() if workers is None else workers,
                    progress=progress, cancelled=cancelled)
    if out is None:
        return DupeReport([], [], images, threshold, cancelled=True)
    paths = [rel for rel, h, _ in out if h is not None]
    hashes = [h for _, h, _ in out if h is not None]
    errors = refused + [(rel, err or "unreadable") for rel, h, err in out if h is None]
    groups = [[(paths[m.index], m.distance) for m in g]
              for g in group_near_duplicates(hashes, threshold)]
    return DupeReport(groups, errors, images, threshold)


__all__ = [
    "ANIMATED_FORMATS", "CONFLICT", "ERROR", "OPERATIONS", "ORIGINALS", "REPORTS", "SKIP",
    "DupeReport", "FileAction", "ImageOptions", "ImagePlan", "ImageRunResult", "LowRes",
    "WorkerResult", "apply_image_plan", "default_workers", "find_duplicates", "find_lowres",
    "plan_images", "process_image", "run_tasks",
]
