"""events.jsonl: the trainer's side of the contract with the dashboard.

One JSON object per line, flushed as it is written, so a reader tailing the file (from
another process, after an SSH drop, or after the UI restarted) never sees half an event.
Types: start, step, epoch, save, sample, warning, error, end (see the README's schema).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

EVENT_TYPES = ("start", "step", "epoch", "save", "sample", "warning", "error", "end")
END_STATUSES = ("done", "stopped", "failed")


class EventWriter:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "events.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # line-buffered append: each event reaches the file as one write
        self._fh = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def emit(self, type_: str, **fields: Any) -> dict:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        if type_ == "end" and fields.get("status") not in END_STATUSES:
            raise ValueError(f"end status must be one of {END_STATUSES}")
        event = {"type": type_, "t": round(time.time(), 3), **fields}
        self._fh.write(json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n")
        self._fh.flush()
        return event

    def close(self) -> None:
        try:
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_events(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete events from byte `offset` on, and the offset to continue from (a line still
    being written is left for the next read)."""
    out: list[dict] = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out, offset + end
