"""Worker process pools that never outlive the process that owns them, and a prompt stop.

`run_tasks(fn, items, workers=N)` maps `fn` over `items` in N processes (results in order).
Each worker ties its life to its parent when it starts (the pool's initializer):

- Linux: prctl(PR_SET_PDEATHSIG, SIGKILL), so the kernel kills the worker when its parent
  dies, even by SIGKILL; then getppid() is compared with the expected parent, because a
  parent that died before the prctl call would never send the signal;
- elsewhere: a daemon thread polls getppid() every `WATCH_S` seconds and exits when it
  changes;
- forkserver start method (a process with threads: the workbench): the parent is the fork
  server, which lives on as long as any of its children does, so the worker watches the
  owner itself: a daemon thread waits on the pipe that multiprocessing gives each child
  from its owner, which reaches EOF when the owner is gone.

A worker's stdout and stderr point at /dev/null: it never prints (its results and errors go
back through the pool), and a caller reading the command's output must see EOF when the
command ends, whatever the workers are doing. It ignores SIGINT (ctrl+c reaches the whole
process group; the owner decides) and Python warnings (nothing raw reaches a terminal).

`cancelled()` is polled every `POLL_S` seconds as well as between results; once it says
yes, the workers are terminated at once (a chunk in progress is thrown away, nothing waits
for it) and run_tasks returns None. `StopSignals` turns SIGINT/SIGTERM into such a
`cancelled()` for a command line run: the signal is recorded, never raised in the middle of
a write, and the command decides what its exit code is.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import LorabakeError

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

POLL_S = 0.1  # how often a running pool checks cancelled() while no result comes back
WATCH_S = 0.5  # how often a worker without prctl checks that its parent is still there
STOP_S = 2.0  # how long a terminated worker may take to go before it is killed
_PR_SET_PDEATHSIG = 1


# ---- in the worker ---------------------------------------------------------------------------

@functools.cache
def _prctl():
    """libc's prctl, loaded once; the owner loads it before it forks its workers, so that
    they inherit it instead of each importing ctypes (milliseconds apiece). None where it
    is not available (another OS, a libc without prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where it cannot."""
    prctl = _prctl()
    return prctl is not None and prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quiet_output() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)


def _watch_owner(sentinel: int) -> None:
    from multiprocessing.connection import wait as wait_ready

    wait_ready([sentinel])
    os._exit(1)


def tie_to_parent(owner: int, direct: bool, *, prctl: bool = True) -> str:
    """End this process with the process that made its pool; returns how ("prctl",
    "watchdog" or "sentinel"). `direct`: `owner` is also our parent (fork, spawn), else the
    parent is a fork server. `prctl=False` forces the portable watchdog (tests)."""
    if not direct:
        # A fork server outlives its owner while any of its children holds the "alive"
        # pipe, and every child does. But the pipe multiprocessing gives each child from
        # the owner alone reaches EOF when the owner is gone (at once if it already is).
        parent = multiprocessing.parent_process()
        if parent is not None and parent.pid == owner:
            threading.Thread(target=_watch_owner, args=(parent.sentinel,), daemon=True,
                             name="lorabake-owner-watch").start()
            return "sentinel"
    parent_pid = owner if direct else os.getppid()
    how = "prctl" if prctl and _set_parent_death_signal() else "watchdog"
    # the parent may have died before the signal was armed: then it will never come
    if os.getppid() != parent_pid or not _alive(owner):
        os._exit(1)
    if how == "watchdog":
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="lorabake-parent-watch").start()
    return how


def _init_worker(owner: int, direct: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a fork copies the owner's handlers: its StopSignals must not keep a worker alive
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _quiet_output()
    warnings.simplefilter("ignore")
    tie_to_parent(owner, direct)


def _run_chunk(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [fn(x) for x in items]


# ---- in the owner ----------------------------------------------------------------------------

def mp_context():
    """fork (cheapest) for a single-threaded process; a fork of a process with threads (the
    workbench, a loaded onnxruntime session) may deadlock in the child, so then forkserver
    where there is one, else spawn."""
    methods = multiprocessing.get_all_start_methods()
    if ("fork" in methods and threading.active_count() == 1
            and "onnxruntime" not in sys.modules):
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    _start_mp_helpers(ctx.get_start_method())
    return ctx


def _start_mp_helpers(method: str) -> None:
    """multiprocessing hands sys.stderr's descriptor to its helper processes (resource
    tracker, fork server). Inside the workbench Textual has replaced sys.stderr with an object
    whose fileno() is not a descriptor, and starting them fails ("bad value(s) in
    fds_to_keep"). Start them with the real stderr; later pools reuse them."""
    from multiprocessing import forkserver, resource_tracker

    saved = sys.stderr
    try:
        try:
            usable = sys.stderr is not None and sys.stderr.fileno() >= 0
        except (AttributeError, OSError, ValueError):
            usable = False
        if not usable and sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
        if method == "forkserver":
            forkserver.ensure_running()
    finally:
        sys.stderr = saved


def new_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers end with this process (see the module docstring)."""
    ctx = mp_context()
    direct = ctx.get_start_method() != "forkserver"
    if ctx.get_start_method() == "fork":
        _prctl()
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                               initializer=_init_worker, initargs=(os.getpid(), direct))


def worker_pids(pool: ProcessPoolExecutor) -> list[int]:
    return list(getattr(pool, "_processes", None) or {})


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now, without waiting for running work.
    (Python 3.14 has terminate_workers(); before it the pool's process table is the only
    handle on them.)"""
    from multiprocessing.connection import wait as wait_ready

    procs = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(OSError, ValueError):
            p.terminate()
    # wait on the sentinels, not join(): the pool's manager thread reaps the workers
    waiting = {p.sentinel: p for p in procs}
    deadline = time.monotonic() + STOP_S
    while waiting and (left_s := deadline - time.monotonic()) > 0:
        for ready in wait_ready(list(waiting), left_s):
            waiting.pop(ready)  # type: ignore[call-overload]
    for p in waiting.values():
        with contextlib.suppress(OSError, ValueError):
            p.kill()
    if manager is not None:
        manager.join(STOP_S)  # it marks the futures broken, closes the queues, joins
    else:
        for p in procs:
            p.join(STOP_S)


class _Cancelled(Exception):
    pass


def run_tasks(fn: Callable[[Any], Any], items: Sequence[Any], *, workers: int = 1,
              progress: ProgressFn | None = None, cancelled: CancelFn | None = None
              ) -> list[Any] | None:
    """`fn` over `items`, results in order; None if `cancelled()` said so (nothing more is
    submitted, the workers are ended and what came back is discarded). `workers` > 1 uses a
    process pool fed in chunks, with a bounded number of chunks in flight. `fn` must be a
    module-level function (it is pickled)."""
    total = len(items)
    if workers <= 1 or total <= 1:
        return _run_here(fn, items, progress, cancelled)
    if cancelled is not None and cancelled():
        return None
    results: list[Any] = [None] * total
    done = 0
    chunk = max(1, min(16, total // (workers * 4)))
    starts = list(range(0, total, chunk))
    pool = new_pool(min(workers, len(starts)))
    pending: dict[Any, int] = {}
    queue = iter(starts)

    def submit(n: int) -> None:
        for _ in range(n):
            start = next(queue, None)
            if start is None:
                return
            pending[pool.submit(_run_chunk, fn, items[start:start + chunk])] = start

    def stop_asked() -> bool:
        return cancelled is not None and cancelled()

    finished_ok = False
    try:
        submit(workers * 2)
        while pending:
            if stop_asked():
                raise _Cancelled
            finished, _ = wait(list(pending), timeout=POLL_S, return_when=FIRST_COMPLETED)
            for fut in finished:
                start = pending.pop(fut)
                for k, r in enumerate(fut.result()):
                    results[start + k] = r
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    if stop_asked():
                        raise _Cancelled
            submit(len(finished))
        finished_ok = True
    except _Cancelled:
        return None
    except BrokenProcessPool as exc:
        if stop_asked():  # a signal to the whole process group ended the workers too
            return None
        raise LorabakeError("an image worker process died (out of memory, or a decoder "
                            "crashed)", "nothing was changed; try --workers 1") from exc
    finally:
        if finished_ok:
            pool.shutdown(wait=True)
        else:
            stop_pool(pool)
    return results


def _run_here(fn: Callable[[Any], Any], items: Sequence[Any], progress: ProgressFn | None,
              cancelled: CancelFn | None) -> list[Any] | None:
    total = len(items)
    results: list[Any] = [None] * total
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in a worker: nothing raw reaches the terminal
        for i, item in enumerate(items):
            if cancelled is not None and cancelled():
                return None
            results[i] = fn(item)
            if progress is not None:
                progress(i + 1, total)
    return results


# ---- stopping a command line run ---------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While active, SIGINT and SIGTERM are recorded instead of ending the process; the object
    is a `cancelled()` callable for run_tasks and apply functions. Work that is writing (a
    journal entry) finishes first, so nothing is left half done. `exit_code`: 128 + the
    signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a process the signal
    ended. Outside the main thread (where handlers cannot be set) it does nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _record(self, signum: int, _frame: Any) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._saved[s] = signal.signal(s, self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._saved.items():
            signal.signal(s, old)
        self._saved.clear()


__all__ = ["POLL_S", "STOP_SIGNALS", "StopSignals", "mp_context", "new_pool", "run_tasks",
           "stop_pool", "tie_to_parent", "worker_pids"]
