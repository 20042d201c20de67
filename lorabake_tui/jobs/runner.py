"""The wrapper every job runs in: `python -m lorabake_tui.jobs.runner JOB_ID --db PATH`.

Only a process's parent can learn its exit status, and the process that started a job (the
UI, the CLI, the supervisor) may be long gone when the trainer ends. So the runner starts
the trainer as its own child, waits for it, writes RUN_DIR/exit_code (atomically; the name
is core/run/folder.py's) and records the outcome in the registry. If the runner itself is
killed, reconcile() finds the job's processes gone with no exit code and marks it crashed.

A stop request (SIGTERM or SIGINT to the runner) is passed on to the trainer only, which
finishes its step, saves its state and exits 3. Signalling the whole process group instead
would also hit the trainer's data-loader workers, and the trainer could not finish its step.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ..core.run.launch import trainer_args
from .logs import RUNNER_PREFIX
from .outcome import describe_exit, finish_fields
from .procs import create_time
from .spawn import trainer_command
from .store import ACTIVE, Registry

NO_TRAINER = 127  # like a shell: the command could not be started


def _say(job_id: str, text: str) -> None:
    # goes to RUN_DIR/stdout.log, between the trainer's own output
    print(f"{RUNNER_PREFIX} {job_id}] {text}", flush=True)


def run(job_id: str, db: Path) -> int:
    reg = Registry(db, reconcile=False)
    job = reg.find(job_id)
    if job is None:
        _say(job_id, f"no such job in {db}")
        return 2
    reg.transition(job.id, ACTIVE, pid=os.getpid(), pid_ctime=create_time(os.getpid()),
                   pgid=os.getpgrp())
    run = job.folder
    cmd = list(job.command or trainer_command())
    cmd += trainer_args(resume=run.path) if job.resume else \
        trainer_args(config=job.config, run_dir=run.path)

    child: list[subprocess.Popen] = []
    pending: list[int] = []

    def on_signal(signum, _frame) -> None:
        if child and child[0].poll() is None:
            child[0].send_signal(signal.SIGTERM)
            _say(job.id, f"{signal.Signals(signum).name}: asked the trainer to stop")
        else:
            pending.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _say(job.id, shlex.join(cmd))
    try:
        child.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, close_fds=True))
    except OSError as exc:
        _say(job.id, f"cannot start the trainer: {exc}")
        code = NO_TRAINER
    else:
        proc = child[0]
        if pending:
            proc.send_signal(signal.SIGTERM)
        reg.transition(job.id, ACTIVE, child_pid=proc.pid, child_ctime=create_time(proc.pid))
        code = proc.wait()
    run.write_exit_code(code)
    _record(reg, job.id, code)
    _say(job.id, f"trainer ended: {describe_exit(code)}")
    reg.close()
    return 0


def _record(reg: Registry, job_id: str, code: int) -> None:
    """Write the outcome, retrying while another process holds the database a long time; if
    it never works, reconcile() reads RUN_DIR/exit_code instead."""
    deadline = time.monotonic() + 120
    while True:
        try:
            job = reg.get(job_id)
            reg.transition(job_id, ACTIVE, **finish_fields(job, code))
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                return
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lorabake_tui.jobs.runner")
    p.add_argument("job_id")
    p.add_argument("--db", type=Path, required=True)
    args = p.parse_args(argv)
    return run(args.job_id, args.db)


if __name__ == "__main__":
    sys.exit(main())
