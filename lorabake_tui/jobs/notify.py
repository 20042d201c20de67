"""Words for the user about a job: the notice when it ends (the UI rings the bell with it),
the one-line progress summary of a running one, and how its files are named on screen
(sizes, which checkpoint a LoRA file is)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.run.event_reader import finished_end, last_event, last_lora_save
from ..core.run.events import EventType
from ..core.run.folder import lora_kind
from .history import JobHistory
from .store import ACTIVE, FINISHED, Job

SEVERITY = {"done": "information", "stopped": "warning", "failed": "error",
            "crashed": "error"}


def duration(seconds: float | None) -> str:
    """'1h 12m', '7m 40s', '12s'."""
    if seconds is None or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{sec}s"


_UNITS = ("B", "KB", "MB", "GB")


def human_size(n: int | float) -> str:
    """'364 KB', '1.5 MB', '144 MB', '2.1 GB', '512 B': units of 1024 (what `ls -lh` and the
    GPU meter count in), three significant digits at most (one decimal under 10)."""
    value, unit = float(max(n, 0)), 0
    while unit < len(_UNITS) - 1:
        # the unit is chosen after rounding: 1023.7 KB is '1.0 MB', not '1024 KB'
        shown = round(value, 1) if value < 10 else round(value)
        if shown < 1000:
            break
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    return f"{value:.1f} {_UNITS[unit]}" if value < 9.95 else f"{value:.0f} {_UNITS[unit]}"


def checkpoint_label(save: dict, output_name: str | None = None) -> str:
    """Which checkpoint a LoRA save event is, from its file's name (core/run/folder.py):
    'epoch 3', 'step 119' (saved when stopped), 'final'; else the step it was saved at."""
    kind, number = lora_kind(output_name, Path(str(save.get("path", ""))).name)
    if kind in ("epoch", "step"):
        return f"{kind} {number}"
    if kind == "final":
        return "final"
    step = save.get("step")
    return f"step {step}" if isinstance(step, int) else "LoRA"


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    message: str
    severity: str  # Textual's notify severities: information, warning, error


def finish_notice(job: Job) -> Notice:
    """What to tell the user when `job` has ended."""
    took = duration((job.ended or time.time()) - job.started) if job.started else "?"
    first, *rest = (job.last_message or job.status).splitlines() or [job.status]
    if job.status == "done":
        save = last_lora_save(job.events_path) if job.kind == "lorabake" else None
        where = f": {save['path']}" if save and save.get("path") else ""
        if job.kind == "render" and (end := finished_end(job.events_path)):
            where = f": {end.get('message', '')}"  # a grid's path, a probe's reading
        message = f"finished in {took}{where}"
    elif job.status == "stopped":
        step = last_event(job.events_path, EventType.STEP) if job.kind == "lorabake" else None
        at = f" at step {step['step']}/{step.get('total_steps', '?')}" if step else ""
        message = f"stopped{at} after {took}" + \
            ("" if job.kind == "render" else f"; resume: lorabake jobs resume {job.id}")
    else:
        tail = f" ({rest[-1].strip()})" if rest and rest[-1].strip() else ""
        message = f"{first}{tail} after {took}"
        if job.kind == "lorabake" and job.has_state:
            message += f"; resume: lorabake jobs resume {job.id}"
    return Notice(f"{job.name or job.id} {job.status}", f"{job.id} {message}",
                  SEVERITY.get(job.status, "information"))


def finish_message(job: Job) -> str:
    n = finish_notice(job)
    return f"{n.title}: {n.message}"


class FinishWatcher:
    """Feed it the job list on every poll; it returns the jobs that ended since the last
    call (ones it saw queued or running before, or an earlier attempt of), so each attempt
    gets one notice."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self._seen = {j.id: (j.status, j.attempt) for j in jobs}

    def update(self, jobs: Iterable[Job]) -> list[Job]:
        ended = []
        seen = {}
        for job in jobs:
            before = self._seen.get(job.id)
            if job.status in FINISHED and before is not None and \
                    (before[0] not in FINISHED or before[1] != job.attempt):
                ended.append(job)
            seen[job.id] = (job.status, job.attempt)
        self._seen = seen
        return ended


def _fmt(v, spec: str) -> str | None:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def progress_line(job: Job, history: JobHistory | None = None) -> str:
    """`j-0003 running  step 120/1000 (12%)  epoch 2/8  loss 0.0812  ...  ETA 7m 40s`."""
    parts = [f"{job.id} {job.status}"]
    step = history.last_step if history is not None else None
    if step and job.status in ACTIVE and not history.steps_since_start:
        # (re)started and no step yet: the last step shown would be the previous attempt's
        parts.append(f"starting (resumes after step {step.get('step')})")
    elif step:
        n, total = step.get("step"), step.get("total_steps")
        pct = f" ({100 * n / total:.0f}%)" if isinstance(n, int) and total else ""
        parts.append(f"step {n}/{total or '?'}{pct}")
        epoch = (history.latest.get(EventType.EPOCH) or {}).get("epochs") or \
            (history.latest.get(EventType.START) or {}).get("epochs")
        if step.get("epoch") is not None:
            parts.append(f"epoch {step['epoch']}" + (f"/{epoch}" if epoch else ""))
        for key, label, spec in (("loss", "loss", ".4f"), ("avg_loss", "avg", ".4f")):
            if (text := _fmt(step.get(key), spec)) is not None:
                parts.append(f"{label} {text}")
        lr = step.get("lr")
        if isinstance(lr, list) and lr:
            parts.append("lr " + "/".join(_fmt(x, ".1e") or "?" for x in lr))
        if (text := _fmt(step.get("it_per_s"), ".2f")) is not None:
            parts.append(f"{text} it/s")
        if step.get("vram_gb") is not None and (text := _fmt(step["vram_gb"], ".1f")):
            parts.append(f"VRAM {text} GB")
        if job.status in ACTIVE and isinstance(step.get("eta_s"), (int, float)):
            parts.append(f"ETA {duration(step['eta_s'])}")
    elif job.status in ACTIVE:
        parts.append("starting")
    warning = history.latest.get(EventType.WARNING) if history is not None else None
    if warning and job.status in ACTIVE:
        parts.append(f"warning: {warning.get('message', '')}"[:80])
    return "  ".join(parts)
