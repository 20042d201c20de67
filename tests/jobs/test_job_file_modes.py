"""The modes of what the job system creates, under umask 022: the registry, its lock and logs
0644 like every file lorabake makes, except where a mode is the point: the state dir is 0700
(the XDG base-directory spec's mode for it) and a job's config snapshot 0444 (immutable)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lorabake_tui.jobs import control
from lorabake_tui.jobs.supervisor import try_lock

from .test_jobs import jobenv, make_config, wait_status  # noqa: F401 - jobenv is a fixture


def modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.lstat().st_mode)
            for p in sorted(root.rglob("*"))}


@pytest.mark.usefixtures("jobenv")
def test_registry_lock_logs_and_run_files_get_the_default_modes(tmp_path, umask):
    sdir = tmp_path / "state"  # the jobenv fixture's state dir
    cfg = make_config(tmp_path / "cfgs", steps=2, delay=0.01)
    job = wait_status(control.submit(str(cfg)).id, "done")
    os.close(try_lock(sdir))  # the supervisor's lock, as a supervisor takes it
    state = {n: m for n, m in modes(sdir).items() if not n.endswith(("-wal", "-shm"))}
    snapshot = Path(job.config).relative_to(sdir).as_posix()
    assert stat.S_IMODE(sdir.stat().st_mode) == 0o700
    assert state.pop(snapshot) == 0o444
    assert state == {"configs": 0o755, "jobs.sqlite": 0o644, "supervisor.lock": 0o644} | (
        {"supervisor.log": 0o644} if "supervisor.log" in state else {})
    run = modes(Path(job.run_dir))
    assert run["stdout.log"] == 0o644
    assert run["exit_code"] == 0o644
