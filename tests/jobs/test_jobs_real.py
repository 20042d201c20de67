"""Jobs end to end with the real trainer (builtin:tiny-sd15 on CPU), and a job that outlives
the workbench and the tmux session it was started from."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorabake_tui.core.run.event_reader import read_all_events
from lorabake_tui.jobs import control

from ..support.train_fixtures import make_dataset, write_config
from .test_jobs import FAKE, job_now, jobenv, wait_for, wait_status  # noqa: F401

pytest.importorskip("torch")


def steps_in(run_dir: Path) -> list[int]:
    return [e["step"] for e in read_all_events(run_dir / "events.jsonl") if e["type"] == "step"]


@pytest.mark.usefixtures("jobenv")
def test_real_trainer_detached_stop_and_resume(tmp_path, monkeypatch):
    monkeypatch.delenv("LORABAKE_TRAINER_CMD")  # the real `python -m lorabake_tui.trainer`
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    make_dataset(tmp_path, images=4)
    cfg = write_config(tmp_path, general__epochs=100, general__max_steps=40)
    job = control.submit(cfg, start=True)
    run_dir = Path(job.run_dir)
    wait_for(lambda: (run_dir / "events.jsonl").exists() and steps_in(run_dir), 120,
             "the first steps")
    control.stop(job.id)
    stopped = wait_status(job.id, ("stopped", "done", "failed", "crashed"), timeout=120)
    assert stopped.status == "stopped" and stopped.exit_code == 3 and stopped.has_state
    at = json.loads((run_dir / "state" / "progress.json").read_text())["step"]
    assert 1 <= at < 40
    resumed = control.resume(job.id)
    done = wait_status(resumed.id, ("done", "failed", "crashed"), timeout=180)
    assert done.status == "done", (run_dir / "train.log").read_text()[-2000:]
    assert steps_in(run_dir) == list(range(1, 41))  # continued from the saved step, no gap
    assert (run_dir / "tiny.safetensors").is_file()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
@pytest.mark.usefixtures("jobenv")
def test_a_job_outlives_the_workbench_and_its_tmux_session(tmp_path):
    from ..support.helpers import make_concept

    root = tmp_path / "ds"
    make_concept(root, "10_mira", 3)
    cfg = root / ".lorabake" / "training.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[general]\nbase_model = "builtin:tiny-sd15"\n[saving]\n'
                   f'output_dir = "{tmp_path / "runs"}"\noutput_name = "mira"\n'
                   "[fake]\nsteps = 80\ndelay = 0.05\n")
    session = f"lbtest{os.getpid()}"
    env = {k: os.environ[k] for k in ("LORABAKE_STATE_DIR", "LORABAKE_TRAINER_CMD",
                                      "LORABAKE_SUPERVISOR_POLL", "XDG_CONFIG_HOME")}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    ui = f"{exports} {shlex.quote(sys.executable)} -m lorabake_tui.cli {shlex.quote(str(root))}" \
         " --images none"
    subprocess.run(["tmux", "new", "-d", "-s", session, "-x", "160", "-y", "48", ui],
                   check=True)
    try:
        from lorabake_tui.jobs.store import Registry

        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True).stdout

        wait_for(lambda: "Concepts" in screen(), 60, "the workbench")
        subprocess.run(["tmux", "send-keys", "-t", session, "5"], check=True)
        wait_for(lambda: "Jobs" in screen(), 30, "the Train screen")
        subprocess.run(["tmux", "send-keys", "-t", session, "a"], check=True)

        def running():
            with Registry() as reg:
                jobs = reg.jobs()
            return jobs and jobs[0].status == "running" and jobs[0]
        job = wait_for(running, 60, "the job to start")
    finally:
        # the UI process and the session that held it go away
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    time.sleep(0.5)
    assert job_now(job.id).status == "running"
    done = wait_status(job.id, ("done", "failed", "crashed"), timeout=60)
    assert done.status == "done"
    assert steps_in(Path(done.run_dir))[-1] == 80
