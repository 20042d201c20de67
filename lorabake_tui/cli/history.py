"""`lorabake undo DIR` and `lorabake redo DIR`: the journal, as the workbench's u and ctrl+y."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.base.errors import LorabakeError
from .common import OK, PARTIAL, Parser, add_json, print_json


def parser(which: str) -> argparse.ArgumentParser:
    p = Parser(
        prog=f"lorabake {which}",
        description="Undo the last change lorabake made to DIR (folder renames, caption and "
                    "image edits, config saves); an operation that was interrupted (crash, "
                    "kill) is rolled back first." if which == "undo"
        else "Redo the last change that undo took back.")
    p.add_argument("dir")
    add_json(p)
    return p


def run(argv: list[str], which: str) -> int:
    from ..core.base.journal import Journal

    args = parser(which).parse_args(argv)
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
        print_json({"action": kind, "entry": entry.to_json() if entry else None})
    elif entry is None:
        print(f"nothing to {which}")
    else:
        from ..core.base.sessions import describe_origin

        verb = {"undo": "undid", "redo": "redid", "rollback": "rolled back interrupted"}[kind]
        who = describe_origin(entry.origin)
        print(f"{verb}: {entry.label}" + (f" (a change made by {who})" if who else ""))
    if entry is not None and entry.conflicts:
        for c in entry.conflicts:
            print(f"  left alone: {c}", file=sys.stderr)
        return PARTIAL
    return OK


def undo_main(argv: list[str]) -> int:
    return run(argv, "undo")


def redo_main(argv: list[str]) -> int:
    return run(argv, "redo")
