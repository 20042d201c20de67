"""The `lorabake` command: opens the workbench, and runs every operation headless.

Imports stay lazy so that `lorabake scan` never pays for Textual and nothing pays for torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import __version__
from ..core.base.errors import LorabakeError
from .progress import progress_printer

SUBCOMMANDS = ("scan", "balance", "tags", "images", "buckets", "config", "train", "jobs", "undo",
               "redo", "demo", "trigger", "autotag")
DEFAULT_DEMO_DIR = "lorabake-demo"

USAGE = """\
lorabake [DIR] [options]           open the workbench on DIR (default: .)
lorabake scan DIR [--json]         list concept folders and problems
lorabake balance DIR [--target N | --optimizer P] [--apply] [--json]
lorabake tags DIR ACTION ...       bulk caption edits: list stats replace remove add prune
                                   consolidate synonyms implications dedupe sort normalize;
                                   tokens (captions over the token limit)
lorabake autotag DIR --model PATH_OR_REPO [--mode missing|append|prepend|overwrite]
                                   caption images with a WD1.4 / WD v3 tagger
lorabake images DIR ACTION ...     image tools: convert pad resize upscale dupes lowres
lorabake buckets DIR [--resolution N] [--batch N] [--no-upscale] [--recommend K] [--json]
lorabake config presets | new DIR | check FILE | export FILE --to kohya|easy OUT | import FILE
lorabake train CONFIG [--run-dir D] | --resume RUN_DIR [--detach]
                                   train a LoRA (foreground; --detach: as a job)
lorabake jobs [ACTION ...]         training jobs, detached and queued: list start stop resume
                                   remove move log attach follow
