"""Auto-tagging a dataset with a WD1.4 / WD v3 tagger, through the caption store.

Model files: `tagger_model`; images and the batched decoding pipeline: `tagger_input`; here:
which tags an image gets (thresholds, rating, undesired, order), how they meet an existing
caption (the modes), and a run over a dataset.

Journal and resume. A run is ONE journal entry (`lorabake undo DIR` or `u` in the Tags screen
takes the whole run back), written once inference is over. Chunked entries ("part k") would
survive a crash on disk, but then undoing a run would take as many undos as there were chunks,
and a half-undone run is a state nobody asked for. What a crash would lose is the expensive
part, the inference, so that is what is kept: every batch's probabilities (those above a
small floor, plus the rating rows) are appended to `.lorabake/autotag/<model>.jsonl`, keyed
by the image's path, size and mtime. Running again, in any mode, takes the images already
inferred from there and only infers the rest. The cache is removed once a run has completed
and been written; a changed image or a lower threshold than the floor simply misses it.
Cancelling (the UI's cancel, Ctrl+C in the CLI) is not a crash: the images inferred so far
are written as that run's one entry, and the run can be resumed in "missing" mode, which
only looks at images still without a caption.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import LorabakeError
from ..base.journal import Journal
from ..base.project_files import ProjectFiles
from ..captions.store import ApplyResult, CaptionPlan, CaptionRecord, CaptionStore
from ..captions.tagops import remove_tags
from ..captions.tags import SHORT_TAG, tag_key
from .inputs import default_workers, load_image, predict_stream
from .model import CHARACTER, RATING, TaggerModel, fingerprint

MODES = ("missing", "append", "prepend", "overwrite")
CACHE_FLOOR = 0.05  # probabilities below this are not worth keeping for a resume
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class TagOptions:
    general: float | None = None  # None: the model's default
    character: float | None = None
    rating: bool = False  # add the most likely rating tag (general, sensitive, ...)
    undesired: tuple[str, ...] = ()  # tags or globs (`*_background`) never written
    first: tuple[str, ...] = ()  # always first, in this order (the trigger)
    character_first: bool = True  # character tags before general ones
    mode: str = "missing"
    batch: int | None = None  # images per inference; None: 32 on a GPU, 1 on the CPU

    def check(self) -> None:
        if self.mode not in MODES:
            raise LorabakeError(f"unknown mode {self.mode!r}", f"use one of {', '.join(MODES)}")
        for what, v in (("general", self.general), ("character", self.character)):
            if v is not None and not 0.0 <= v <= 1.0:
                raise LorabakeError(f"the {what} threshold must be between 0 and 1, not {v}")
        if self.batch is not None and self.batch < 1:
            raise LorabakeError("the batch size must be at least 1")


def split_list(text: str) -> tuple[str, ...]:
    """'a, b ,c' -> ('a', 'b', 'c'): how tag lists are typed in the CLI and the dialog."""
    return tuple(t for t in (p.strip() for p in text.split(",")) if t)


def written_form(name: str) -> str:
    """A model tag as captions write it: underscores to spaces, emoticons (`^_^`) kept."""
    return name if len(name) <= SHORT_TAG else name.replace("_", " ")


# ---- choosing tags ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Scores:
    """One image's probabilities, split by category, most likely first."""
    general: list[tuple[str, float]]
    character: list[tuple[str, float]]
    rating: list[tuple[str, float]]


