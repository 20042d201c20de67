"""`lorabake train`: run the trainer in the foreground (or hand it to the job runner). Its
arguments are the trainer's own (core/run/launch.py), plus --detach and --gpus."""

from __future__ import annotations

import argparse

from ..core.run.launch import trainer_args, trainer_parser


def build_parser() -> argparse.ArgumentParser:
    p = trainer_parser("lorabake train", lead="Runs in the foreground, or as a background "
                       "job with --detach.")
    p.add_argument("--detach", action="store_true",
                   help="start it as a background job that outlives this terminal "
                        "(same as `lorabake jobs start`)")
    p.add_argument("--gpus", default="", help="with --detach: CUDA devices, e.g. 0,1")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not (args.config or args.resume):
        build_parser().error("give a CONFIG or --resume RUN_DIR")
    if args.detach:
        from .jobs import main as jobs_main

        if args.resume:
            build_parser().error("a detached resume is `lorabake jobs resume ID` "
                                 "(`lorabake jobs list` shows the id)")
        extra = ["--gpus", args.gpus] if args.gpus else []
        extra += ["--run-dir", args.run_dir] if args.run_dir else []
        return jobs_main(["start", args.config, *extra])
    try:
        from ..trainer.__main__ import main as trainer_main
    except ImportError as exc:
        print(f"lorabake train: the trainer is not installed ({exc.name} missing): "
              "pip install 'lorabake-tui[train]'")
        return 1
    return trainer_main(trainer_args(config=args.config, run_dir=args.run_dir,
                                     resume=args.resume))