lorabake undo DIR                  undo the last change (or roll back an interrupted one)
lorabake redo DIR                  redo what undo took back
lorabake demo [--dir D] [--no-tui] build the demo dataset and open it
lorabake trigger WORD [--dir DIR] [--json]
                                   how CLIP reads a trigger: known words, rarer spellings"""


def _dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reg", metavar="DIR", help="regularization root (N_name folders)")
    p.add_argument("--caption-ext", default=".txt", metavar="EXT",
                   help="caption file extension (default .txt; kohya's own default is .caption)")


def _ui_options(p: argparse.ArgumentParser) -> None:
    from ..core.base.user_settings import IMAGE_MODES

    p.add_argument("--images", choices=IMAGE_MODES, default=None,
                   help="image preview renderer (default: remembered setting, else auto)")
    p.add_argument("--theme", default=None, help="theme name (default: remembered setting)")


def build_open_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lorabake", usage=USAGE,
        description="A keyboard-driven terminal workbench for baking SD 1.5 LoRAs.",
        epilog="Run `lorabake COMMAND --help` for a command's options.")
    p.add_argument("dir", nargs="?", default=".", help="dataset training root (default: .)")
    _dataset_options(p)
    _ui_options(p)
    p.add_argument("--version", action="version", version=f"lorabake {__version__}")
    return p


def build_command_parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"lorabake {cmd}")
    if cmd == "scan":
        p.description = "Scan a dataset: concept folders, images, captions and problems."
        p.add_argument("dir")
        _dataset_options(p)
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    elif cmd == "balance":
        from ..core.dataset.balance import DEFAULT_EPOCHS, OPTIMIZER_TARGETS

        p.description = ("Balance repeats: each concept folder gets about TARGET samples per "
                         "epoch (repeats = ceil(target / images)). Shows the rename plan; "
                         "--apply renames the folders (undo with `lorabake undo`).")
        p.add_argument("dir")
        _dataset_options(p)
        g = p.add_mutually_exclusive_group()
        g.add_argument("--target", type=int, metavar="N", help="samples per concept per epoch")
        g.add_argument("--optimizer", choices=list(OPTIMIZER_TARGETS),
                       help="preset target: " + ", ".join(
                           f"{k}={v}" for k, v in OPTIMIZER_TARGETS.items()) + " (default adamw)")
        p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                       help=f"epochs for the totals (default {DEFAULT_EPOCHS})")
        p.add_argument("--apply", action="store_true", help="rename the folders")
        p.add_argument("--json", action="store_true", help="print the plan as JSON")
    elif cmd in ("undo", "redo"):
        p.description = ("Undo the last change lorabake made to DIR; an operation that was "
                         "interrupted (crash, kill) is rolled back first." if cmd == "undo"
                         else "Redo the last change that undo took back.")
        p.add_argument("dir")
        p.add_argument("--json", action="store_true")
    elif cmd == "demo":
        p.description = ("Draw the demo dataset (no downloads) and open the workbench on it. "
                         "An existing demo folder is reused.")
        p.add_argument("--dir", default=DEFAULT_DEMO_DIR,
                       help=f"where (default ./{DEFAULT_DEMO_DIR})")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--no-tui", action="store_true", help="only build it")
        _ui_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "tags":
            from .tags import main as tags_main

            return tags_main(argv[1:])
        if argv and argv[0] == "images":
            from .images import main as images_main

            return images_main(argv[1:])
        if argv and argv[0] == "config":
            from .config import main as config_main

            return config_main(argv[1:])
        if argv and argv[0] == "train":
            from .train import main as train_main

            return train_main(argv[1:])
        if argv and argv[0] == "buckets":
            from .buckets import main as buckets_main

            return buckets_main(argv[1:])
        if argv and argv[0] == "jobs":
            from .jobs import main as jobs_main

            return jobs_main(argv[1:])
        if argv and argv[0] == "autotag":
            from .autotag import main as autotag_main

            return autotag_main(argv[1:])
        if argv and argv[0] == "trigger":
            from .trigger import main as trigger_main

            return trigger_main(argv[1:])
        if argv and argv[0] in SUBCOMMANDS:
            cmd = argv[0]
            args = build_command_parser(cmd).parse_args(argv[1:])
            return COMMANDS[cmd](args)
        args = build_open_parser().parse_args(argv)
        return open_workbench(Path(args.dir), args)
    except LorabakeError as exc:
        print(f"lorabake: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lorabake: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `lorabake ... | head`: the reader left; say nothing, like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lorabake: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


# ---- commands ---------------------------------------------------------------------------

def _scan(args):
    from ..core.dataset.scan import scan_dataset
    from ..core.images.media import normalise_caption_ext

    try:
        ext = normalise_caption_ext(args.caption_ext)
    except ValueError as exc:
        raise LorabakeError(str(exc), "pass e.g. --caption-ext .txt") from None
    return scan_dataset(args.dir, args.reg, caption_ext=ext,
                        progress=progress_printer("scanning"))


def cmd_scan(args) -> int:
    from ..core.base.journal import Journal

    ds = _scan(args)
    pending = Journal(ds.root).interrupted()
    if args.json:
        data = ds.to_json()
        data["interrupted_operation"] = pending.label if pending else None
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    from ..core.dataset.steps import epoch_summary

    rows = [("folder", "images", "repeats", "samples", "no caption")]
    for c in ds.concepts:
        folder = ("reg/" if c.is_reg else "") + c.folder
        rows.append((folder, str(c.image_count), "-" if c.repeats is None else str(c.repeats),
                     str(c.samples), str(c.captions_missing)))
    _print_table(rows)
    s = epoch_summary([(c.image_count, c.repeats) for c in ds.train_concepts],
                      [(c.image_count, c.repeats) for c in ds.reg_concepts], 1)
    print(f"\n{s.train_samples} training samples per epoch"
          + (f", {s.reg_samples} regularization" if s.reg_samples else ""))
    if pending:
        print(f"\n! interrupted operation '{pending.label}': run `lorabake undo {args.dir}`")
    if ds.problems:
        errors = sum(1 for p in ds.problems if p.severity == "error")
        print(f"\n{errors} error(s), {len(ds.problems) - errors} warning(s):")
        for p in ds.problems:
            print(f"  {p.severity:7} {p.path}: {p.message}. {p.hint}")
    else:
        print("\nno problems found")
    return 0


def cmd_balance(args) -> int:
    from ..core.dataset.balance import apply_plan, plan_balance, target_for

    if args.epochs < 1:
        raise LorabakeError("--epochs must be at least 1")
    if args.target is not None and args.target < 1:
        raise LorabakeError("--target must be at least 1")
    target = args.target if args.target is not None else target_for(args.optimizer or "adamw")
    ds = _scan(args)
    plan = plan_balance(ds, target, epochs=args.epochs)
    entry = None
    if args.apply and not plan.conflicts:
        entry = apply_plan(ds, plan)
    if args.json:
        data = plan.to_json()
        data["applied"] = entry is not None
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 1 if args.apply and plan.conflicts else 0
    rows = [("folder", "images", "repeats", "samples", "new folder")]
    for r in plan.rows:
        before = "-" if r.repeats_before is None else str(r.repeats_before)
        rows.append((r.folder, str(r.images), f"{before} -> {r.repeats_after}",
                     str(r.samples_after), r.new_folder if r.renames else "(unchanged)"))
    print(f"target {plan.target} samples per concept per epoch")
    _print_table(rows)
    s = plan.summary
    print(f"\n{plan.samples_per_epoch} samples per epoch"
          + (f" (+{s.reg_samples} regularization)" if s.reg_samples else "")
          + f", {s.total_samples} over {s.epochs} epochs")
    for w in plan.warnings:
        print(f"  warning: {w}")
    for c in plan.conflicts:
        print(f"  conflict: {c}", file=sys.stderr)
    if plan.conflicts:
        return 1 if args.apply else 0
    if entry is not None:
        print(f"\nrenamed {len(plan.renames)} folder(s); undo with `lorabake undo {args.dir}`")
    elif not plan.renames:
        print("\nalready balanced: nothing to rename")
    else:
        print(f"\ndry run: add --apply to rename {len(plan.renames)} folder(s)")
    return 0


def _history_cmd(args, which: str) -> int:
    from ..core.base.journal import Journal

    root = Path(args.dir)
    if not root.is_dir():
        raise LorabakeError(f"{root} is not a directory")
    j = Journal(root)
    kind = which
    if which == "undo" and j.interrupted() is not None:
        entry, kind = j.recover(), "rollback"
    else:
        entry = j.undo() if which == "undo" else j.redo()
    if args.json:
        print(json.dumps({"action": kind, "entry": entry.to_json() if entry else None},
                         indent=2, ensure_ascii=False))
    elif entry is None:
        print(f"nothing to {which}")
    else:
        verb = {"undo": "undid", "redo": "redid", "rollback": "rolled back interrupted"}[kind]
        print(f"{verb}: {entry.label}")
    if entry is not None and entry.conflicts:
        for c in entry.conflicts:
            print(f"  left alone: {c}", file=sys.stderr)
        return 1
    return 0


def cmd_undo(args) -> int:
    return _history_cmd(args, "undo")


def cmd_redo(args) -> int:
    return _history_cmd(args, "redo")


def cmd_demo(args) -> int:
    from ..demo.project import ensure_demo

    root, built = ensure_demo(Path(args.dir), seed=args.seed)
    print(("built demo dataset in " if built else "using existing demo dataset in ") + str(root),
          file=sys.stderr)
    if args.no_tui:
        print(root)
        return 0
    args.reg, args.caption_ext = None, ".txt"
    return open_workbench(root, args)


def open_workbench(root: Path, args) -> int:
    from ..core.images.media import normalise_caption_ext

    if not root.is_dir():
        raise LorabakeError(f"{root} is not a directory",
                            "give the training root that holds the N_name folders")
    try:
        caption_ext = normalise_caption_ext(args.caption_ext)
    except ValueError as exc:
        raise LorabakeError(str(exc)) from None
    from ..ui.launch import run_app

    return run_app(root, reg_root=Path(args.reg) if args.reg else None, caption_ext=caption_ext,
                   images=args.images, theme=args.theme)


COMMANDS = {"scan": cmd_scan, "balance": cmd_balance, "undo": cmd_undo, "redo": cmd_redo,
            "demo": cmd_demo}


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    def fit(i: int, cell: str, w: int) -> str:
        # numbers right-aligned, text (and the first column) left-aligned
        return cell.rjust(w) if i and cell[:1].isdigit() else cell.ljust(w)

    for n, r in enumerate(rows):
        cells = (fit(i, c, w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
