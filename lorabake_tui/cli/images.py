"""`lorabake images DIR ACTION ...`: the image preparation tools, headless.

Changing actions (convert, pad, resize, upscale) print their plan (`--dry-run` stops there),
then process the images in worker processes and apply the result as one journal entry
(`lorabake undo DIR` takes it back; the originals wait in DIR/.lorabake/originals).
dupes and lowres only report. SIGINT or SIGTERM while the images are processed ends the
workers at once and writes nothing (exit 130 or 143); one that comes while the journal
entry is being written lets it complete (the usual exit code, a note on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ..core.base.errors import LorabakeError
from ..core.base.workers import StopSignals
from .common import OK, PARTIAL, Parser, print_json
from .progress import progress_printer

CHANGING = ("convert", "pad", "resize", "upscale")
ACTIONS = (*CHANGING, "dupes", "lowres")
SHOWN = 10  # plan rows printed when not a dry run


def build_parser() -> argparse.ArgumentParser:
    from ..core.images.imageops import DEFAULT_BACKGROUND  # Pillow: only for this command

    p = Parser(
        prog="lorabake images",
        description="Image tools over the training concept folders. Changing actions print "
                    "their plan and apply it as one undoable step (`lorabake undo DIR`); the "
                    "originals are kept in DIR/.lorabake/originals. Every output is a PNG.")
    p.add_argument("dir", help="dataset training root")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_, description=help_)
        a.add_argument("--concept", metavar="FOLDER", help="only this concept folder")
        a.add_argument("--caption-ext", default=None, metavar="EXT",
                       help="caption extension (default: the project config's, else .txt)")
        a.add_argument("--json", action="store_true", help="print the result as JSON")
        if name != "lowres":
            a.add_argument("--workers", type=int, metavar="N",
                           help="worker processes (default: one per CPU)")
        if name in CHANGING:
            a.add_argument("--dry-run", action="store_true", help="print the plan only")
            a.add_argument("--background", default=DEFAULT_BACKGROUND, metavar="COLOUR",
                           help="transparency is composited on it, padding uses it "
                                f"(default {DEFAULT_BACKGROUND}; #rrggbb works)")
        return a

    a = action("convert", "convert webp/avif/gif/jpg/jpeg/bmp to png (an animated gif: one "
                          "png per frame, name_f000.png ..., each with a copy of the caption); "
                          "an EXIF-rotated image (a png too) is written upright, as viewers "
                          "show it, instead of sideways as kohya would train it")
    a.add_argument("--flatten", action="store_true",
                   help="also flatten pngs with transparency onto the background")
    action("pad", "pad non-square images to square, centred (the guide's padding script)")
    a = action("resize", "resize to WxH (fit: pad, cover: crop like kohya, stretch) or shrink "
                         "to a maximum side")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--size", metavar="WxH", help="exact output size, e.g. 512x512")
    g.add_argument("--max-side", type=int, metavar="N",
                   help="shrink so the long side is at most N (never enlarges)")
    a.add_argument("--mode", choices=("fit", "cover", "stretch"), default="cover",
                   help="with --size: fit pads, cover crops centred (kohya), stretch distorts "
                        "(default cover)")
    a = action("upscale", "enlarge images whose short side is below --min-side")
    a.add_argument("--min-side", type=int, default=512, metavar="N", help="default 512")
    a.add_argument("--model", metavar="PATH.onnx",
                   help="super-resolution ONNX model (NCHW RGB 0..1); default: Lanczos")
    a.add_argument("--tile", type=int, default=256, help="model tile size (default 256)")
    a.add_argument("--overlap", type=int, default=16, help="tile overlap (default 16)")
    a = action("dupes", "groups of near-duplicate images (perceptual hash); changes nothing")
    a.add_argument("--threshold", type=int, default=6, metavar="BITS",
                   help="max Hamming distance of the 64-bit hashes (default 6)")
    a = action("lowres", "images whose short side is below --min-side (headers only)")
    a.add_argument("--min-side", type=int, default=512, metavar="N", help="default 512")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from .dataset import project_of

    args.caption_ext = project_of(args).caption_ext
    if getattr(args, "workers", None) is not None and args.workers < 1:
        raise LorabakeError("--workers must be at least 1")
    if args.action == "lowres":
        return run_lowres(args)
    if args.action == "dupes":
        return run_dupes(args)
    return run_change(args)





def options_from_args(args):
    from ..core.dataset.imagetools import ImageOptions
    from ..core.images.imageops import parse_color, parse_size

    kw = {"background": parse_color(args.background)}
    if args.action == "convert":
        kw["flatten"] = args.flatten
    elif args.action == "resize":
        kw["mode"] = args.mode
        if args.size:
            kw["size"] = parse_size(args.size)
        else:
            kw["max_side"] = args.max_side
    elif args.action == "upscale":
        kw.update(min_side=args.min_side, model=args.model, tile=args.tile,
                  overlap=args.overlap)
    return ImageOptions(**kw)


def run_change(args) -> int:
    from ..core.dataset.imagetools import CONFLICT, ERROR, SKIP, apply_image_plan, plan_images

    plan = plan_images(args.dir, args.action, options_from_args(args), concept=args.concept,
                       caption_ext=args.caption_ext)
    result = None
    with StopSignals() as stop:  # SIGINT/SIGTERM: end the workers, write nothing
        if plan.todo and not args.dry_run:
            result = apply_image_plan(plan, workers=args.workers, cancelled=stop,
                                      progress=progress_printer(args.action))
    applied = result is not None and result.applied
    failed = [f for f in plan.files if f.action in (ERROR, CONFLICT)]
    if stop() and sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line
    if stop() and applied:  # it came while the journal wrote: that finished first
        print(f"lorabake: {stop.name} came while the change was being written; it was "
              f"completed (undo with `lorabake undo {args.dir}`)", file=sys.stderr)
    if args.json:
        print_json(plan.to_json(applied))
        if result is not None and result.cancelled:
            return stop.exit_code
        if not failed or args.dry_run:
            return OK
        return PARTIAL if applied else ERROR
    todo = plan.todo
    skipped = [f for f in plan.files if f.action == SKIP]
    parts = [f"{len(todo)} image(s) to change" if args.dry_run or not applied
             else f"{len(todo)} image(s) changed", f"{len(skipped)} skipped"]
    if plan.count(CONFLICT):
        parts.append(f"{plan.count(CONFLICT)} conflict(s)")
    if plan.count(ERROR):
        parts.append(f"{plan.count(ERROR)} error(s)")
    print(f"{args.action} {len(plan.files)} image(s): " + ", ".join(parts))
    limit = None if args.dry_run else SHOWN
    for f in todo[:limit]:
        target = ", ".join(f.new_paths) if f.new_paths != [f.path] else "(in place)"
        print(f"  {f.path} -> {target}  ({f.reason})")
    if limit is not None and len(todo) > limit:
        print(f"  ... and {len(todo) - limit} more")
    if skipped:
        why = Counter(f.reason for f in skipped)
        print("  skipped: " + "; ".join(f"{n} {r}" for r, n in why.most_common()))
    for note in plan.notes:
        print(f"  note: {note}")
    for f in failed:
        print(f"  {f.action}: {f.path}: {f.error}", file=sys.stderr)
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    if result is not None and result.cancelled:
        print("cancelled: nothing written")
        return stop.exit_code
    if applied:
        print(f"changed {len(todo)} file(s); originals in .lorabake/originals; "
              f"undo with `lorabake undo {args.dir}`")
    else:
        print("nothing to change")
    if not failed:
        return OK
    return PARTIAL if applied else ERROR


def run_dupes(args) -> int:
    from ..core.dataset.imagetools import find_duplicates

    with StopSignals() as stop:
        report = find_duplicates(args.dir, threshold=args.threshold, concept=args.concept,
                                 caption_ext=args.caption_ext, workers=args.workers,
                                 progress=progress_printer("hashing"), cancelled=stop)
    if report.cancelled:
        print("cancelled", file=sys.stderr)
        return stop.exit_code
    if args.json:
        data = {"operation": "dupes", **report.to_json()}
        print_json(data)
        return 0
    print(f"{len(report.groups)} group(s) of near-duplicates among {report.images} image(s) "
          f"(threshold {report.threshold} bits)")
    for n, group in enumerate(report.groups, 1):
        print(f"  group {n}:")
        for i, (path, dist) in enumerate(group):
            print(f"    {path}" + ("" if i == 0 else f"  (distance {dist})"))
    for path, err in report.errors:
        print(f"  error: {path}: {err}", file=sys.stderr)
    return 0


def run_lowres(args) -> int:
    from ..core.dataset.imagetools import find_lowres

    low, bad = find_lowres(args.dir, args.min_side, concept=args.concept,
                           caption_ext=args.caption_ext)
    if args.json:
        print_json({"operation": "lowres", "min_side": args.min_side,
                     "images": [{"path": r.path, "size": list(r.size)} for r in low],
                     "errors": [{"path": p, "error": e} for p, e in bad]})
        return 0
    print(f"{len(low)} image(s) with a short side below {args.min_side} px")
    for r in low:
        print(f"  {r.path}  {r.size[0]}x{r.size[1]}")
    if low:
        print(f"  upscale them: `lorabake images {args.dir} upscale --min-side {args.min_side}`")
    for path, err in bad:
        print(f"  error: {path}: {err}", file=sys.stderr)
    return 0
