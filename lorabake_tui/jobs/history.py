"""JobHistory: the dashboard's incremental view of a run, from its events.jsonl (or from a
followed kohya log): charts, the latest event of each type, saves, samples, warnings, and
the end of its log. The Train screen and `jobs attach --plain` poll it.

It reads from byte offsets (core/run/event_reader.py) and never re-reads a file from the
start once it has been loaded, so polling a week-long run every second stays cheap.
"""

from __future__ import annotations

import math
import os
from array import array
from bisect import bisect_left
from collections import deque
from pathlib import Path
from typing import Any

from ..core.run.event_reader import CHUNK_BYTES, read_events_chunk
from ..core.run.events import EventType, render_as_step
from ..core.run.folder import RunFolder
from .kohya_log import KohyaLogParser
from .logs import BLOCK, display_line, tail_lines
from .store import Job

# plain strings for the hot loop of a 50k-event load
_START, _STEP, _SAVE = EventType.START.value, EventType.STEP.value, EventType.SAVE.value
_RENDER = EventType.RENDER.value
_SAMPLE, _WARNING, _ERROR = EventType.SAMPLE.value, EventType.WARNING.value, \
    EventType.ERROR.value


class _Source:
    """Where a history's events come from: events.jsonl, or a kohya log through the parser."""

    def __init__(self, path: Path, kohya: bool) -> None:
        self.path = path
        self.kohya = kohya
        self.offset = 0
        self.skipped = 0
        self.parser = KohyaLogParser() if kohya else None

    def reset(self) -> None:
        self.offset = 0
        self.skipped = 0
        if self.kohya:
            self.parser = KohyaLogParser()

    def read(self) -> tuple[list[dict], bool]:
        """(new events, more to read now)."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return [], False
        if size < self.offset:
            raise _Truncated
        if size == self.offset:
            return [], False
        if self.parser is not None:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(CHUNK_BYTES)
            self.offset += len(data)
            return self.parser.feed(data), self.offset < size
        before = self.offset
        events, self.offset, bad = read_events_chunk(self.path, self.offset)
        self.skipped += bad
        return events, before < self.offset < size


class _Truncated(Exception):
    """The file shrank (replaced or truncated): start over."""


class JobHistory:
    """Charts and status for one run, updated incrementally by `poll()`.

    Arrays (index-aligned, one entry per optimizer step, steps ascending): `steps`, `t`,
    `loss`, `avg_loss`, `lrs` (one array per learning-rate group; `lr` is the first). Missing
    values are NaN. A step that goes back (a resume from an earlier saved state overwrote
    the later steps, or kohya redrew the same step) replaces the points from there on.
    `latest[type]` is the last event of each type (EventType); `saves`, `samples` every
    save/sample event; `warnings`/`errors` the last few. `log` holds the last `log_lines`
    lines of the run's log (train.log, else stdout.log), read from the end of the file.
    """

    def __init__(self, run_dir: Path | str, *, log_lines: int = 200,
                 kohya_log: Path | str | None = None, log_path: Path | str | None = None,
                 keep_messages: int = 50) -> None:
        self.run_dir = Path(run_dir)
        self._folder = RunFolder(self.run_dir)
        if kohya_log is not None:
            self._source = _Source(Path(kohya_log), kohya=True)
            self._log_fixed: Path | None = Path(kohya_log)
        else:
            self._source = _Source(self._folder.events, kohya=False)
            self._log_fixed = Path(log_path) if log_path is not None else None
        self.log_lines = log_lines
        self._keep = keep_messages
        self._clear()
        self.log: deque[str] = deque(maxlen=max(1, log_lines))
        self.log_partial = ""
        self.log_path: Path | None = None
        self._log_offset = 0
        self._log_buf = b""

    @classmethod
    def for_job(cls, job: Job, **kw) -> JobHistory:
        if job.kind == "kohya" and job.log_path:
            return cls(job.run_dir, kohya_log=job.log_path, **kw)
        return cls(job.run_dir, **kw)

    def _clear(self) -> None:
        self.steps = array("q")
        self.t = array("d")
        self.loss = array("d")
        self.avg_loss = array("d")
        self.lrs: list[array] = []
        self.latest: dict[str, dict] = {}
        self.saves: list[dict] = []
        self.samples: list[dict] = []
        self.warnings: deque[dict] = deque(maxlen=self._keep)
        self.errors: deque[dict] = deque(maxlen=self._keep)
        self.event_count = 0
        self.steps_since_start = 0  # 0 after a (re)start: the last step is an older attempt's

    # ---- reading ---------------------------------------------------------------------------
    @property
    def lr(self) -> array:
        return self.lrs[0] if self.lrs else array("d")

    @property
    def skipped_lines(self) -> int:
        return self._source.skipped

    @property
    def offset(self) -> int:
        return self._source.offset

    def poll(self) -> int:
        """Read what was appended since the last call; the number of new events."""
        n = 0
        try:
            more = True
            while more:
                events, more = self._source.read()
                self._ingest(events)
                n += len(events)
        except _Truncated:
            self._source.reset()
            self._clear()
            return self.poll()
        self._poll_log()
        return n

    def _ingest(self, events: list[dict]) -> None:
        # the hot loop of a 50k-event load: bound methods in locals, no per-field calls
        nan = math.nan
        latest = self.latest
        steps, lrs = self.steps, self.lrs
        add_step, add_t = steps.append, self.t.append
        add_loss, add_avg = self.loss.append, self.avg_loss.append
        for ev in events:
            typ = ev.get("type")
            if typ == _STEP:
                step = ev.get("step")
                if step.__class__ is not int:
                    continue
                if steps and step <= steps[-1]:
                    self._truncate(bisect_left(steps, step))
                add_step(step)
                self.steps_since_start += 1
                # array.append takes int/float and raises TypeError for None/str/missing
                try:
                    add_t(ev["t"])
                except (KeyError, TypeError):
                    add_t(nan)
                try:
                    add_loss(ev["loss"])
                except (KeyError, TypeError):
                    add_loss(nan)
                try:
                    add_avg(ev["avg_loss"])
                except (KeyError, TypeError):
                    add_avg(nan)
                lr = ev.get("lr")
                if lr.__class__ is list and len(lr) == len(lrs):
                    try:
                        for arr, v in zip(lrs, lr, strict=True):
                            arr.append(v)
                    except TypeError:
                        self._fix_lr(lr)
                else:
                    self._add_lr(lr)
            elif typ == _START:
                self.steps_since_start = 0
            elif typ == _RENDER:
                self.steps_since_start += 1
            elif typ == _SAVE:
                self.saves.append(ev)
            elif typ == _SAMPLE:
                self.samples.append(ev)
            elif typ == _WARNING:
                self.warnings.append(ev)
            elif typ == _ERROR:
                self.errors.append(ev)
            if typ is not None:
                latest[typ] = ev
        self.event_count += len(events)

    def _add_lr(self, lr: Any) -> None:
        values = lr if isinstance(lr, list) else ([] if lr is None else [lr])
        n = len(self.steps) - 1  # points already present before this one
        while len(self.lrs) < len(values):
            self.lrs.append(array("d", [math.nan]) * n)
        for i, arr in enumerate(self.lrs):
            arr.append(_num(values[i], math.nan) if i < len(values) else math.nan)

    def _fix_lr(self, lr: list) -> None:
        """A bad value part-way through the fast path: even the arrays out again."""
        n = len(self.steps)
        for arr, v in zip(self.lrs, lr, strict=True):
            if len(arr) == n:
                arr[-1] = _num(v, math.nan)
            else:
                arr.append(_num(v, math.nan))

    def _truncate(self, i: int) -> None:
        for arr in (self.steps, self.t, self.loss, self.avg_loss, *self.lrs):
            del arr[i:]

    # ---- log tail --------------------------------------------------------------------------
    def _current_log(self) -> Path | None:
        if self._log_fixed is not None:
            return self._log_fixed
        return self._folder.log_file()

    def _poll_log(self) -> None:
        path = self._current_log()
        if path is None:
            return
        try:
            size = os.stat(path).st_size
        except OSError:
            return
        if path != self.log_path or size < self._log_offset or \
                size - self._log_offset > BLOCK * 4:
            # new file, truncated, or far behind: take the tail afresh instead of reading it all
            self.log_path = path
            self.log.clear()
            self.log.extend(tail_lines(path, self.log_lines))
            self._log_offset = size
            self._log_buf = b""
            self.log_partial = ""
            return
        if size == self._log_offset:
            return
        with open(path, "rb") as fh:
            fh.seek(self._log_offset)
            data = self._log_buf + fh.read(size - self._log_offset)
        self._log_offset = size
        lines = data.split(b"\n")
        self._log_buf = lines.pop()
        for raw in lines:
            text = display_line(raw)
            if text.strip():
                self.log.append(text)
        self.log_partial = display_line(self._log_buf)

    def log_tail(self) -> list[str]:
        """The log's last lines, the one still being written (a progress bar) last."""
        out = list(self.log)
        if self.log_partial.strip():
            out.append(self.log_partial)
        return out[-self.log_lines:]

    # ---- summary ---------------------------------------------------------------------------
    @property
    def last_step(self) -> dict | None:
        """The last step; for a render job, its last image as a step (render_as_step)."""
        step = self.latest.get(EventType.STEP)
        if step is None and (image := self.latest.get(EventType.RENDER)) is not None:
            return render_as_step(image)
        return step

    @property
    def ended(self) -> dict | None:
        return self.latest.get(EventType.END)


def _num(v: Any, default: float) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return default
