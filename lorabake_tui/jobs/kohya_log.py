"""Following a kohya sd-scripts run from its console output (stdout+stderr in a file).

The text becomes the same event dicts the trainer writes to events.jsonl (core/run/events.py's
types), with fewer fields (a field kohya does not print is absent, never guessed):
- tqdm progress `steps:  12%|#2   | 120/1000 [01:02<07:40,  1.91it/s, avr_loss=0.0812]`
  -> step (step, total_steps, epoch once known, avg_loss, it_per_s, eta_s, elapsed_s)
- `epoch 3/8`: kohya prints it as epoch 3 starts; later steps carry epoch 3, and (as the
  trainer does at the end of an epoch) an epoch event (epoch 2, epochs, step) is emitted
- `saving checkpoint: PATH` -> save (path)
- the `running training` block (`total optimization steps ...: 1048` ends it) -> start
  (total_steps, epochs, batches_per_epoch, train_samples, reg_samples, batch_size)
- `model saved.` -> epoch (the last one) and end (done); an exception line after a
  traceback -> error, and `KeyboardInterrupt` -> end (stopped); `avr_loss=nan` -> a warning.

tqdm redraws with \\r and writes the \\r *before* each update, so the newest update has no
terminator yet: a trailing progress line that is already whole (it ends with `]`) is parsed
at once, and the same (step, loss) is not reported twice when its terminator arrives.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ..core.run.events import EndStatus, EventType

_SPLIT = re.compile(rb"[\r\n]")
_PROGRESS = re.compile(
    r"(?:^|\s)steps:\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<info>[^\]]*)\]", re.IGNORECASE)
_PROGRESS_WHOLE = re.compile(rb"steps:\s*\d+%\|[^|]*\|\s*\d+/\d+\s*\[[^\]]*\]\s*$", re.I)
_EPOCH = re.compile(r"(?:^|\s)epoch (\d+)/(\d+)\s*$", re.IGNORECASE)
_SAVE = re.compile(r"saving checkpoint:\s*(\S.*?)\s*$", re.IGNORECASE)
_MODEL_SAVED = re.compile(r"\bmodel saved\.", re.IGNORECASE)
_TRACEBACK = "Traceback (most recent call last)"
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt)\b"
                        r"(?::\s*(?P<msg>.*))?$")
_STARTUP = {
    "train_samples": re.compile(r"num train images \* repeats[^:]*:\s*(\d+)", re.I),
    "reg_samples": re.compile(r"num reg images[^:]*:\s*(\d+)", re.IGNORECASE),
    "batches_per_epoch": re.compile(r"num batches per epoch[^:]*:\s*(\d+)", re.IGNORECASE),
    "epochs": re.compile(r"num epochs[^:]*:\s*(\d+)", re.IGNORECASE),
    "batch_size": re.compile(r"batch size per device[^:]*:\s*(\d+)", re.IGNORECASE),
}
_TOTAL_STEPS = re.compile(r"total optimization steps[^:]*:\s*(\d+)", re.IGNORECASE)
# rich's log handler appends `file.py:123` at the right edge of each line
_RICH_SUFFIX = re.compile(r"\s{2,}[\w.-]+\.py:\d+\s*$")


def _seconds(text: str) -> float | None:
    """tqdm's intervals: `07:40`, `1:07:40`; `?` when unknown."""
    parts = text.strip().split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return None
    total = 0
    for n in nums:
        total = total * 60 + n
    return float(total)


def _rate(text: str) -> float | None:
    """`1.91it/s` -> 1.91; below 1 it/s tqdm prints `2.94s/it` -> 0.34."""
    text = text.strip()
    try:
        if text.endswith("it/s"):
            return float(text[:-4])
        if text.endswith("s/it"):
            v = float(text[:-4])
            return 1.0 / v if v > 0 else None
    except ValueError:
        return None
    return None


