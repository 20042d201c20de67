"""Starting detached processes: a job's runner, and the queue supervisor.

Both get their own session (so closing the terminal, an SSH drop or Ctrl+C in the UI never
reaches them), stdin from /dev/null, output to a file (a pipe would block them once the
reader is gone) and no inherited file descriptors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..core.base.errors import LorabakeError
from .procs import create_time
from .store import ACTIVE, Job, Registry

TRAINER_ENV = "LORABAKE_TRAINER_CMD"
RENDER_ENV = "LORABAKE_RENDER_CMD"


def trainer_command() -> list[str]:
    """The trainer's argv before its arguments (core/run/launch.py's trainer_args);
    $LORABAKE_TRAINER_CMD (split like a shell would) replaces it, e.g. for tests."""
    import shlex

    custom = os.environ.get(TRAINER_ENV, "").strip()
    return shlex.split(custom) if custom else [sys.executable, "-m", "lorabake_tui.trainer"]


def render_command() -> list[str]:
    """The render process's argv before REQUEST.json --run-dir DIR (the trainer's argument
    shape, so the runner starts both alike); $LORABAKE_RENDER_CMD replaces it for tests."""
    import shlex

    custom = os.environ.get(RENDER_ENV, "").strip()
    return shlex.split(custom) if custom else [sys.executable, "-m", "lorabake_tui.trainer.render"]


def _reap_later(proc: subprocess.Popen) -> None:
    # a long-lived parent (the UI) must wait() for its children or they stay zombies
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def detached(argv: list[str], *, log: Path, cwd: Path | str | None = None,
             env: dict[str, str] | None = None) -> tuple[subprocess.Popen, float | None]:
    """Start `argv` detached; the process and its start time (read before it can be reaped,
    so that a pid is never recorded without the identity that goes with it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True, close_fds=True)
    ctime = create_time(proc.pid)
    _reap_later(proc)
    return proc, ctime


def launch(reg: Registry, job: Job) -> Job:
    """Start the runner of a job already marked running (claimed) in the registry. On
    failure the job becomes failed and LorabakeError says why."""
    run = job.folder
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if job.gpus:
        env["CUDA_VISIBLE_DEVICES"] = job.gpus
    cwd = job.workdir if job.workdir and Path(job.workdir).is_dir() else run.path
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        run.clear_exit_code()  # an earlier attempt's in this run dir must not be read as ours
        proc, ctime = detached([sys.executable, "-m", "lorabake_tui.jobs.runner", job.id,
                                "--db", str(reg.path)], log=run.stdout_log, cwd=cwd, env=env)
    except OSError as exc:
        msg = f"could not start: {exc.strerror or exc}"
        reg.transition(job.id, ACTIVE, status="failed", ended=time.time(), last_message=msg)
        raise LorabakeError(f"{job.id}: {msg}") from None
    if ctime is not None:
        # the runner records the same values itself; whichever write comes first is fine
        reg.transition(job.id, ACTIVE, pid=proc.pid, pid_ctime=ctime, pgid=proc.pid)
    return reg.get(job.id)


def spawn_supervisor(db: Path) -> subprocess.Popen:
    proc, _ = detached([sys.executable, "-m", "lorabake_tui.jobs.supervisor", "--db", str(db)],
                       log=db.parent / "supervisor.log", cwd=db.parent)
    return proc
