"""Worker pools end with their owner: real processes killed with SIGKILL, the parent that dies
before the worker arms prctl, a cancel that ends running work at once, workers that hold
none of the caller's output, and StopSignals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from lorabake_tui.core.base.workers import StopSignals, run_tasks

from ...support.paths import REPO

LINUX = sys.platform.startswith("linux")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids, timeout: float = 5.0) -> list[int]:
    """The pids still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if not gone(p)]
        if not left:
            return []
        time.sleep(0.02)
    return [p for p in pids if not gone(p)]


OWNER = textwrap.dedent("""
    import sys, threading, time
    from lorabake_tui.core.base import workers

    method, how = sys.argv[1], sys.argv[2]
    if how == "watchdog":  # as on a system without prctl
        workers._set_parent_death_signal = lambda: False
    if method == "forkserver":  # a second thread: the pool must not fork this process
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    pool = workers.new_pool(2)
    assert pool._mp_context.get_start_method() == method
    futures = [pool.submit(time.sleep, 600) for _ in range(2)]
    while len(workers.worker_pids(pool)) < 2:
        time.sleep(0.01)
    time.sleep(0.3)  # the initializers have run
    print(" ".join(map(str, workers.worker_pids(pool))), flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("method, how", [("fork", "prctl"), ("fork", "watchdog"),
                                         ("forkserver", "sentinel")])
def test_workers_die_with_an_owner_killed_by_sigkill(method, how):
    if how == "prctl" and not LINUX:
        pytest.skip("prctl is Linux only")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, method, how], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2 and not any(gone(p) for p in pids)
        owner.kill()
        t0 = time.monotonic()
        assert wait_gone(pids) == [], f"workers outlived their owner ({how}, {method})"
        # nothing holds the owner's output open any more: the reader gets EOF
        _, err = owner.communicate(timeout=5)
        assert owner.returncode == -signal.SIGKILL and b"Traceback" not in err
        assert time.monotonic() - t0 < 5
    finally:
        owner.kill()
        owner.wait()


RACE = textwrap.dedent("""
    import os, sys, time
    from lorabake_tui.core.base import workers

    marker, prctl = sys.argv[1], sys.argv[2] == "prctl"
    owner = os.getpid()
    pid = os.fork()
    if pid == 0:
        # a worker whose parent dies before it gets to arm the death signal
        while os.getppid() == owner:
            time.sleep(0.005)
        workers.tie_to_parent(owner, True, prctl=prctl)
        open(marker, "w").write("survived its parent")
        os._exit(0)
    print(pid, flush=True)
    os._exit(0)
""")


@pytest.mark.parametrize("how", ["prctl", "watchdog"])
def test_a_worker_whose_parent_died_before_it_started_ends(tmp_path, how):
    marker = tmp_path / "survived"
    p = subprocess.run([sys.executable, "-c", RACE, str(marker), how], env=_env(),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert wait_gone([int(p.stdout)]) == []
    assert not marker.exists()


def _output_targets(_: object) -> tuple[str, str]:
    return os.readlink("/proc/self/fd/1"), os.readlink("/proc/self/fd/2")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_workers_hold_none_of_the_callers_output():
    assert run_tasks(_output_targets, [0, 1, 2, 3], workers=2) == [(os.devnull,) * 2] * 4


def _sigterm_is_default(_: object) -> bool:
    return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_workers_do_not_keep_the_owners_sigterm_handler():
    # a fork copies StopSignals' handler, which would only record the signal: the pool's
    # terminate() must end a worker
    with StopSignals():
        assert run_tasks(_sigterm_is_default, [0, 1], workers=2) == [True, True]


def test_a_cancel_ends_running_work_at_once():
    before = {c.pid for c in psutil.Process().children()}
    seen: set[int] = set()
    t0 = time.monotonic()

    def cancelled() -> bool:
        seen.update(c.pid for c in psutil.Process().children() if c.pid not in before)
        return len(seen) >= 2 and time.monotonic() - t0 > 0.5

    # each task sleeps 30 s: waiting for the running ones would take that long
    assert run_tasks(time.sleep, [30.0] * 4, workers=2, cancelled=cancelled) is None
    assert time.monotonic() - t0 < 8
    assert len(seen) >= 2 and wait_gone(seen) == []  # 2 s was short on a loaded machine


def test_results_keep_their_order_and_a_cancel_before_the_start_runs_nothing():
    assert run_tasks(abs, list(range(-20, 17)), workers=2) == [abs(i) for i in range(-20, 17)]
    before = {c.pid for c in psutil.Process().children()}
    assert run_tasks(abs, [1, 2, 3], workers=2, cancelled=lambda: True) is None
    assert {c.pid for c in psutil.Process().children()} <= before


def test_stop_signals_records_sigterm_and_sigint_and_restores_the_handlers():
    old_term, old_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # the first one counts
        time.sleep(0.05)
        assert stop() and stop.signum == signal.SIGTERM
        assert stop.exit_code == 143 and stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == old_term
    assert signal.getsignal(signal.SIGINT) == old_int
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert stop.exit_code == 130
