"""`lorabake autotag DIR --model PATH_OR_REPO`: caption images with a WD1.4 / WD v3 tagger.

The run is one journal entry (`lorabake undo DIR`). Ctrl+C stops after the current batch and
writes what is done (resume with `--mode missing`); a second Ctrl+C aborts at once, and the
next run takes what was inferred from the resume cache.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from .common import CANCELLED, OK, Parser, partial_or, print_json
from .progress import progress_printer

SAMPLES = 5
SHOWN_TAGS = 40  # a tagger gone wrong can write hundreds of tags: the JSON has them all


def build_parser() -> argparse.ArgumentParser:
    from ..core.tagger.autotag import MODES

    p = Parser(
        prog="lorabake autotag",
        description="Tag images with a WD1.4 / WD v3 ONNX tagger (a folder with model.onnx "
                    "and selected_tags.csv, or a repo id in the Hugging Face cache). The run "
                    "is one undoable step (`lorabake undo DIR`).")
    p.add_argument("dir", help="dataset training root")
    p.add_argument("--model", required=True, metavar="PATH_OR_REPO",
                   help="tagger folder, its model.onnx, or e.g. SmilingWolf/wd-vit-tagger-v3")
    p.add_argument("--download", action="store_true",
                   help="download the repo when it is not in the cache (needs huggingface_hub)")
    p.add_argument("--general", type=float, metavar="P",
                   help="general tag threshold (default: the model's, 0.35 v2 / 0.27 v3)")
    p.add_argument("--character", type=float, metavar="P",
                   help="character tag threshold (default 0.85)")
    p.add_argument("--mode", choices=MODES, default="missing",
                   help="missing: only images without a caption (default); append; prepend; "
                        "overwrite")
    p.add_argument("--undesired", default="", metavar="TAGS",
                   help="comma-separated tags or globs never written, e.g. 'simple_background, "
                        "*_theme'")
    p.add_argument("--first", default="", metavar="TAGS",
                   help="comma-separated tags always put first (the trigger)")
    p.add_argument("--rating", action="store_true", help="add the rating tag")
    p.add_argument("--no-character-first", dest="character_first", action="store_false",
                   help="order character tags by probability among the general ones")
    p.add_argument("--batch", type=int, metavar="N", help="images per inference (default 1 "
                   "on the CPU, where decoding still runs on every core; 32 on a GPU)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--concept", metavar="FOLDER", help="only this concept folder")
    p.add_argument("--caption-ext", default=None, metavar="EXT",
                   help="caption extension (default: the project config's, else .txt)")
    p.add_argument("--write-style", choices=("keep", "spaces", "underscores"),
                   help="how written tags look (default: the project's, else keep)")
    p.add_argument("--dry-run", action="store_true", help="tag and preview, write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def options_from(args):
    from ..core.tagger.autotag import TagOptions, split_list

    opts = TagOptions(general=args.general, character=args.character, rating=args.rating,
                      undesired=split_list(args.undesired), first=split_list(args.first),
                      character_first=args.character_first, mode=args.mode, batch=args.batch)
    opts.check()
    return opts


class _CtrlC:
    """First Ctrl+C: stop after the batch in flight; second: the usual KeyboardInterrupt."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old = None

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self.event

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after this batch (Ctrl+C again to abort)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def load_store(args):
    from ..core.captions.store import CaptionStore
    from ..core.project.prefs import ProjectSettings
    from .dataset import project_of

    ds = project_of(args).scan()
    style = args.write_style or ProjectSettings.load(ds.root).write_style
    store = CaptionStore.load(ds, style=style)
    return store, store.select(concept=args.concept)


def main(argv: list[str]) -> int:
    from ..core.tagger.autotag import autotag, open_tagger

    args = build_parser().parse_args(argv)
    opts = options_from(args)
    store, records = load_store(args)
    tagger = open_tagger(args.model, download=args.download, device=args.device)
    g_thr, c_thr = tagger.thresholds(opts)
    if not args.json:
        print(f"tagger {tagger.name}: {tagger.model.size} px, {len(tagger.model.tags)} tags, "
              f"{tagger.model.providers[0]}; general >= {g_thr:g}, character >= {c_thr:g}",
              file=sys.stderr)
    with _CtrlC() as cancel:
        result = autotag(store, records, tagger, opts, dry_run=args.dry_run, cancel=cancel,
                         progress=progress_printer("autotag"))
    plan = result.plan
    if args.json:
        print_json({
            "model": tagger.name, "mode": opts.mode, "general": g_thr, "character": c_thr,
            "provider": tagger.model.providers[0], "scope": len(records),
            "to_tag": result.total, "tagged": result.done, "from_cache": result.cached,
            "files": plan.files, "applied": result.applied is not None,
            "cancelled": result.cancelled, "seconds": round(result.seconds, 3),
            "images_per_s": round(result.images_per_s, 3),
            "changes": [{"path": c.record.rel, "before": c.old_tags, "after": c.new_tags}
                        for c in plan.changes],
            "failures": result.failures, "not_editable": plan.not_editable,
            "skipped": result.applied.skipped if result.applied else [],
        })
        return _code(result)
    _print_summary(args, result)
    if result.cancelled:
        print(f"stopped: resume with `{_resume_command(argv)}`", file=sys.stderr)
    return _code(result)


def _code(result) -> int:
    if result.cancelled:
        return CANCELLED
    return partial_or(OK, result.failures or (result.applied.skipped if result.applied
                                              else None))


def _print_summary(args, result) -> None:
    plan = result.plan
    speed = f", {result.images_per_s:.1f} images/s" if result.done > result.cached else ""
    cache = f" ({result.cached} from an earlier run's cache)" if result.cached else ""
    print(f"{plan.label}: {plan.files} caption(s) change; {result.done} of {result.total} "
          f"image(s) tagged{cache} in {result.seconds:.1f} s{speed}")
    for c in plan.changes[:SAMPLES]:
        print(f"  {c.record.rel}")
        if c.old_tags:
            print(f"    - {_short(c.old_tags)}")
        print(f"    + {_short(c.new_tags)}")
    if plan.files > SAMPLES:
        print(f"  ... and {plan.files - SAMPLES} more")
    for line in result.failures:
        print(f"  could not read: {line}", file=sys.stderr)
    for line in plan.not_editable:
        print(f"  left alone: {line}", file=sys.stderr)
    if result.applied is not None:
        for line in result.applied.skipped:
            print(f"  skipped (changed on disk): {line}", file=sys.stderr)
        print(f"wrote {result.applied.written} file(s); undo with `lorabake undo {args.dir}`")
    elif plan.files and args.dry_run:
        print("dry run: nothing written")
    elif not result.total:
        print("nothing to tag" + (" (every image has a caption; try --mode append)"
                                  if args.mode == "missing" else ""))


def _short(tags: list[str]) -> str:
    more = len(tags) - SHOWN_TAGS
    return ", ".join(tags[:SHOWN_TAGS]) + (f", ... (+{more})" if more > 0 else "")


def _resume_command(argv: list[str]) -> str:
    """The same command in "missing" mode: it carries on with the images still untagged."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--mode":
            skip = True
        elif not a.startswith("--mode="):
            out.append(a)
    return shlex.join(["lorabake", "autotag", *out, "--mode", "missing"])
