"""The `lorabake` command: opens the workbench, and runs every operation headless. One table
names the commands and the module that runs each; errors are one line on stderr.

Imports stay lazy so that `lorabake scan` never pays for Textual and nothing pays for torch.
"""

from __future__ import annotations

import importlib
import os
import sys

from ..core.base.errors import LorabakeError

# command -> (module in this package, its entry point)
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("dataset", "scan_main"), "balance": ("dataset", "balance_main"),
    "tags": ("tags", "main"), "autotag": ("autotag", "main"), "images": ("images", "main"),
    "buckets": ("buckets", "main"), "config": ("config", "main"), "train": ("train", "main"),
    "jobs": ("jobs", "main"), "undo": ("history", "undo_main"),
    "redo": ("history", "redo_main"), "demo": ("demo", "main"), "trigger": ("trigger", "main"),
    "lora": ("lora", "main"), "grid": ("evaluate", "grid_main"),
    "probe": ("evaluate", "probe_main"),
}
SUBCOMMANDS = tuple(COMMANDS)


def run_command(name: str, argv: list[str]) -> int:
    module, entry = COMMANDS[name]
    return getattr(importlib.import_module(f".{module}", __package__), entry)(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return run_command(argv[0], argv[1:])
        from .workbench import main as open_main

        return open_main(argv, SUBCOMMANDS)
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


if __name__ == "__main__":
    sys.exit(main())
