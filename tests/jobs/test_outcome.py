"""How a job ended, read from real run folders (events written by the trainer's writer, logs,
the exit code file): outcome.py without processes."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from lorabake_tui.core.run.event_writer import EventWriter
from lorabake_tui.core.run.events import STATE_SAVE, EndStatus, EventType
from lorabake_tui.core.run.folder import RunFolder
from lorabake_tui.jobs.logs import RUNNER_PREFIX
from lorabake_tui.jobs.outcome import finish_fields, kohya_finish_fields, last_output


@dataclass
class Attempt:
    run_dir: str
    id: str = "j-0007"
    started: float | None = None
    stop_requested: float | None = None
    pid: int | None = None
    log_path: str | None = None


def run_with(tmp_path, *events: tuple[str, dict]) -> RunFolder:
    run = RunFolder(tmp_path / "run")
    with EventWriter(run.path) as ev:
        for type_, fields in events:
            ev.emit(type_, **fields)
    return run


def test_done_names_the_last_lora_not_the_state(tmp_path):
    run = run_with(tmp_path, (EventType.SAVE, {"path": "/r/mira.safetensors"}),
                   (EventType.SAVE, {"path": "/r/state", "kind": STATE_SAVE}))
    fields = finish_fields(Attempt(str(run.path)), 0, now=5.0)
    assert fields == {"status": "done", "exit_code": 0, "ended": 5.0,
                      "last_message": "done: /r/mira.safetensors"}


def test_stopped_says_where_and_how_to_resume(tmp_path):
    run = run_with(tmp_path, (EventType.STEP, {"step": 12, "total_steps": 40, "loss": 0.1}))
    fields = finish_fields(Attempt(str(run.path)), 3)
    assert fields["status"] == "stopped"
    assert fields["last_message"] == ("stopped at step 12/40; state saved, resume with "
                                      "`lorabake jobs resume j-0007`")
    early = finish_fields(Attempt(str(run.path), stop_requested=1.0), -signal.SIGTERM)
    assert early["status"] == "stopped" and "during start-up" in early["last_message"]


def test_failed_uses_this_attempts_error_else_the_log(tmp_path):
    run = run_with(tmp_path, (EventType.ERROR, {"message": "old attempt's error", "t": 10.0}))
    run.stdout_log.write_text(f"{RUNNER_PREFIX} j-0007] cmd\nTraceback\nValueError: bad\n")
    now = time.time()
    this = Attempt(str(run.path), started=now)
    fields = finish_fields(this, 4)
    assert fields["status"] == "failed" and fields["exit_code"] == 4
    lines = fields["last_message"].splitlines()
    assert lines[0] == "failed: exit 4 (out of memory)"
    assert lines[1:] == ["Traceback", "ValueError: bad"]  # not the runner's line, not t=10
    with EventWriter(run.path) as ev:
        ev.emit(EventType.ERROR, message="CUDA out of memory")
    assert finish_fields(this, 4)["last_message"].splitlines()[1:] == ["CUDA out of memory"]
    assert finish_fields(this, -9)["status"] == "crashed"
    assert "killed by SIGKILL" in finish_fields(this, -9)["last_message"]


def test_no_exit_code_trusts_the_trainers_end_event_of_this_attempt(tmp_path):
    run = run_with(tmp_path, (EventType.END, {"status": EndStatus.STOPPED, "message": "bye",
                                              "t": 10.0}))
    assert finish_fields(Attempt(str(run.path), started=11.0), None)["status"] == "stopped"
    # an end written by an earlier attempt says nothing about this one
    later = finish_fields(Attempt(str(run.path), started=time.time()), None)
    assert later["status"] == "crashed" and "no exit code" in later["last_message"]


def test_last_output_reads_the_log_written_last(tmp_path):
    run = RunFolder(tmp_path)
    assert last_output(run.path) == []
    run.train_log.write_text("step 1\nstep 2\n")
    run.stdout_log.write_text("Traceback\nOSError: disk full\n")
    old = time.time() - 100
    os.utime(run.train_log, (old, old))
    assert last_output(run.path) == ["Traceback", "OSError: disk full"]
    os.utime(run.stdout_log, (old - 10, old - 10))
    assert last_output(run.path, n=1) == ["step 2"]


def test_a_kohya_run_ends_by_its_log(tmp_path):
    log = tmp_path / "k.log"
    log.write_text("running training\nsteps:  50%|##  | 1/2 [00:01<00:01, 1.0it/s]\n")
    job = Attempt(str(tmp_path), log_path=str(log))
    assert kohya_finish_fields(job) is None  # no process to watch, the log says nothing yet
    assert kohya_finish_fields(Attempt(str(tmp_path), log_path=str(log), pid=42,
                                       stop_requested=1.0))["status"] == "stopped"
    with log.open("a") as fh:
        fh.write("model saved.\n")
    assert kohya_finish_fields(job, now=3.0) == {"status": "done", "ended": 3.0,
                                                 "last_message": "kohya run done"}
