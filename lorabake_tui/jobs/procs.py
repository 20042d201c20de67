"""Process-table checks. A pid alone is not an identity (the kernel reuses pids), so a
process is ours only if its start time matches the one recorded when we started it."""

from __future__ import annotations

import os
import signal

import psutil

# create_time is boot time + start ticks: stable for one process, so a tiny tolerance suffices
_CTIME_TOLERANCE = 0.05


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_alive(pid: int | None, ctime: float | None) -> bool:
    """True if `pid` runs and is the process started at `ctime` (None: any start time).
    Zombies count as dead: they have exited, only their parent has not reaped them yet."""
    if not pid or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if ctime is not None and abs(proc.create_time() - ctime) > _CTIME_TOLERANCE:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by someone else; the ctime check above already passed


def send(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def send_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_name(code: int) -> str:
    """'SIGKILL' for a Popen returncode of -9."""
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