def _finite(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class KohyaLogParser:
    """Feed it the log's bytes in order, in chunks of any size; it returns new events."""

    def __init__(self) -> None:
        self._partial = b""
        self.total_steps: int | None = None
        self.total_epochs: int | None = None
        self.epoch: int | None = None
        self._startup: dict[str, int] = {}
        self._last_progress: tuple | None = None
        self._in_traceback = False
        self._warned_nan = False
        self.ended = False

    def feed(self, data: bytes, *, final: bool = False) -> list[dict]:
        """Events in `data` (appended to what came before). `final`: the file is complete,
        so an unterminated last line is parsed too."""
        parts = _SPLIT.split(self._partial + data)
        self._partial = parts.pop()
        out: list[dict] = []
        for raw in parts:
            if raw.strip():
                self._line(raw.decode("utf-8", errors="replace"), out)
        if self._partial and (final or _PROGRESS_WHOLE.search(self._partial)):
            self._line(self._partial.decode("utf-8", errors="replace"), out)
            if final:
                self._partial = b""
        return out

    def _line(self, line: str, out: list[dict]) -> None:
        line = line.rstrip()
        m = _PROGRESS.search(line)
        if m:
            self._progress(m, out)
            return
        stripped = _RICH_SUFFIX.sub("", line).strip()
        if not stripped:
            return
        m = _EPOCH.search(stripped)
        if m:
            self._epoch_done(out)
            self.epoch, self.total_epochs = int(m.group(1)), int(m.group(2))
            return
        m = _SAVE.search(stripped)
        if m:
            out.append({"type": EventType.SAVE.value, "path": m.group(1)})
            return
        if _MODEL_SAVED.search(stripped):
            self._epoch_done(out)
            self.ended = True
            out.append({"type": EventType.END.value, "status": EndStatus.DONE.value,
                        "message": "model saved"})
            return
        if _TRACEBACK in stripped:
            self._in_traceback = True
            return
        m = _EXCEPTION.match(stripped)
        if m and (self._in_traceback or stripped.startswith("torch.")):
            self._in_traceback = False
            if stripped.startswith("KeyboardInterrupt"):
                self.ended = True
                out.append({"type": EventType.END.value,
                            "status": EndStatus.STOPPED.value, "message": "interrupted"})
            else:
                out.append({"type": EventType.ERROR.value, "message": stripped})
            return
        for key, rx in _STARTUP.items():
            m = rx.search(stripped)
            if m:
                self._startup[key] = int(m.group(1))
                if key == "epochs":
                    self.total_epochs = self._startup[key]
                return
        m = _TOTAL_STEPS.search(stripped)
        if m:
            self.total_steps = int(m.group(1))
            out.append({"type": EventType.START.value, "source": "kohya",
                        "total_steps": self.total_steps, **self._startup})

    def _epoch_done(self, out: list[dict]) -> None:
        """The epoch in progress has ended (the next one began, or the run finished)."""
        if self.epoch is None:
            return
        ev: dict = {"type": EventType.EPOCH.value, "epoch": self.epoch}
        if self.total_epochs is not None:
            ev["epochs"] = self.total_epochs
        if self._last_progress is not None:
            ev["step"] = self._last_progress[0]
        out.append(ev)
        self.epoch = None

    def _progress(self, m: re.Match, out: list[dict]) -> None:
        step, total = int(m.group("n")), int(m.group("total"))
        self.total_steps = total
        if step == 0:
            return  # the bar drawn before the first step: nothing measured yet
        fields = [f.strip() for f in m.group("info").split(",")]
        ev: dict = {"type": EventType.STEP.value, "step": step, "total_steps": total}
        if self.epoch is not None:
            ev["epoch"] = self.epoch
        if fields and "<" in fields[0]:
            elapsed, _, remaining = fields[0].partition("<")
            if (v := _seconds(elapsed)) is not None:
                ev["elapsed_s"] = v
            if (v := _seconds(remaining)) is not None:
                ev["eta_s"] = v
        if len(fields) > 1 and (v := _rate(fields[1])) is not None:
            ev["it_per_s"] = round(v, 4)
        nan_loss = False
        for item in fields[2:]:
            key, sep, value = item.partition("=")
            if not sep:
                continue
            key = key.strip()
            if key in ("avr_loss", "loss"):
                v = _finite(value)
                if v is None:
                    nan_loss = True
                else:
                    ev["avg_loss" if key == "avr_loss" else "loss"] = v
        ident = (step, ev.get("avg_loss"), ev.get("loss"), nan_loss)
        if ident == self._last_progress:
            return  # the same redraw seen again (tqdm refresh, or the line parsed early)
        self._last_progress = ident
        out.append(ev)
        if nan_loss and not self._warned_nan:
            self._warned_nan = True
            out.append({"type": EventType.WARNING.value, "step": step, "message":
                        "loss is NaN (kohya printed avr_loss=nan): fp16 overflow is the usual "
                        "cause; use bf16 mixed precision or an fp32 VAE"})


class KohyaLogReader:
    """A kohya log followed from a byte offset: each `read()` returns the events appended
    since the last one (never re-reading the file from the start)."""

    def __init__(self, path: Path | str, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self.parser = KohyaLogParser()

    def read(self, *, final: bool = False, max_bytes: int = 8 << 20) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size < self.offset:
                    self.offset = 0  # truncated or replaced: start over
                    self.parser = KohyaLogParser()
                fh.seek(self.offset)
                data = fh.read(max_bytes)
        except OSError:
            return []
        self.offset += len(data)
        return self.parser.feed(data, final=final)


def parse_kohya_log(path: Path | str, offset: int = 0, parser: KohyaLogParser | None = None,
                    *, final: bool = False) -> tuple[list[dict], int, KohyaLogParser]:
    """Events from byte `offset` on, the offset to continue from, and the parser to pass
    back in next time (it holds the unterminated last line and the totals seen so far)."""
    parser = parser or KohyaLogParser()
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    return parser.feed(data, final=final), offset + len(data), parser


def _read_tail(path: Path | str, tail_bytes: int) -> tuple[bytes, bool] | None:
    """The last `tail_bytes` of a log and whether its start was cut off; None if unreadable."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - tail_bytes))
            return fh.read(), size > tail_bytes
    except OSError:
        return None


def kohya_outcome(path: Path | str, *, tail_bytes: int = 256 << 10) -> str | None:
    """'done', 'stopped' or 'failed' if the end of the log says how the run ended, else None
    (still running, or killed without a word)."""
    read = _read_tail(path, tail_bytes)
    if read is None:
        return None
    data, cut = read
    if cut:
        data = data[data.find(b"\n") + 1:]  # the first line is cut
    parser = KohyaLogParser()
    outcome = None
    for ev in parser.feed(data, final=True):
        typ = ev["type"]
        if typ == EventType.END:
            outcome = ev["status"]
        elif typ == EventType.ERROR:
            outcome = EndStatus.FAILED.value
        elif typ in (EventType.START, EventType.EPOCH) or \
                (typ == EventType.STEP and outcome == EndStatus.FAILED):
            outcome = None  # it went on after that (a handled traceback, or a new run)
    return outcome


def latest_kohya_step(path: Path | str, *, tail_bytes: int = 64 << 10) -> dict | None:
    """The last progress update in the log (read from its end only)."""
    read = _read_tail(path, tail_bytes)
    if read is None:
        return None
    data, cut = read
    if cut:
        first = _SPLIT.search(data)
        data = data[first.end():] if first else b""  # the first line is cut
    steps = [ev for ev in KohyaLogParser().feed(data, final=True) if ev["type"] == EventType.STEP]
    return steps[-1] if steps else None
