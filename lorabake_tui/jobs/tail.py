"""Following a run from its files: the last lines of a log, the latest event, and JobHistory,
the dashboard's incremental view of events.jsonl (or of a kohya log).

Everything here reads from byte offsets and never re-reads a file from the start once it has
been loaded, so polling a week-long run every second stays cheap.
"""

from __future__ import annotations

import gc
import json
import math
import os
from array import array
from bisect import bisect_left
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .kohya_log import KohyaLogParser

if TYPE_CHECKING:
    from .registry import Job

EVENTS_NAME = "events.jsonl"
CHUNK = 1 << 20  # bytes parsed per read: bounds memory, and lets the UI thread run between
_LOG_TAIL_BLOCK = 64 << 10
LATEST_TYPES = ("start", "step", "epoch", "save", "sample", "warning", "error", "end")


def _display_line(raw: bytes) -> str:
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
            step = min(_LOG_TAIL_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = data.split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first one is cut
    if lines and lines[-1] == b"":
        lines.pop()
    out = [_display_line(raw) for raw in lines]
    return [s for s in out if s.strip()][-n:]


def last_event(path: Path | str, type_: str | None = None, *, where=None,
               max_bytes: int = 4 << 20) -> dict | None:
    """The last complete event (of `type_`, and for which `where(event)` holds, if given) in
    an events.jsonl, searched from the end so that `jobs list` does not parse whole
    histories."""
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError:
        return None
    needle = f'"{type_}"'.encode() if type_ else None  # cheap filter before json.loads
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, carry, first = end, b"", True
        while pos > 0 and end - pos < max_bytes:
            step = min(_LOG_TAIL_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + carry).split(b"\n")
            if first:
                lines.pop()  # b"" after the last newline, or a line still being written
                if not lines:
                    carry = b""  # no newline in this block: all of it is that partial line
                    continue
                first = False
            carry = lines.pop(0) if pos > 0 else b""  # maybe cut: the next block completes it
            for raw in reversed(lines):
                if not raw.strip() or (needle is not None and needle not in raw):
                    continue
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(ev, dict) and (type_ is None or ev.get("type") == type_) and \
                        (where is None or where(ev)):
                    return ev
    return None


def last_lora_save(path: Path | str) -> dict | None:
    """The last save event of a LoRA file (the trainer also reports state saves)."""
    return last_event(path, "save", where=lambda ev: ev.get("kind") != "state")


def _parse_lines(data: bytes) -> tuple[list[Any], int]:
    """Decode complete JSON lines (`data` ends with a newline) in one call, a JSON array
    made with one bytes.replace: several times faster than one loads per line. If a line is
    bad (a trainer killed mid-write, then resumed, leaves a torn line) or blank, fall back
    to line by line. Returns (values, lines skipped)."""
    if not data.strip():
        return [], 0
    # tens of thousands of fresh dicts would trigger the cyclic GC over and over for nothing
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]"), 0
    except ValueError:
        pass
    finally:
        if was_enabled:
            gc.enable()
    out, bad = [], 0
    for ln in data.split(b"\n"):
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except ValueError:
            bad += 1
    return out, bad


def read_events_chunk(path: Path, offset: int, max_bytes: int = CHUNK
                      ) -> tuple[list[dict], int, int]:
    """Like trainer.events.read_events, but bounded (at most ~max_bytes per call) and tolerant
    of torn lines: (events, new offset, lines skipped). A line still being written is left."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(max_bytes)
        while data and not data.endswith(b"\n") and len(data) >= max_bytes:
            more = fh.read(max_bytes)  # one line longer than a chunk: read on to its end
            if not more:
                break
            data += more
    end = data.rfind(b"\n") + 1
    events, bad = _parse_lines(data[:end])
    return [e for e in events if isinstance(e, dict)], offset + end, bad


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
                data = fh.read(CHUNK)
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
    `latest[type]` is the last event of each type; `saves`, `samples` every save/sample
    event; `warnings`/`errors` the last few. `log` holds the last `log_lines` lines of the
    run's log (train.log, else stdout.log), read from the end of the file.
    """

    def __init__(self, run_dir: Path | str, *, log_lines: int = 200,
                 kohya_log: Path | str | None = None, log_path: Path | str | None = None,
                 keep_messages: int = 50) -> None:
        self.run_dir = Path(run_dir)
        if kohya_log is not None:
            self._source = _Source(Path(kohya_log), kohya=True)
            self._log_fixed: Path | None = Path(kohya_log)
        else:
            self._source = _Source(self.run_dir / EVENTS_NAME, kohya=False)
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
            if typ == "step":
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
            elif typ == "start":
                self.steps_since_start = 0
            elif typ == "save":
                self.saves.append(ev)
            elif typ == "sample":
                self.samples.append(ev)
            elif typ == "warning":
                self.warnings.append(ev)
            elif typ == "error":
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
        train = self.run_dir / "train.log"
        if train.exists():
            return train
        out = self.run_dir / "stdout.log"
        return out if out.exists() else None

    def _poll_log(self) -> None:
        path = self._current_log()
        if path is None:
            return
        try:
            size = os.stat(path).st_size
        except OSError:
            return
        if path != self.log_path or size < self._log_offset or \
                size - self._log_offset > _LOG_TAIL_BLOCK * 4:
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
            text = _display_line(raw)
            if text.strip():
                self.log.append(text)
        self.log_partial = _display_line(self._log_buf)

    def log_tail(self) -> list[str]:
        """The log's last lines, the one still being written (a progress bar) last."""
        out = list(self.log)
        if self.log_partial.strip():
            out.append(self.log_partial)
        return out[-self.log_lines:]

    # ---- summary ---------------------------------------------------------------------------
    @property
    def last_step(self) -> dict | None:
        return self.latest.get("step")

    @property
    def ended(self) -> dict | None:
        return self.latest.get("end")


def _num(v: Any, default: float) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return default
