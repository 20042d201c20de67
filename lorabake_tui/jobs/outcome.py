"""How a job ended, from what its run folder says: the exit code its runner recorded, the
trainer's last end, error and step events, its last LoRA save, and the end of its logs,
turned into a finished status and the message the user sees.

The runner settles its job with this when the trainer exits; the registry's reconcile()
settles a job whose processes are gone without a word (store.py); a followed kohya run is
settled from its console log. Names and events: core/run/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, Protocol

from ..core.run import exit_codes
from ..core.run.event_reader import last_event, last_lora_save
from ..core.run.events import END_STATUSES, EventType
from ..core.run.folder import LOG_FILES, RunFolder
from .kohya_log import kohya_outcome
from .logs import RUNNER_PREFIX, tail_lines
from .procs import signal_name

OUTCOMES = ("done", "stopped", "failed", "crashed")  # the statuses of a finished job


class Attempt(Protocol):
    """What an outcome needs to know of the job (a store.Job)."""

    id: str
    run_dir: str
    started: float | None
    stop_requested: float | None
    pid: int | None
    log_path: str | None


def status_for_exit(code: int) -> str:
    if code == exit_codes.DONE:
        return "done"
    if code == exit_codes.STOPPED:
        return "stopped"
    if code < 0:
        return "crashed"  # killed by a signal (the OOM killer, kill -9)
    return "failed"


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal_name(code)}"
    return f"exit {code} ({exit_codes.NAMES.get(code, 'failed')})"


def last_output(run_dir: Path | str, n: int = 8) -> list[str]:
    """The last lines the run wrote, from whichever log it wrote last: stdout.log holds a
    traceback, train.log the progress before a kill."""
    logs = []
    for name in LOG_FILES:
        with contextlib.suppress(OSError):
            logs.append((os.stat(Path(run_dir) / name).st_mtime, name))
    for _, name in sorted(logs, reverse=True):
        lines = [ln for ln in tail_lines(Path(run_dir) / name, n + 4)
                 if not ln.startswith(RUNNER_PREFIX)][-n:]
        if lines:
            return lines
    return []


def _this_attempt(event: dict | None, job: Attempt) -> dict | None:
    """`event`, unless an earlier attempt in the same run folder wrote it."""
    if event is not None and job.started and event.get("t", 0) < job.started - 1:
        return None
    return event


def finish_fields(job: Attempt, code: int | None, *, now: float | None = None
                  ) -> dict[str, Any]:
    """The row update for a job whose process ended with `code` (None: nobody recorded it)."""
    now = time.time() if now is None else now
    run = RunFolder(job.run_dir)
    end = _this_attempt(last_event(run.events, EventType.END), job)
    if code is None:
        if end is not None and end.get("status") in END_STATUSES:
            # the runner is gone, but the trainer said how it ended
            status = end["status"]
            msg = end.get("message") or status
            return {"status": status, "ended": now, "last_message": f"{msg} (no exit code "
                    "recorded: the runner was killed)"}
        lines = last_output(run.path)
        msg = "crashed: the process is gone and no exit code was recorded (killed, or the " \
              "machine rebooted)"
        return {"status": "crashed", "ended": now,
                "last_message": "\n".join([msg, *lines])}
    status = status_for_exit(code)
    if job.stop_requested and code == -signal.SIGTERM:
        # asked to stop while the trainer was still starting (before its handler was set)
        return {"status": "stopped", "exit_code": code, "ended": now,
                "last_message": "stopped during start-up, before anything was saved"}
    if status == "done":
        save = last_lora_save(run.events)
        msg = f"done: {save['path']}" if save and save.get("path") else "done"
    elif status == "stopped":
        step = last_event(run.events, EventType.STEP)
        where = f" at step {step['step']}/{step.get('total_steps', '?')}" if step else ""
        msg = f"stopped{where}; state saved, resume with `lorabake jobs resume {job.id}`"
    else:
        err = _this_attempt(last_event(run.events, EventType.ERROR), job)
        detail = [str(err.get("message", ""))] if err else last_output(run.path)
        msg = "\n".join([f"{status}: {describe_exit(code)}", *detail])
    return {"status": status, "exit_code": code, "ended": now, "last_message": msg}


def kohya_finish_fields(job: Attempt, *, now: float | None = None) -> dict[str, Any] | None:
    """The row update for a followed kohya run whose process (if it has a known one) has
    ended; None while its log does not say it ended and there is no process to watch."""
    now = time.time() if now is None else now
    outcome = kohya_outcome(job.log_path) if job.log_path else None
    if not job.pid:
        # no process to watch: only the log can say it ended
        if outcome is None:
            return None
        return {"status": outcome, "ended": now, "last_message": f"kohya run {outcome}"}
    if outcome is None:
        outcome = "stopped" if job.stop_requested else "crashed"
    lines = tail_lines(job.log_path, 5) if job.log_path and outcome != "done" else []
    return {"status": outcome, "ended": now,
            "last_message": "\n".join([f"kohya run {outcome} (pid {job.pid} ended)", *lines])}
