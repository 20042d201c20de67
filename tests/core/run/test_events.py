"""events.jsonl: the schema, its one writer and its one reader, on real files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from lorabake_tui.core.run.event_reader import (
    finished_end,
    last_event,
    last_lora_save,
    read_all_events,
    read_events_chunk,
)
from lorabake_tui.core.run.event_writer import EventWriter
from lorabake_tui.core.run.events import (
    END_STATUSES,
    EVENT_TYPES,
    SCHEMA,
    STATE_SAVE,
    EndStatus,
    EventError,
    EventType,
    is_lora_save,
    validate,
)
from lorabake_tui.core.run.folder import EVENTS_FILE

README = Path(__file__).resolve().parents[3] / "README.md"


def step(n: int, **extra) -> dict:
    return {"step": n, "total_steps": 100, "loss": 0.1, **extra}


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ---- the writer ----------------------------------------------------------------------------

def test_writer_refuses_an_unknown_type_and_writes_nothing(tmp_path):
    with EventWriter(tmp_path) as ev:
        with pytest.raises(EventError, match="unknown event type 'stpe'"):
            ev.emit("stpe", step=1)
        with pytest.raises(EventError, match="first argument"):
            ev.emit("step", type="end", **step(1))
    assert lines_of(tmp_path / EVENTS_FILE) == []


def test_writer_refuses_a_missing_required_field(tmp_path):
    with EventWriter(tmp_path) as ev:
        with pytest.raises(EventError, match="step event without its 'loss' field"):
            ev.emit(EventType.STEP, step=1, total_steps=10)
        with pytest.raises(EventError, match="end event without its 'status'"):
            ev.emit(EventType.END, message="bye")
        with pytest.raises(EventError, match="sample event without its 'paths'"):
            ev.emit(EventType.SAMPLE, epoch=1)
    assert lines_of(tmp_path / EVENTS_FILE) == []


@pytest.mark.parametrize(("fields", "where"), [
    (step(1, loss=math.nan), "loss is nan"),
    (step(1, avg_loss=math.inf), "avg_loss is inf"),
    (step(1, lr=[1e-4, -math.inf]), r"lr\[1\] is -inf"),
    (step(1, extra={"deep": [0.5, math.nan]}), r"extra.deep\[1\] is nan"),
])
def test_writer_refuses_nan_and_infinity_and_says_where(tmp_path, fields, where):
    with EventWriter(tmp_path) as ev, pytest.raises(EventError, match=where):
        ev.emit(EventType.STEP, **fields)
    assert lines_of(tmp_path / EVENTS_FILE) == []


@pytest.mark.parametrize(("type_", "fields", "message"), [
    (EventType.STEP, step(1.5), "step must be int"),
    (EventType.STEP, step(True), "step must be int"),  # a bool is not a step number
    (EventType.STEP, step(1, lr=[1e-4, "fast"]), "lr must be numbers"),
    (EventType.STEP, step(1, vram_gb="6 GB"), "vram_gb must be number or null"),
    (EventType.END, {"status": "maybe", "message": "?"}, "status must be one of"),
    (EventType.SAVE, {"path": "x", "kind": "lora"}, "kind must be one of state"),
    (EventType.WARNING, {"message": Path("/x")}, "message must be str"),
    (EventType.WARNING, {"message": "x", "where": Path("/x")}, "not JSON serializable"),
])
def test_writer_refuses_wrong_types(tmp_path, type_, fields, message):
    with EventWriter(tmp_path) as ev, pytest.raises(EventError, match=message):
        ev.emit(type_, **fields)
    assert lines_of(tmp_path / EVENTS_FILE) == []


def test_writer_to_reader_round_trip(tmp_path):
    with EventWriter(tmp_path) as ev:
        start = ev.emit(EventType.START, total_steps=2, epochs=1, buckets={"64x64": 3},
                        note="naïve ✓")  # fields beyond the schema's travel too
        ev.emit(EventType.STEP, **step(1, lr=[1e-4, 5e-5], vram_gb=None))
        ev.emit("warning", message="slow")  # a plain string names a type as well
        ev.emit(EventType.SAVE, path="/r/x.safetensors", step=2, epoch=1, bytes=10)
        ev.emit(EventType.SAVE, path="/r/state", kind=STATE_SAVE, step=2)
        ev.emit(EventType.END, status=EndStatus.DONE, message="done", exit_code=0)
    assert isinstance(start["t"], float) and start["type"] == "start"
    raw = lines_of(tmp_path / EVENTS_FILE)
    assert len(raw) == 6 and all(json.loads(line)["type"] for line in raw)  # one per line
    events = read_all_events(tmp_path / EVENTS_FILE)
    assert [e["type"] for e in events] == ["start", "step", "warning", "save", "save", "end"]
    assert events[0] == start and events[0]["note"] == "naïve ✓"
    assert events[1]["lr"] == [1e-4, 5e-5] and events[1]["vram_gb"] is None
    assert [is_lora_save(e) for e in events] == [False, False, False, True, False, False]
    for e in events:
        validate(e)  # what the reader gives back still meets the schema

    with EventWriter(tmp_path) as again:  # a resumed run appends to the same file
        again.emit(EventType.START, total_steps=2, step=1, resumed=True, t=123.5)
    events = read_all_events(tmp_path / EVENTS_FILE)
    assert len(events) == 7 and events[-1]["t"] == 123.5 and events[-1]["resumed"] is True


def test_a_written_event_is_on_disk_before_emit_returns(tmp_path):
    ev = EventWriter(tmp_path)
    try:
        ev.emit(EventType.WARNING, message="first")
        # another process reading now (the writer is still open) sees the whole line
        assert read_events_chunk(tmp_path / EVENTS_FILE, 0).events[0]["message"] == "first"
    finally:
        ev.close()
    ev.close()  # closing twice is harmless


# ---- the reader ----------------------------------------------------------------------------

def test_reader_skips_a_torn_line_and_counts_it(tmp_path):
    path = tmp_path / EVENTS_FILE
    path.write_text('{"type": "step", "step": 1}\n{"type": "st{"type": "step", "step": 2}\n'
                    '[1, 2]\n\n{"type": "step", "step": 3}\n')
    chunk = read_events_chunk(path, 0)
    assert [e["step"] for e in chunk.events] == [1, 3]
    assert chunk.skipped == 2  # the torn line, and a JSON value that is not an event
    assert chunk.offset == path.stat().st_size


def test_reader_leaves_a_partial_last_line_for_the_next_read(tmp_path):
    path = tmp_path / EVENTS_FILE
    with EventWriter(tmp_path) as ev:
        ev.emit(EventType.STEP, **step(1))
    whole = path.stat().st_size
    with path.open("a") as fh:
        fh.write('{"type": "step", "st')  # the trainer is writing it right now
    first = read_events_chunk(path, 0)
    assert [e["step"] for e in first.events] == [1]
    assert first.offset == whole and first.skipped == 0
    assert read_events_chunk(path, first.offset).events == []  # still incomplete: nothing
    with path.open("a") as fh:
        fh.write('ep": 2, "total_steps": 100, "loss": 0.2}\n')
    second = read_events_chunk(path, first.offset)
    assert [e["step"] for e in second.events] == [2] and second.skipped == 0


def test_reader_reads_in_bounded_chunks(tmp_path):
    path = tmp_path / EVENTS_FILE
    with EventWriter(tmp_path) as ev:
        for n in range(1, 501):
            ev.emit(EventType.STEP, **step(n))
        ev.emit(EventType.WARNING, message="x" * 5000)  # one line longer than a chunk
        ev.emit(EventType.STEP, **step(501))
    longest = max(len(line) + 1 for line in path.read_bytes().split(b"\n"))
    offset, seen, reads = 0, [], 0
    while True:
        chunk = read_events_chunk(path, offset, max_bytes=1000)
        if chunk.offset == offset:
            break
        long_line = any(e["type"] == EventType.WARNING for e in chunk.events)
        # bounded; the one line longer than a chunk is read whole (with what came with it)
        assert chunk.offset - offset <= (longest + 1000 if long_line else 1000)
        seen += chunk.events
        offset, reads = chunk.offset, reads + 1
    assert offset == path.stat().st_size
    assert [e.get("step") for e in seen] == [*range(1, 501), None, 501]
    assert reads > 40  # it really was read piece by piece
    assert read_all_events(path) == seen


def test_reader_raises_oserror_for_a_missing_file(tmp_path):
    with pytest.raises(OSError):
        read_events_chunk(tmp_path / "none.jsonl", 0)


def test_last_event_searches_backwards(tmp_path):
    path = tmp_path / EVENTS_FILE
    with EventWriter(tmp_path) as ev:
        ev.emit(EventType.START, total_steps=5000)
        ev.emit(EventType.SAVE, path="/r/a.safetensors", step=1)
        for n in range(1, 5001):  # far more than one 64 KB block back
            ev.emit(EventType.STEP, **step(n, t=float(n)))
        ev.emit(EventType.SAVE, path="/r/state", kind=STATE_SAVE, step=5000)
    with path.open("a") as fh:
        fh.write('{"type": "step", "step": 9999, "tot')  # being written: not an event yet
    assert last_event(path, EventType.STEP)["step"] == 5000
    assert last_event(path)["path"] == "/r/state"
    assert last_event(path, "step", where=lambda e: e["t"] <= 1234.0)["step"] == 1234
    assert last_event(path, EventType.START)["total_steps"] == 5000  # found at the very start
    assert last_event(path, EventType.END) is None
    assert last_event(path, EventType.START, max_bytes=64 << 10) is None  # beyond the limit
    assert last_lora_save(path)["path"] == "/r/a.safetensors"  # the state save is skipped
    assert last_event(tmp_path / "none.jsonl") is None


def test_last_event_copes_with_a_file_without_newline(tmp_path):
    path = tmp_path / EVENTS_FILE
    path.write_text('{"type": "step", "step": 1' + " " * 70_000)  # one partial line > a block
    assert last_event(path) is None
    path.write_text('{"type": "end", "status": "done", "message": "x"}\n' + "x" * 70_000)
    assert last_event(path, "end")["status"] == "done"


def test_finished_end_finds_a_done_end_however_far_back(tmp_path):
    path = tmp_path / EVENTS_FILE
    assert finished_end(path) is None  # no file: not finished
    with EventWriter(tmp_path) as ev:
        ev.emit(EventType.START, total_steps=60)
        ev.emit(EventType.END, status=EndStatus.STOPPED, message="stopped", exit_code=3)
        assert finished_end(path) is None  # stopped is not finished
        ev.emit(EventType.START, total_steps=60, resumed=True, step=12)
        ev.emit(EventType.END, status=EndStatus.DONE, message="done", exit_code=0)
        assert finished_end(path)["message"] == "done"
        # a finished run that was (wrongly) trained on afterwards is still finished, even
        # with megabytes of later events after its done
        ev.emit(EventType.START, total_steps=60, resumed=True, step=12)
    with path.open("a") as fh:
        fh.writelines(json.dumps({"type": "step", "t": 1.0, **step(n)}) + "\n"
                      for n in range(13, 60_000))
        fh.write(json.dumps({"type": "end", "t": 2.0, "status": "stopped",
                             "message": "stopped"}) + "\n")
    assert path.stat().st_size > 4 << 20  # beyond last_event's usual reach
    assert finished_end(path)["status"] == "done"


# ---- the schema and its documentation ------------------------------------------------------

def test_every_type_has_a_schema_and_the_readme_documents_it():
    assert set(SCHEMA) == set(EVENT_TYPES)
    section = README.read_text().split("## events.jsonl", 1)[1].split("\n## ", 1)[0]
    for type_ in EVENT_TYPES:
        assert f"`{type_}`" in section, f"README's events section lacks `{type_}`"
        for field in SCHEMA[type_]:
            if field.required:
                assert f"`{field.name}`" in section, f"README lacks `{type_}`'s `{field.name}`"
    for status in END_STATUSES:
        assert f"`{status}`" in section
    assert re.search(r"core/run/event_writer\.py", section)
