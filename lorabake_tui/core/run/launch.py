"""The trainer's command line: `CONFIG`, `--run-dir DIR`, `--resume RUN_DIR`.

`python -m lorabake_tui.trainer` and `lorabake train` (which adds `--detach` and `--gpus`)
build their parsers here, so both take the same arguments with the same help and list the
same exit codes (core/run/exit_codes.py); the job runner builds the trainer's argv here, so
what it passes is what the trainer parses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import exit_codes
from .folder import CONFIG_SNAPSHOT

DESCRIPTION = ("Train a SD 1.5 LoRA/LoCon from a lorabake config. SIGTERM or Ctrl+C finishes "
               "the step, saves state and a LoRA, and exits 3; --resume RUN_DIR continues.")
CONFIG_HELP = "the training config (TOML)"
RUN_DIR_HELP = "where this run writes (default: OUTPUT_DIR/OUTPUT_NAME-YYYYmmdd-HHMMSS)"
RESUME_HELP = (f"continue a stopped or crashed run from its saved state, with its own config "
               f"(RUN_DIR/{CONFIG_SNAPSHOT}); a run that finished is refused (exit 2)")


def trainer_parser(prog: str, *, lead: str = "") -> argparse.ArgumentParser:
    """A parser with the trainer's arguments; `lead` goes before the shared description (what
    this command adds). Callers may add arguments of their own."""
    description = " ".join(filter(None, (lead, DESCRIPTION, exit_codes.help_line())))
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("config", nargs="?", help=CONFIG_HELP)
    p.add_argument("--run-dir", help=RUN_DIR_HELP)
    p.add_argument("--resume", metavar="RUN_DIR", help=RESUME_HELP)
    return p


def trainer_args(*, config: Path | str | None = None, run_dir: Path | str | None = None,
                 resume: Path | str | None = None) -> list[str]:
    """The arguments that follow the trainer's command: a new run of `config` (in `run_dir`,
    if given), or `resume` of a run folder."""
    if resume is not None:
        return ["--resume", str(resume)]
    out = [str(config)] if config is not None else []
    return out + (["--run-dir", str(run_dir)] if run_dir is not None else [])
