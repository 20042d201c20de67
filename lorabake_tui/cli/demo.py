"""`lorabake demo`: draw the demo dataset (no downloads) and open the workbench on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import Parser

DEFAULT_DEMO_DIR = "lorabake-demo"


def build_parser() -> argparse.ArgumentParser:
    from .workbench import add_ui_options

    p = Parser(
        prog="lorabake demo",
        description="Draw the demo dataset (no downloads) and open the workbench on it. An "
                    "existing demo folder is reused.")
    p.add_argument("--dir", default=DEFAULT_DEMO_DIR,
                   help=f"where (default ./{DEFAULT_DEMO_DIR})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tui", action="store_true", help="only build it")
    add_ui_options(p)
    return p


def main(argv: list[str]) -> int:
    from ..demo.project import ensure_demo
    from .workbench import open_workbench

    args = build_parser().parse_args(argv)
    root, built = ensure_demo(Path(args.dir), seed=args.seed)
    print(("built demo dataset in " if built else "using existing demo dataset in ") + str(root),
          file=sys.stderr)
    if args.no_tui:
        print(root)
        return 0
    args.reg, args.caption_ext = None, None
    return open_workbench(root, args)
