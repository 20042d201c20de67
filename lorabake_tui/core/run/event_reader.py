"""The one reader of events.jsonl: forwards from a byte offset in bounded chunks (the
dashboard, `jobs attach`, tests and benchmarks), and backwards from the end for the last
event of a kind (`jobs list`, a job's outcome, whether a run has finished).

The file is appended to while it is read, and a trainer killed mid-write and then resumed
leaves a torn line in it: a line without its newline is left for the next read, and a line
that is not JSON is skipped and counted, never fatal. Written by core/run/event_writer.py.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .events import EndStatus, EventType, is_lora_save

CHUNK_BYTES = 1 << 20  # parsed per read: bounds memory, and lets a UI thread run between reads
_BLOCK = 64 << 10  # read per step when searching backwards


class Chunk(NamedTuple):
    events: list[dict[str, Any]]
    offset: int  # where the next read starts
    skipped: int  # lines that were not JSON objects


def _parse_lines(data: bytes) -> tuple[list[Any], int]:
    """Decode complete JSON lines (`data` ends with a newline) in one call, a JSON array
    made with one bytes.replace: several times faster than one loads per line. If a line is
    bad (torn) or blank, fall back to line by line. Returns (values, lines skipped)."""
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


def read_events_chunk(path: Path | str, offset: int = 0, max_bytes: int = CHUNK_BYTES
                      ) -> Chunk:
    """The complete events from byte `offset` on, at most about `max_bytes` of them (a
    single longer line is read whole); a line still being written is left for the next
    read. OSError when the file cannot be read."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(max_bytes)
        if data and b"\n" not in data:
            # not one whole line: a line longer than a chunk, read on to its end (a chunk that
            # merely cuts a line stops at its last newline below, and the next read goes on)
            parts = [data]
            while more := fh.read(max_bytes):
                parts.append(more)
                if b"\n" in more:
                    break
            data = b"".join(parts)
    end = data.rfind(b"\n") + 1
    values, bad = _parse_lines(data[:end])
    events = [v for v in values if isinstance(v, dict)]
    return Chunk(events, offset + end, bad + len(values) - len(events))


def read_all_events(path: Path | str) -> list[dict[str, Any]]:
    """Every complete event in the file, chunk by chunk (a finished run, in tools and tests:
    the dashboard reads incrementally instead)."""
    events: list[dict[str, Any]] = []
    offset = 0
    while True:
        chunk = read_events_chunk(path, offset)
        events += chunk.events
        if chunk.offset == offset:
            return events
        offset = chunk.offset


def last_event(path: Path | str, type_: str | None = None, *,
               where: Callable[[dict[str, Any]], bool] | None = None,
               max_bytes: int = 4 << 20) -> dict[str, Any] | None:
    """The last complete event (of `type_`, and for which `where(event)` holds, if given),
    searched from the end of the file in blocks, at most `max_bytes` back, so that a week of
    events costs no more than a minute of them. None when there is none (or no file)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; a with-block hides the seek logic
    except OSError:
        return None
    needle = f'"{type_}"'.encode() if type_ else None  # cheap filter before json.loads
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, carry, first = end, b"", True
        while pos > 0 and end - pos < max_bytes:
            step = min(_BLOCK, pos)
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


def last_lora_save(path: Path | str) -> dict[str, Any] | None:
    """The last save event of a LoRA file (not of a state)."""
    return last_event(path, EventType.SAVE, where=is_lora_save)


def finished_end(path: Path | str) -> dict[str, Any] | None:
    """The `done` end event of a run that finished, None while it has not: nothing resumes a
    finished run (the trainer, `lorabake train` and the job control all ask here). The whole
    file is searched, so a finished run that was wrongly trained on afterwards still counts."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    return last_event(path, EventType.END, where=lambda ev: ev.get("status") == EndStatus.DONE,
                      max_bytes=size + 1)
