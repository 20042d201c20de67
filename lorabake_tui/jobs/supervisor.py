"""The queue supervisor: a small detached process that starts queued jobs as GPU lanes come
free, so the queue goes on with no UI or terminal attached.

`python -m lorabake_tui.jobs.supervisor [--db PATH]`. One runs at a time (an flock on
`supervisor.lock` in the state dir); submit and queue operations start it on demand
(`ensure_supervisor`), and it exits once nothing is queued or running. Jobs sharing a GPU
(same `gpus`, or overlapping sets like "0,1" and "1") run one after another, in queue
order; others run side by side. A job that fails does not hold up the ones after it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sqlite3
import sys
import time
from pathlib import Path

from ..core.base.errors import LorabakeError
from .paths import db_path, ensure_state_dir, lock_path
from .spawn import launch, spawn_supervisor
from .store import ACTIVE, GPU_KINDS, Job, Registry

POLL_ENV = "LORABAKE_SUPERVISOR_POLL"
DEFAULT_POLL_S = 1.0


def gpu_set(gpus: str) -> frozenset[str]:
    """The GPUs a job holds; "" (the default device) is a lane of its own."""
    return frozenset(g for g in gpus.split(",")) if gpus else frozenset({""})


def try_lock(sdir: Path) -> int | None:
    """The supervisor lock's fd if we got it, else None (another supervisor holds it)."""
    # the umask's mode, as for every file lorabake makes (the state dir itself is 0700)
    fd = os.open(lock_path(sdir), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def supervisor_pid(sdir: Path) -> int | None:
    """The running supervisor's pid (None when none holds the lock)."""
    fd = try_lock(sdir)
    if fd is not None:
        os.close(fd)
        return None
    try:
        return int(lock_path(sdir).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _has_work(reg: Registry) -> bool:
    return bool(reg.queue() or reg.jobs(statuses=ACTIVE, kinds=GPU_KINDS))


def ensure_supervisor(reg: Registry) -> bool:
    """Start a supervisor unless one runs; True if one was started. Call it after the job
    was committed: a supervisor that is about to exit re-checks the queue after letting go
    of the lock, so a job queued meanwhile is never left without one."""
    if not reg.queue():
        return False
    sdir = reg.path.parent
    fd = try_lock(sdir)
    if fd is None:
        return False
    os.close(fd)
    spawn_supervisor(reg.path)
    return True


def start_ready(reg: Registry) -> list[Job]:
    """Claim and start the queued jobs whose GPUs are free, in queue order. A job that must
    wait reserves its GPUs so that later jobs do not overtake it."""
    picked: list[str] = []
    now = time.time()
    with reg.transaction() as db:
        busy: set[str] = set()
        for job in reg.jobs(statuses=ACTIVE, kinds=GPU_KINDS):
            busy |= gpu_set(job.gpus)
        for job in reg.queue():
            lane = gpu_set(job.gpus)
            free = not (lane & busy)
            busy |= lane
            if free:
                db.execute("UPDATE jobs SET status = 'running', started = ?, position = NULL "
                           "WHERE id = ? AND status = 'queued'", (now, job.id))
                picked.append(job.id)
    started = []
    for job_id in picked:
        try:
            started.append(launch(reg, reg.get(job_id)))
        except LorabakeError as exc:
            print(f"supervisor: {exc}", flush=True)
    return started


def run(db: Path, *, poll: float = DEFAULT_POLL_S) -> int:
    sdir = db.parent
    fd = try_lock(sdir)
    if fd is None:
        return 0  # another supervisor has it
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    reg = Registry(db, reconcile=False)
    try:
        while True:
            try:
                reg.reconcile()
                for job in start_ready(reg):
                    print(f"supervisor: started {job.id} ({job.name}) in {job.run_dir}",
                          flush=True)
                if not _has_work(reg):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    # a submitter that saw the lock held counts on this second look
                    if not _has_work(reg):
                        return 0
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        return 0  # a new supervisor took over
            except sqlite3.OperationalError as exc:  # locked for longer than the timeout
                print(f"supervisor: registry busy ({exc}); retrying", flush=True)
            time.sleep(poll)
    finally:
        reg.close()
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lorabake_tui.jobs.supervisor")
    p.add_argument("--db", type=Path, default=None, help="jobs.sqlite (default: state dir)")
    p.add_argument("--poll", type=float, default=None, help="seconds between checks")
    args = p.parse_args(argv)
    poll = args.poll or float(os.environ.get(POLL_ENV) or DEFAULT_POLL_S)
    return run(args.db or db_path(ensure_state_dir()), poll=poll)


if __name__ == "__main__":
    sys.exit(main())
