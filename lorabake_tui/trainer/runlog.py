"""The run's two records: events.jsonl for the dashboard and train.log for people (names and
schema: core/run/). Only the main process writes; the others get a RunLog that drops
everything."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..core.run.event_writer import EventWriter
from ..core.run.events import EventType
from ..core.run.folder import RunFolder


class RunLog:
    def __init__(self, run_dir: Path | None, *, echo: bool = True) -> None:
        self.events = EventWriter(run_dir) if run_dir is not None else None
        self._log = open(RunFolder(run_dir).train_log, "a", encoding="utf-8",  # noqa: SIM115
                         buffering=1) if run_dir is not None else None
        self.echo = echo and run_dir is not None

    def line(self, text: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        if self._log is not None:
            self._log.write(stamped + "\n")
        if self.echo:
            print(text, file=sys.stderr, flush=True)

    def event(self, type_: str, **fields) -> None:
        """One event (EventType); the writer checks it against the schema."""
        if self.events is not None:
            self.events.emit(type_, **fields)

    def warning(self, message: str) -> None:
        self.line(f"warning: {message}")
        self.event(EventType.WARNING, message=message)

    def error(self, message: str) -> None:
        self.line(f"error: {message}")
        self.event(EventType.ERROR, message=message)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
        if self._log is not None:
            self._log.close()
