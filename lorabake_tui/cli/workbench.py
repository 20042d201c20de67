"""`lorabake [DIR]`: open the workbench on a training root."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..core.base.errors import LorabakeError
from .common import EXIT_HELP, Parser, add_dataset_options, caption_ext

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
lorabake jobs [ACTION ...]         training and render jobs, detached and queued: list start
                                   stop resume remove move log attach follow
lorabake undo DIR                  undo the last change (or roll back an interrupted one)
lorabake redo DIR                  redo what undo took back
lorabake demo [--dir D] [--no-tui] build the demo dataset and open it
lorabake trigger WORD [--dir DIR] [--json]
                                   how CLIP reads a trigger: known words, rarer spellings
lorabake lora info FILE [--json] | resize FILE (--dim N | --all) -o OUT
                                   a LoRA file's type, modules, dims, base model, tags;
                                   DyLoRA ranks cut out as files
lorabake grid RUN_DIR|LORA... -o GRID.png [--epochs E] [--weights W] [--prompt P] [--detach]
                                   an epoch x weight grid of a run's LoRA files
lorabake probe WORD (--model BASE | --config FILE) -o DIR [--seeds 4] [--detach]
                                   draw a trigger with the base model: free or known?"""


def add_ui_options(p: argparse.ArgumentParser) -> None:
    from ..core.base.user_settings import IMAGE_MODES

    p.add_argument("--images", choices=IMAGE_MODES, default=None,
                   help="image preview renderer (default: remembered setting, else auto)")
    p.add_argument("--theme", default=None, help="theme name (default: remembered setting)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lorabake", usage=USAGE,
        description="A keyboard-driven terminal workbench for baking SD 1.5 LoRAs.",
        epilog="Run `lorabake COMMAND --help` for a command's options. " + EXIT_HELP +
               " (train: see `lorabake train --help`).")
    p.add_argument("dir", nargs="?", default=".", help="dataset training root (default: .)")
    add_dataset_options(p)
    add_ui_options(p)
    p.add_argument("--version", action="version", version=f"lorabake {__version__}")
    return p


def main(argv: list[str], commands: tuple[str, ...] = ()) -> int:
    """`commands`: the dispatcher's, named when a word is neither one nor a folder."""
    args = build_parser().parse_args(argv)
    root = Path(args.dir)
    if not root.exists() and "/" not in args.dir and not args.dir.startswith("."):
        raise LorabakeError(f"'{args.dir}' is neither a command nor a folder",
                            f"commands: {', '.join(commands)}; `lorabake --help`")
    return open_workbench(root, args)


def open_workbench(root: Path, args) -> int:
    if not root.is_dir():
        raise LorabakeError(f"{root} is not a directory",
                            "give the training root that holds the N_name folders")
    from ..ui.launch import run_app

    return run_app(root, reg_root=Path(args.reg) if args.reg else None,
                   caption_ext=caption_ext(args.caption_ext), images=args.images,
                   theme=args.theme)
