"""The event schema of events.jsonl: the event types, their fields and the end statuses.

The trainer writes events through core/run/event_writer.py, which checks each one against
this schema; jobs, the UI, the CLI and the kohya log follower (whose parsed events take the
same shape) read them with core/run/event_reader.py. The README's "events.jsonl" section
describes the same schema. An event may carry fields beyond the ones listed here (the start
event's config summary); the listed ones always have the listed types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    START = "start"  # a run (or a resumed attempt) begins
    STEP = "step"  # one optimizer step
    EPOCH = "epoch"  # an epoch ended
    SAVE = "save"  # a LoRA file or a state was saved
    SAMPLE = "sample"  # preview images were written
    WARNING = "warning"
    ERROR = "error"
    END = "end"  # the run ended (the last event of an attempt)
    RENDER = "render"  # a render job (grid, probe) wrote one image


class EndStatus(StrEnum):
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


EVENT_TYPES = tuple(EventType)
END_STATUSES = tuple(EndStatus)
STATE_SAVE = "state"  # a save event's `kind` when it saved the state (a LoRA save has none)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event. `kind`: int, number (int or float), str, bool, numbers (a list
    of numbers), strs (a list of strings) or object (a JSON object)."""

    name: str
    kind: str
    required: bool = False
    nullable: bool = False  # may be null (the value is unknown, e.g. VRAM on a CPU)
    choices: tuple[str, ...] = ()


COMMON = (Field("type", "str", required=True), Field("t", "number", required=True))

SCHEMA: dict[EventType, tuple[Field, ...]] = {
    EventType.START: (
        Field("total_steps", "int", required=True), Field("epochs", "int"),
        Field("step", "int"),  # where a resumed run goes on from
        Field("resumed", "bool"), Field("run_dir", "str"), Field("output_name", "str")),
    EventType.STEP: (
        Field("step", "int", required=True), Field("total_steps", "int", required=True),
        Field("loss", "number", required=True), Field("epoch", "int"),
        Field("avg_loss", "number"), Field("lr", "numbers"), Field("it_per_s", "number"),
        Field("samples_per_s", "number"), Field("eta_s", "number"),
        Field("vram_gb", "number", nullable=True)),
    EventType.EPOCH: (
        Field("epoch", "int", required=True), Field("epochs", "int"), Field("step", "int"),
        Field("avg_loss", "number", nullable=True)),
    EventType.SAVE: (
        Field("path", "str", required=True), Field("step", "int"), Field("epoch", "int"),
        Field("bytes", "int"), Field("kind", "str", choices=(STATE_SAVE,))),
    EventType.SAMPLE: (
        Field("epoch", "int", required=True), Field("paths", "strs", required=True)),
    EventType.WARNING: (Field("message", "str", required=True), Field("step", "int")),
    EventType.ERROR: (Field("message", "str", required=True), Field("step", "int")),
    EventType.RENDER: (
        Field("done", "int", required=True), Field("total", "int", required=True),
        Field("path", "str", required=True), Field("label", "str"),
        Field("s_per_image", "number"), Field("eta_s", "number")),
    EventType.END: (
        Field("status", "str", required=True, choices=END_STATUSES),
        Field("message", "str", required=True), Field("exit_code", "int")),
}


class EventError(ValueError):
    """An event that breaks the schema: a bug in whoever wrote it, so it is never written."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_KIND_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "numbers": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "object": lambda v: isinstance(v, dict),
}


def _non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """The first NaN/inf inside `value` and where it is (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, dict):
        items = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        if (found := _non_finite(v, sub)) is not None:
            return found
    return None


def validate(event: dict[str, Any]) -> None:
    """Raise EventError unless `event` has a known type, its required fields, the listed
    types, and only finite numbers anywhere."""
    type_ = event.get("type")
    if type_ not in EVENT_TYPES:
        raise EventError(f"unknown event type {type_!r} (known: {', '.join(EVENT_TYPES)})")
    for f in (*COMMON, *SCHEMA[EventType(type_)]):
        if f.name not in event:
            if f.required:
                raise EventError(f"{type_} event without its {f.name!r} field")
            continue
        value = event[f.name]
        if value is None and f.nullable:
            continue
        if not _KIND_CHECKS[f.kind](value):
            raise EventError(f"{type_} event: {f.name} must be {f.kind}"
                             f"{' or null' if f.nullable else ''}, not {value!r}")
        if f.choices and value not in f.choices:
            raise EventError(f"{type_} event: {f.name} must be one of {', '.join(f.choices)},"
                             f" not {value!r}")
    for name, value in event.items():
        if (found := _non_finite(value, name)) is not None:
            raise EventError(f"{type_} event: {found[0]} is {found[1]}; events hold finite "
                             "numbers only (JSON has no NaN or infinity)")


def is_lora_save(event: dict[str, Any]) -> bool:
    """A save event of a LoRA file (the trainer also reports state saves)."""
    return event.get("type") == EventType.SAVE and event.get("kind") != STATE_SAVE


def render_as_step(event: dict) -> dict:
    """A render job's progress (its last `render` event) in a step event's terms, for the
    lists and lines that show any job's progress as step/total and ETA."""
    out = {"type": EventType.STEP.value, "t": event.get("t"), "step": event.get("done"),
           "total_steps": event.get("total")}
    if isinstance(event.get("eta_s"), (int, float)):
        out["eta_s"] = event["eta_s"]
    return out
