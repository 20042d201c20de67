"""`lorabake train`: run the trainer in the foreground (or hand it to the job runner)."""

from __future__ import annotations

import argparse

from ..core.run import exit_codes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lorabake train",
        description="Train a LoRA from a config in the foreground (Ctrl+C stops cleanly: the "
                    "step finishes, state and a LoRA are saved; --resume RUN_DIR continues). "
                    + exit_codes.help_line())
    p.add_argument("config", nargs="?", help="the training config (TOML)")
    p.add_argument("--run-dir", help="where the run writes (default: "
                   "OUTPUT_DIR/OUTPUT_NAME-YYYYmmdd-HHMMSS)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run")
    p.add_argument("--detach", action="store_true",
                   help="start it as a background job that outlives this terminal "
                        "(same as `lorabake jobs start`)")
    p.add_argument("--gpus", default="", help="with --detach: CUDA devices, e.g. 0,1")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.detach:
        from .jobs import main as jobs_main

        if args.resume:
            build_parser().error("a detached resume is `lorabake jobs resume ID` "
                                 "(`lorabake jobs list` shows the id)")
        if not args.config:
            build_parser().error("give a CONFIG")
        extra = ["--gpus", args.gpus] if args.gpus else []
        return jobs_main(["start", args.config, *extra])
    try:
        from ..trainer.__main__ import main as trainer_main
    except ImportError as exc:
        print(f"lorabake train: the trainer is not installed ({exc.name} missing): "
              "pip install 'lorabake-tui[train]'")
        return 1
    out = []
    if args.config:
        out.append(args.config)
    if args.run_dir:
        out += ["--run-dir", args.run_dir]
    if args.resume:
        out += ["--resume", args.resume]
    return trainer_main(out)
