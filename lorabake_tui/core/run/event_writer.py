"""The one writer of events.jsonl (the trainer's, and the test trainer's).

Every event is checked against the schema (core/run/events.py) before it is written, then
appended as one JSON object on one line with a single write to a file opened for appending,
with no buffer in between: a reader tailing the file from another process, after an SSH
drop or after the UI restarted, sees each event whole or not yet (core/run/event_reader.py
leaves a line without its newline for the next read).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .events import EventError, EventType, validate
from .folder import RunFolder


class EventWriter:
    def __init__(self, run_dir: Path | str) -> None:
        self.path = RunFolder(run_dir).events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # unbuffered append: each event reaches the file in the write that carries it
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Write one event (`t` is now unless given); the event as written. EventError if it
        breaks the schema: nothing is written then."""
        if "type" in fields:
            raise EventError("the event type is the first argument, not a field")
        try:
            kind = EventType(type_).value
        except ValueError:
            raise EventError(f"unknown event type {type_!r}") from None
        event = {"type": kind, "t": round(time.time(), 3), **fields}
        validate(event)
        try:
            line = json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:  # a value JSON cannot hold (a Path, a tensor)
            raise EventError(f"{kind} event: {exc}") from None
        data = line.encode("utf-8")
        while data:  # a regular file takes it in one write; a short write would resume here
            data = data[self._fh.write(data):]
        return event

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
