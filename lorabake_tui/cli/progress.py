"""Progress of long CLI work on stderr, only when a person is watching (a TTY)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def progress_printer(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label} {done}/{total} images", end=end, file=sys.stderr, flush=True)

    return show