class Tagger:
    """A model plus the rules that turn its probabilities into caption tags."""

    def __init__(self, model: TaggerModel) -> None:
        self.model = model
        cats = model.tags.categories
        self.rating_idx = np.nonzero(cats == RATING)[0]
        self.character_idx = np.nonzero(cats == CHARACTER)[0]
        # anything else (a CSV with artist or meta categories) is held to the general threshold
        self.general_idx = np.nonzero((cats != RATING) & (cats != CHARACTER))[0]
        self.names = [written_form(n) for n in model.tags.names]

    @property
    def name(self) -> str:
        return self.model.name

    def thresholds(self, opts: TagOptions) -> tuple[float, float]:
        return (self.model.default_general if opts.general is None else opts.general,
                self.model.default_character if opts.character is None else opts.character)

    def select(self, probs: np.ndarray, opts: TagOptions) -> list[str]:
        """The tags an image gets, in caption order: first tags, rating, characters, general."""
        g_thr, c_thr = self.thresholds(opts)

        def above(idx: np.ndarray, thr: float) -> list[int]:
            keep = idx[probs[idx] >= thr]
            return keep[np.argsort(-probs[keep], kind="stable")].tolist()

        chars, gens = above(self.character_idx, c_thr), above(self.general_idx, g_thr)
        order = chars + gens if opts.character_first else sorted(
            chars + gens, key=lambda i: -probs[i])
        tags = [self.names[i] for i in order]
        if opts.rating and len(self.rating_idx):
            tags.insert(0, self.names[int(self.rating_idx[np.argmax(probs[self.rating_idx])])])
        if opts.undesired:
            tags = remove_tags(tags, opts.undesired)
        return _dedupe([*opts.first, *tags])

    def scores(self, probs: np.ndarray, limit: int = 40) -> Scores:
        def top(idx: np.ndarray) -> list[tuple[str, float]]:
            order = idx[np.argsort(-probs[idx], kind="stable")][:limit]
            return [(self.names[i], float(probs[i])) for i in order]

        return Scores(top(self.general_idx), top(self.character_idx), top(self.rating_idx))

    def predict_file(self, path: Path | str) -> np.ndarray:
        """Probabilities for one image (the preview)."""
        arr = load_image(path, self.model.size)
        return self.model.run(arr[None])[0]

    def batch_size(self, opts: TagOptions) -> int:
        # on the CPU a batch is no faster per image (a ViT's attention maps for several
        # images outgrow the cache): batches of 1, while decoding still runs on every core
        n = opts.batch or (32 if self.model.on_gpu else 1)
        return min(n, self.model.max_batch) if self.model.max_batch else n


