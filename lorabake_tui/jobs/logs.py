"""Reading a run's logs as a terminal shows them: the last lines of a file read from its end,
tqdm's carriage-return redraws reduced to their last state. Which log a run has and which
to show is core/run/folder.py's; the job history, a job's outcome, `jobs log` and the UI's
log view read them through here."""

from __future__ import annotations

import os
from pathlib import Path

# the job runner's own lines in stdout.log start with this (a job's outcome skips them)
RUNNER_PREFIX = "[lorabake runner"
BLOCK = 64 << 10  # read per step from the end of a log


def display_line(raw: bytes) -> str:
    """A log line as a terminal shows it: tqdm redraws with \\r, so the last segment wins."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if "\r" in text:
        segments = [s for s in text.split("\r") if s.strip()]
        text = segments[-1] if segments else ""
    return text


def tail_lines(path: Path | str, n: int = 20, *, max_bytes: int = 1 << 20) -> list[str]:
    """The last `n` lines of a text file, read backwards from its end in blocks (a 10 GB log
    costs the same as a small one); [] when it does not exist."""
    if n <= 0:
        return []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; a with-block hides the seek logic
    except OSError:
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n and end - pos < max_bytes:
            step = min(BLOCK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = data.split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first one is cut
    if lines and lines[-1] == b"":
        lines.pop()
    out = [display_line(raw) for raw in lines]
    return [s for s in out if s.strip()][-n:]