def _dedupe(tags: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for t in tags:
        k = tag_key(t)
        if k and k not in seen:
            seen.add(k)
            out.append(t)
    return out


def merge(old: list[str], new: list[str], mode: str, first: Iterable[str] = ()) -> list[str]:
    """The caption after tagging: `new` (the model's tags, first tags in front) meets `old`.

    missing/overwrite: `new`; append: old, then new tags it lacks; prepend: new tags it lacks,
    then old. Either way the first tags (the trigger) end up first, exactly once."""
    firsts = _dedupe(first)
    fkeys = {tag_key(t) for t in firsts}
    new_rest = [t for t in new if tag_key(t) not in fkeys]
    if mode in ("missing", "overwrite"):
        body = new_rest
    else:
        old_rest = [t for t in old if tag_key(t) not in fkeys]
        have = {tag_key(t) for t in old_rest}
        added = [t for t in new_rest if tag_key(t) not in have]
        body = old_rest + added if mode == "append" else added + old_rest
    return _dedupe([*firsts, *body])


def wants(rec: CaptionRecord, mode: str) -> bool:
    """Does a run in `mode` tag this image? "missing": no caption file, or an empty one."""
    return rec.editable and (mode != "missing" or not rec.exists or not rec.tags)


# ---- the resume cache ---------------------------------------------------------------------

class ProbCache:
    """Probabilities already inferred, per image, for one model (see the module docstring)."""

    def __init__(self, root: Path, model_fp: str) -> None:
        self.path = ProjectFiles(Path(root)).autotag / f"{model_fp}.jsonl"
        self._fh = None

    def load(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        d = json.loads(line)
                        out[d["image"]] = d
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash
        except OSError:
            pass
        return out

    @staticmethod
    def usable(d: dict, stat: tuple[int, int], floor: float) -> bool:
        return tuple(d.get("stat", ())) == stat and d.get("floor", 1.0) <= floor

    @staticmethod
    def dense(d: dict, n: int) -> np.ndarray:
        probs = np.zeros(n, dtype=np.float32)
        for i, p in zip(d["i"], d["p"], strict=True):
            probs[i] = p
        return probs

    def add(self, image: str, stat: tuple[int, int], floor: float, probs: np.ndarray,
            always: np.ndarray) -> None:
        keep = np.union1d(np.nonzero(probs >= floor)[0], always)
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._fh.write(json.dumps({"image": image, "stat": list(stat), "floor": floor,
                                   "i": keep.tolist(),
                                   "p": [round(float(probs[i]), 5) for i in keep]}) + "\n")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()  # a killed process keeps every batch flushed before it

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def clear(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


# ---- a run over a dataset -----------------------------------------------------------------

@dataclass(slots=True)
class AutotagResult:
    plan: CaptionPlan
    applied: ApplyResult | None
    total: int  # images the run set out to tag
    done: int  # images it has tags for (inferred now or taken from the resume cache)
    cached: int  # of which from the resume cache
    failures: list[str] = field(default_factory=list)  # images that could not be read
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return (self.done - self.cached) / self.seconds if self.seconds > 0 else 0.0


def run_label(tagger: Tagger, opts: TagOptions, done: int, total: int,
              cancelled: bool) -> str:
    label = f"autotag {tagger.name} ({opts.mode}): {done} image(s)"
    return label + (f", stopped at {done} of {total}" if cancelled else "")


def autotag(store: CaptionStore, records: Iterable[CaptionRecord], tagger: Tagger,
            opts: TagOptions, *, journal: Journal | None = None, dry_run: bool = False,
            progress: Progress | None = None, cancel: threading.Event | None = None,
            workers: int | None = None, use_cache: bool = True) -> AutotagResult:
    """Tag the images of `records` that the mode wants, and write them as one journal entry
    (nothing with `dry_run`). Cancel stops between batches and writes what is done."""
    opts.check()
    start = time.perf_counter()
    journal = journal or Journal(store.root)
    records = list(records)
    targets = [r for r in records if wants(r, opts.mode)]
    not_editable = [f"{r.rel}: {r.error}" for r in records if not r.editable]
    if not dry_run and targets:
        pending = journal.interrupted()
        if pending is not None:  # refuse before minutes of inference, not after
            raise LorabakeError(f"an interrupted operation '{pending.label}' is still pending",
                                "roll it back first: `lorabake undo DIR` or the workbench")
    g_thr, c_thr = tagger.thresholds(opts)
    floor = min(CACHE_FLOOR, g_thr, c_thr)
    n_tags = len(tagger.model.tags)
    cache = ProbCache(store.root, fingerprint(tagger.model.files)) if use_cache else None
    cached = cache.load() if cache is not None else {}

    new_tags: dict[str, list[str]] = {}
    failures: list[str] = []
    todo: list[tuple[CaptionRecord, tuple[int, int]]] = []
    n_cached = 0
    for rec in targets:
        try:
            st = os.stat(store.root / rec.image_rel)
        except OSError as exc:
            failures.append(f"{rec.image_rel}: cannot read: {exc.strerror}")
            continue
        stat = (st.st_size, st.st_mtime_ns)
        hit = cached.get(rec.image_rel)
        if hit is not None and ProbCache.usable(hit, stat, floor):
            new_tags[rec.rel] = tagger.select(ProbCache.dense(hit, n_tags), opts)
            n_cached += 1
        else:
            todo.append((rec, stat))
    total = len(targets)
    done = n_cached + len(failures)
    if progress and total:
        progress(done, total)
    cancelled = False
    stream = predict_stream(
        tagger.model.run, (store.root / rec.image_rel for rec, _ in todo), tagger.model.size,
        batch=tagger.batch_size(opts), cancel=cancel, overlap=tagger.model.on_gpu,
        workers=workers or default_workers(tagger.model.on_gpu))
    try:
        for batch in stream:
            for i, reason in batch.failed:
                failures.append(f"{todo[i][0].image_rel}: {reason}")
            for row, i in enumerate(batch.indices):
                rec, stat = todo[i]
                probs = batch.probs[row]
                new_tags[rec.rel] = tagger.select(probs, opts)
                if cache is not None:
                    cache.add(rec.image_rel, stat, floor, probs, tagger.rating_idx)
            if cache is not None:
                cache.flush()
            done += len(batch.indices) + len(batch.failed)
            if progress:
                progress(done, total)
        cancelled = done < total
    finally:
        stream.close()
        if cache is not None:
            cache.close()

    tagged = [r for r in targets if r.rel in new_tags]
    label = run_label(tagger, opts, len(tagged), total, cancelled)
    plan = CaptionPlan(label, [], len(tagged), not_editable)
    for rec in tagged:
        tags = new_tags[rec.rel]
        part = store.plan(lambda old, t=tags: merge(old, t, opts.mode, opts.first), [rec],
                          label, create_missing=True)
        plan.changes.extend(part.changes)
    applied = None
    if plan.changes and not dry_run:
        applied = store.apply(plan, journal, op="tags")
    if cache is not None and not dry_run and not cancelled and not (applied and applied.skipped):
        cache.clear()  # every image is written: nothing left to resume
    return AutotagResult(plan, applied, total, len(tagged), n_cached, failures, cancelled,
                         time.perf_counter() - start)


def open_tagger(spec: str, *, download: bool = False, device: str = "auto") -> Tagger:
    from .model import resolve_model

    return Tagger(TaggerModel(resolve_model(spec, download=download), device=device))


# ---- remembered dialog settings -------------------------------------------------------------

def _last_path(root: Path) -> Path:
    return ProjectFiles(Path(root)).autotag / "last.json"


def load_last(root: Path) -> dict[str, str]:
    """The auto-tag dialog's last values for this dataset (model, thresholds, ...)."""
    try:
        data = json.loads(_last_path(root).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_last(root: Path, values: dict[str, str]) -> None:
    from ..base.atomic import atomic_write_text

    path = _last_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(values, ensure_ascii=False, indent=1))
