"""Jobs: detached runs, stop/resume, crash detection, the queue and its lanes, the CLI, and
JobHistory. Real processes (the runner, the supervisor) run tests/fake_trainer.py; every wait
polls against a deadline so a broken test fails instead of hanging."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorabake_tui.cli import main as cli_main
from lorabake_tui.cli.jobs import attach_plain
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.run.event_reader import last_event, read_all_events
from lorabake_tui.jobs import control
from lorabake_tui.jobs.history import JobHistory
from lorabake_tui.jobs.logs import tail_lines
from lorabake_tui.jobs.notify import FinishWatcher, finish_message, progress_line
from lorabake_tui.jobs.procs import create_time, is_alive
from lorabake_tui.jobs.store import Registry
from lorabake_tui.jobs.supervisor import gpu_set, supervisor_pid

from ..support.paths import FAKE_TRAINER, REPO

FAKE = FAKE_TRAINER
ROOT = REPO


@pytest.fixture
def jobenv(tmp_path, monkeypatch):
    """A private state dir, the fake trainer, a fast supervisor; afterwards, every process the
    test left running is killed."""
    state = tmp_path / "state"
    monkeypatch.setenv("LORABAKE_STATE_DIR", str(state))
    monkeypatch.setenv("LORABAKE_TRAINER_CMD", shlex.join([sys.executable, str(FAKE)]))
    monkeypatch.setenv("LORABAKE_SUPERVISOR_POLL", "0.1")
    yield state
    if not (state / "jobs.sqlite").exists():
        return
    pid = supervisor_pid(state)
    if pid:
        os.kill(pid, signal.SIGKILL)
    with Registry(state / "jobs.sqlite", reconcile=False) as reg:
        for job in reg.jobs(statuses=("running", "stopping")):
            if job.pid and job.pid != os.getpid() and is_alive(job.pid, job.pid_ctime):
                os.killpg(job.pgid or job.pid, signal.SIGKILL)
            if job.child_pid and is_alive(job.child_pid, job.child_ctime):
                os.kill(job.child_pid, signal.SIGKILL)


def wait_for(pred, timeout: float = 20.0, what: str = "condition", interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def job_now(job_id: str):
    with Registry() as reg:  # opening reconciles, as the UI and the CLI do
        return reg.get(job_id)


def wait_status(job_id: str, statuses, timeout: float = 20.0):
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    return wait_for(lambda: (j := job_now(job_id)).status in statuses and j, timeout,
                    f"{job_id} to become {'/'.join(statuses)}")


def wait_step(job, at_least: int, timeout: float = 20.0) -> dict:
    def step():
        ev = last_event(job.events_path, "step")
        return ev if ev and ev["step"] >= at_least else None
    return wait_for(step, timeout, f"{job.id} to reach step {at_least}")


def make_config(folder: Path, name: str = "mira", **fake) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fake.setdefault("steps", 5)
    fake.setdefault("delay", 0.02)
    lines = ["[general]", 'base_model = "builtin:tiny-sd15"', "", "[saving]",
             'output_dir = "out"', f'output_name = "{name}"', "", "[data]",
             'train_dir = "dataset"', "", "[fake]"]
    for key, value in fake.items():
        lines.append(f"{key} = {json.dumps(value)}")
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli_out(argv: list[str]) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(argv) == 0
    return buf.getvalue()


def step_numbers(run_dir: Path) -> list[int]:
    return [e["step"] for e in read_all_events(run_dir / "events.jsonl") if e["type"] == "step"]


# ---- starting, stopping, resuming ----------------------------------------------------------

def test_a_job_outlives_the_process_that_started_it(jobenv, tmp_path):
    cfg = make_config(tmp_path / "cfgs", steps=40, delay=0.05)
    code = ("import sys; from lorabake_tui.jobs import control; "
            f"print(control.submit({str(cfg)!r}).id)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()
    job = job_now(job_id)
    assert job.status == "running"  # its starter has exited; the job has not
    assert job.pid and job.pgid == job.pid
    assert os.getsid(job.pid) == job.pid  # a session of its own: no terminal hangup reaches it
    job = wait_status(job_id, "done")
    assert job.exit_code == 0 and job.ended >= job.started
    run_dir = Path(job.run_dir)
    assert run_dir.parent == tmp_path / "cfgs" / "out" and run_dir.name.startswith("mira-")
    assert (run_dir / "exit_code").read_text().strip() == "0"
    assert last_event(job.events_path, "end")["status"] == "done"
    assert "trainer ended: exit 0 (done)" in (run_dir / "stdout.log").read_text()
    start = json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])
    assert start["cwd"] == str(cfg.parent)  # the trainer runs in the config's folder
    snap = Path(job.config)
    assert snap.parent == jobenv / "configs" and snap.stat().st_mode & 0o222 == 0
    assert f'train_dir = "{cfg.parent / "dataset"}"' in snap.read_text()  # made absolute
    assert 'base_model = "builtin:tiny-sd15"' in snap.read_text()  # not a path: kept
    assert job.source == str(cfg)
    assert "fake.safetensors" in finish_message(job)


def test_stop_saves_state_and_resume_continues(jobenv, tmp_path):
    cfg = make_config(tmp_path, steps=60, delay=0.02)
    job = control.submit(cfg)
    wait_step(job, 5)
    stopping = control.stop(job.id)
    assert stopping.status in ("stopping", "stopped") and stopping.stop_requested
    job = wait_status(job.id, "stopped")
    assert job.exit_code == 3
    saved = int((Path(job.run_dir) / "state" / "step").read_text())
    assert 5 <= saved < 60
    assert f"at step {saved}/60" in job.last_message and "resume" in job.last_message
    assert "stopped" in finish_message(job)
    with pytest.raises(LorabakeError, match="not running"):
        control.stop(job.id)

    again = control.resume(job.id)
    # the same job, its second attempt: one row per run folder
    assert again.id == job.id and again.run_dir == job.run_dir and again.resume
    assert again.attempt == 2 and again.status == "running" and again.exit_code is None
    (first,) = again.attempts
    assert (first.status, first.exit_code) == ("stopped", 3)
    assert first.started == job.started and first.ended == job.ended
    assert f"at step {saved}/60" in first.message
    with pytest.raises(LorabakeError, match=f"{job.id} is running"):
        control.resume(job.id)  # one attempt at a time
    with Registry() as reg:
        assert [j.id for j in reg.jobs()] == [job.id]
    again = wait_status(job.id, "done")
    assert again.exit_code == 0 and again.attempt == 2 and again.started > first.ended
    steps = step_numbers(Path(job.run_dir))
    assert steps == list(range(1, 61)), "resume continues right after the saved step"
    starts = [json.loads(x) for x in job.events_path.read_text().splitlines()
              if '"start"' in x]
    assert [s["resumed_from"] for s in starts] == [0, saved]
    with pytest.raises(LorabakeError, match=f"{job.id} cannot be resumed: it finished"):
        control.resume(job.id)
    (row,) = json.loads(_cli_out(["jobs", "list", "--json"]))
    assert (row["id"], row["step"], row["attempt"]) == (job.id, 60, 2)
    assert [a["status"] for a in row["attempts"]] == ["stopped"]
    table = _cli_out(["jobs", "list"]).splitlines()
    assert table[0].split()[:4] == ["ID", "STATUS", "ATTEMPT", "PROGRESS"]
    assert table[1].split()[:4] == [job.id, "done", "2", "60/60"]
    # the dashboard's history holds both attempts' steps
    history = JobHistory.for_job(again)
    history.poll()
    assert list(history.steps) == list(range(1, 61))


def test_stop_wait_then_resume_as_the_help_shows(jobenv, tmp_path, capsys):
    # `lorabake jobs stop ID --wait && lorabake jobs resume ID`: stop returns once the job
    # has saved its state and ended, so the resume that follows is accepted
    job = control.submit(make_config(tmp_path, steps=40, delay=0.05))
    wait_step(job, 3)
    assert cli_main(["jobs", "stop", job.id, "--wait", "--timeout", "20"]) == 0
    assert job_now(job.id).status == "stopped"
    assert f"{job.id}: stopped" in capsys.readouterr().out
    assert cli_main(["jobs", "resume", job.id]) == 0
    assert job_now(job.id).attempt == 2
    wait_status(job.id, "done")


def test_stop_wait_gives_up_after_the_timeout(jobenv, tmp_path, capsys):
    stubborn = tmp_path / "stubborn.py"
    ready = tmp_path / "ready"
    stubborn.write_text("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
                        f"\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)\n")
    job = control.submit(make_config(tmp_path), trainer_cmd=[sys.executable, str(stubborn)])
    wait_for(ready.exists, 10, "the trainer to ignore SIGTERM")
    wait_for(lambda: job_now(job.id).child_pid, 10, "the trainer's pid")
    assert cli_main(["jobs", "stop", job.id, "--wait", "--timeout", "0.5"]) == 1
    assert "still stopping after 0.5 s" in capsys.readouterr().err
    assert job_now(job.id).status == "stopping"  # nothing killed without --force


def test_a_queued_resume_and_a_third_attempt(jobenv, tmp_path, capsys):
    # each attempt holds at its own step until it is stopped: 4, then 8; the third finishes
    job = control.submit(make_config(tmp_path, steps=12, delay=0.02, hold_at=[4, 8]))
    wait_step(job, 4)
    control.stop(job.id)
    wait_status(job.id, "stopped")
    assert cli_main(["jobs", "resume", job.id, "--queue"]) == 0
    out = capsys.readouterr().out
    assert f"{job.id}: attempt 2 continues the run in {job.run_dir}" in out
    assert f"queued {job.id}" in out  # the supervisor starts it: its GPU is free
    wait_step(job, 8)
    wait_status(job.id, "running")
    control.stop(job.id)
    second = wait_status(job.id, "stopped")
    assert second.attempt == 2 and second.position is None
    assert [a.status for a in second.attempts] == ["stopped"]
    assert int((Path(job.run_dir) / "state" / "step").read_text()) == 8
    third = control.resume(job.id)
    assert third.attempt == 3 and [a.status for a in third.attempts] == ["stopped", "stopped"]
    done = wait_status(job.id, "done")
    assert step_numbers(Path(job.run_dir)) == list(range(1, 13))
    assert "fake.safetensors" in finish_message(done)
    assert cli_main(["jobs", "resume", job.id]) == 1
    err = capsys.readouterr().err
    assert f"{job.id} cannot be resumed: it finished (done)" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _old_attempts(tmp_path: Path, *, later_status: str = "stopped"):
    """Rows as schema 1 left them: a stopped job and the new job its resume made, both in one
    run folder with a saved state."""
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "state" / "step").write_text("93\n")
    events = [{"type": "start", "t": 1.0, "total_steps": 200},
              {"type": "step", "t": 2.0, "step": 93, "total_steps": 200, "loss": 0.1},
              {"type": "end", "t": 3.0, "status": "stopped", "message": "stopped",
               "exit_code": 3}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    with Registry() as reg:
        first = reg.add(status="stopped", run_dir=str(run), name="mira", created=1.0,
                        started=1.0, ended=3.0, exit_code=3)
        later = reg.add(status=later_status, run_dir=str(run), name="mira", resume=True,
                        resume_of=first.id, created=4.0, started=4.0, ended=5.0)
    return run, first, later


def test_a_superseded_attempt_cannot_be_resumed(jobenv, tmp_path, capsys):
    run, first, later = _old_attempts(tmp_path)
    with pytest.raises(LorabakeError, match=f"{first.id} cannot be resumed: it is an earlier "
                       f"attempt of the run in {run}, which {later.id} continued"):
        control.resume(first.id)
    assert cli_main(["jobs", "resume", first.id]) == 1
    err = capsys.readouterr().err
    assert f"resume {later.id} instead" in err and len(err.strip().splitlines()) == 1
    with Registry() as reg:
        assert control.resume_refusal(reg, reg.get(later.id)) is None  # the latest one may
        assert reg.get(first.id).status == "stopped"  # nothing changed
    # two rows on one folder without resume_of (a second job pointed at it) count the same
    with Registry() as reg:
        other = reg.add(status="failed", run_dir=str(run), name="again", created=6.0)
        assert reg.superseded_by(reg.get(later.id)).id == other.id


def test_a_finished_run_cannot_be_resumed_by_an_older_attempt(jobenv, tmp_path, capsys):
    # the reported case: attempt 1 stopped, its resume (a job of its own) finished, then
    # `jobs resume` of attempt 1 re-trained from step 93 inside the finished run
    run, first, later = _old_attempts(tmp_path, later_status="done")
    with (run / "events.jsonl").open("a") as fh:
        fh.write(json.dumps({"type": "end", "t": 5.0, "status": "done", "message": "done",
                             "exit_code": 0}) + "\n")
    before = (run / "events.jsonl").read_bytes()
    assert cli_main(["jobs", "resume", first.id]) == 1
    err = capsys.readouterr().err
    assert f"{first.id} cannot be resumed" in err and f"{later.id} continued (done)" in err
    # and the run itself says it finished, whichever row asks: here the only row left
    with Registry() as reg:
        reg.delete(later.id)
    with pytest.raises(LorabakeError, match=f"{first.id} cannot be resumed: its run in "
                       f"{run} already finished"):
        control.resume(first.id)
    assert (run / "events.jsonl").read_bytes() == before and job_now(first.id).attempt == 1


def test_an_old_database_is_migrated_and_keeps_working(tmp_path):
    import sqlite3

    db = tmp_path / "jobs.sqlite"
    con = sqlite3.connect(db)
    con.executescript(SCHEMA_1 + "PRAGMA user_version = 1;")
    con.execute("INSERT INTO jobs (id, status, run_dir, created, exit_code) "
                "VALUES ('j-0001', 'stopped', '/runs/a', 1.0, 3)")
    con.commit()
    con.close()
    with Registry(db) as reg:
        job = reg.get("1")
        assert (job.status, job.exit_code, job.attempts, job.attempt) == ("stopped", 3, (), 1)
        assert reg._db.execute("PRAGMA user_version").fetchone()[0] == 2
        nxt = reg.begin_attempt(job.id, ("stopped",), start=False, now=10.0)
        assert nxt.attempt == 2 and nxt.status == "queued" and nxt.position == 1
        assert nxt.attempts[0].exit_code == 3 and nxt.exit_code is None
        assert reg.begin_attempt(job.id, ("stopped",), start=True) is None  # not stopped now
    with Registry(db) as reg:  # opened again: nothing to migrate, nothing lost
        assert reg.get("1").attempt == 2
    # what an older lorabake does: no attempts column named, and a damaged value
    con = sqlite3.connect(db)
    con.execute("INSERT INTO jobs (id, status, run_dir, created) "
                "VALUES ('j-0002', 'done', '/runs/b', 2.0)")
    con.execute("UPDATE jobs SET attempts = 'not json' WHERE id = 'j-0001'")
    con.commit()
    con.close()
    with Registry(db) as reg:
        assert reg.get("2").attempts == () and reg.get("1").attempts == ()


# the jobs table as schema 1 made it (before attempts)
SCHEMA_1 = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'lorabake', name TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
    run_dir TEXT NOT NULL DEFAULT '', log_path TEXT, workdir TEXT, command TEXT,
    gpus TEXT NOT NULL DEFAULT '', position INTEGER, resume INTEGER NOT NULL DEFAULT 0,
    resume_of TEXT, pid INTEGER, pid_ctime REAL, pgid INTEGER, child_pid INTEGER,
    child_ctime REAL, created REAL NOT NULL, started REAL, ended REAL, stop_requested REAL,
    exit_code INTEGER, last_message TEXT NOT NULL DEFAULT '');
CREATE INDEX jobs_status ON jobs(status);
"""


def test_killed_runner_and_trainer_show_as_crashed(jobenv, tmp_path):
    cfg = make_config(tmp_path, steps=2000, delay=0.02)
    job = control.submit(cfg)
    wait_step(job, 3)
    job = wait_for(lambda: (j := job_now(job.id)).child_pid and j, 10, "the trainer's pid")
    os.killpg(job.pgid, signal.SIGKILL)  # runner and trainer both, as kill -9 on the group
    wait_for(lambda: not is_alive(job.pid, job.pid_ctime) and
             not is_alive(job.child_pid, job.child_ctime), 10, "the processes to die")
    crashed = job_now(job.id)
    assert crashed.status == "crashed" and crashed.exit_code is None
    assert "no exit code" in crashed.last_message
    assert "step " in crashed.last_message  # its last output is kept
    assert crashed.ended is not None


def test_a_trainer_killed_by_a_signal_is_crashed(jobenv, tmp_path):
    job = control.submit(make_config(tmp_path, steps=10, crash=True, crash_at=3))
    job = wait_status(job.id, ("crashed", "failed", "done"))
    assert job.status == "crashed" and job.exit_code == -9
    assert "killed by SIGKILL" in job.last_message


def test_failed_job_records_exit_code_and_error(jobenv, tmp_path):
    job = control.submit(make_config(tmp_path, fail=True, exit_code=4))
    job = wait_status(job.id, "failed")
    assert job.exit_code == 4
    assert "exit 4 (out of memory)" in job.last_message
    assert "fake failure at step 2" in job.last_message


def test_force_stop_kills_a_job_that_ignores_sigterm(jobenv, tmp_path):
    stubborn = tmp_path / "stubborn.py"
    ready = tmp_path / "ready"
    stubborn.write_text("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
                        f"\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)\n")
    job = control.submit(make_config(tmp_path), trainer_cmd=[sys.executable, str(stubborn)])
    wait_for(ready.exists, 10, "the trainer to ignore SIGTERM")
    job = wait_for(lambda: (j := job_now(job.id)).child_pid and j, 10, "the trainer's pid")
    t0 = time.monotonic()
    job = control.stop(job.id, force=True, timeout=0.5)
    assert time.monotonic() - t0 < 8
    assert job.status == "crashed" and "force-stopped" in job.last_message
    assert not is_alive(job.child_pid, job.child_ctime)


# ---- reconcile -----------------------------------------------------------------------------

def test_reconcile_detects_pid_reuse_and_reads_exit_codes(jobenv, tmp_path):
    me = os.getpid()
    with Registry() as reg:
        ours = reg.add(status="running", run_dir=str(tmp_path / "a"), pid=me,
                       pid_ctime=create_time(me), started=time.time())
        reused = reg.add(status="running", run_dir=str(tmp_path / "b"), pid=me,
                         pid_ctime=create_time(me) - 1000, started=time.time())
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "stdout.log").write_text("loading model\nstep 7/100\n")
        dead = subprocess.Popen(["true"])
        dead.wait()
        for name, code in (("c", "3"), ("d", "4"), ("e", "-9")):
            (tmp_path / name).mkdir()
            (tmp_path / name / "exit_code").write_text(code + "\n")
        stopped = reg.add(status="stopping", run_dir=str(tmp_path / "c"), pid=dead.pid,
                          started=time.time())
        oom = reg.add(status="running", run_dir=str(tmp_path / "d"), pid=dead.pid,
                      started=time.time())
        killed = reg.add(status="running", run_dir=str(tmp_path / "e"), pid=dead.pid,
                         started=time.time())
        spawning = reg.add(status="running", run_dir=str(tmp_path / "f"),
                           started=time.time())  # no pid yet: within the start grace
        changed = {j.id for j in reg.reconcile()}
        assert changed == {reused.id, stopped.id, oom.id, killed.id}
        assert reg.get(ours.id).status == "running"
        assert reg.get(spawning.id).status == "running"
        r = reg.get(reused.id)
        assert r.status == "crashed" and "step 7/100" in r.last_message
        assert is_alive(me, None)  # reconcile never signals anything
        assert reg.get(stopped.id).status == "stopped"
        assert reg.get(oom.id).status == "failed" and "out of memory" in \
            reg.get(oom.id).last_message
        assert reg.get(killed.id).status == "crashed"
        assert reg.reconcile(now=time.time() + 3600) and \
            reg.get(spawning.id).status == "crashed"  # never got a pid


def test_the_registry_is_shared_by_concurrent_processes(tmp_path):
    db = tmp_path / "jobs.sqlite"
    Registry(db).close()
    code = (f"from lorabake_tui.jobs.store import Registry\nreg = Registry({str(db)!r})\n"
            "for i in range(40):\n"
            "    job = reg.add(status='queued', run_dir=f'/x/{i}')\n"
            "    reg.update(job.id, last_message='seen')\n"
            "    reg.reconcile()\n"
            "    reg.queue()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    with Registry(db) as reg:
        jobs = reg.jobs()
        assert len({j.id for j in jobs}) == 160
        assert [j.position for j in reg.queue()] == list(range(1, 161))
        assert all(j.last_message == "seen" for j in jobs)
        assert reg._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_job_refs_and_unknown_ids(jobenv, tmp_path):
    with Registry() as reg:
        job = reg.add(status="done", run_dir=str(tmp_path))
        assert job.id == "j-0001"
        assert reg.get("1").id == reg.get("j1").id == reg.get("J-0001").id == job.id
        with pytest.raises(LorabakeError, match="no job 'j-0099'"):
            reg.get("j-0099")


# ---- the queue -----------------------------------------------------------------------------

def test_queue_runs_in_order_and_continues_past_a_failure(jobenv, tmp_path):
    a = control.submit(make_config(tmp_path / "a", "a", fail=True), start=False)
    b = control.submit(make_config(tmp_path / "b", "b", steps=4), start=False)
    c = control.submit(make_config(tmp_path / "c", "c", steps=4), start=False)
    wait_for(lambda: job_now(c.id).finished, 30, "the queue to finish")
    a, b, c = job_now(a.id), job_now(b.id), job_now(c.id)
    assert (a.status, b.status, c.status) == ("failed", "done", "done")
    assert a.ended <= b.started and b.ended <= c.started  # one lane: one at a time
    wait_for(lambda: supervisor_pid(jobenv) is None, 10, "the supervisor to exit when idle")


def test_two_lanes_run_side_by_side(jobenv, tmp_path):
    slow = {"steps": 20, "delay": 0.05}
    g0 = control.submit(make_config(tmp_path / "0", "g0", **slow), gpus="0", start=False)
    g1 = control.submit(make_config(tmp_path / "1", "g1", **slow), gpus="1", start=False)
    g0b = control.submit(make_config(tmp_path / "0b", "g0b", steps=3), gpus="0", start=False)
    wait_for(lambda: job_now(g0b.id).finished, 30, "all lanes to finish")
    g0, g1, g0b = job_now(g0.id), job_now(g1.id), job_now(g0b.id)
    assert g0.status == g1.status == g0b.status == "done"
    assert g0.started < g1.ended and g1.started < g0.ended  # overlapped
    assert g0b.started >= g0.ended
    for job in (g0, g1, g0b):
        start = last_event(job.events_path, "start")
        assert start["cuda_visible_devices"] == job.gpus


def test_gpu_sets_conflict_when_they_share_a_device():
    assert gpu_set("0,1") & gpu_set("1")
    assert not gpu_set("0") & gpu_set("1")
    assert not gpu_set("") & gpu_set("0") and gpu_set("") & gpu_set("")


def test_queue_reorder_and_remove(jobenv, tmp_path):
    me = os.getpid()
    with Registry() as reg:  # a job "running" on the default lane keeps the queue waiting
        reg.add(status="running", run_dir=str(tmp_path / "busy"), pid=me,
                pid_ctime=create_time(me), started=time.time())
    jobs = [control.submit(make_config(tmp_path / n, n), start=False) for n in "abc"]
    a, b, c = (j.id for j in jobs)

    def order():
        with Registry() as reg:
            return [j.id for j in reg.queue()]

    assert order() == [a, b, c]
    assert control.move(c, -1) == 1 and order() == [a, c, b]
    assert control.move(a, 10) == 2 and order() == [c, b, a]
    assert cli_main(["jobs", "move", a, "top"]) == 0 and order() == [a, c, b]
    snap = Path(job_now(b).config)
    assert control.remove(b).id == b and order() == [a, c]
    assert not snap.exists()  # its snapshot goes with it
    with pytest.raises(LorabakeError, match="no job"):
        control.remove(b)
    with pytest.raises(LorabakeError, match="queued, not running"):
        control.stop(a)
    time.sleep(0.3)  # the supervisor is polling: the lane is still taken
    assert [job_now(x).status for x in (a, c)] == ["queued", "queued"]
    with pytest.raises(LorabakeError, match="is running"):
        control.remove("1")
    with pytest.raises(LorabakeError, match="not queued"):
        control.move("1", 1)


def test_a_supervisor_is_restarted_for_a_stranded_queue(jobenv, tmp_path):
    with Registry() as reg:
        reg.add(status="queued", run_dir=str(tmp_path / "out" / "x"), name="x",
                config=str(make_config(tmp_path, "x")), command=[sys.executable, str(FAKE)],
                workdir=str(tmp_path))
    assert supervisor_pid(jobenv) is None
    control.open_registry().close()  # what the UI and the CLI do on start
    wait_status("1", "done")


# ---- the CLI -------------------------------------------------------------------------------

def test_cli_start_list_json_log_and_errors(jobenv, tmp_path, capsys):
    cfg = make_config(tmp_path, steps=5)
    assert cli_main(["jobs", "start", str(cfg), "--gpus", "0, 1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("started j-0001 (mira)")
    wait_status("j-0001", "done")
    assert cli_main(["jobs", "start", str(make_config(tmp_path / "q", "q")), "--queue",
                     "--gpus", "7"]) == 0
    assert "queued j-0002" in capsys.readouterr().out
    assert cli_main(["jobs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        assert isinstance(row["id"], str) and isinstance(row["status"], str)
        assert isinstance(row["config"], str) and isinstance(row["run_dir"], str)
        assert row["pid"] is None or isinstance(row["pid"], int)
        assert row["step"] is None or isinstance(row["step"], int)
        assert row["total_steps"] is None or isinstance(row["total_steps"], int)
    first = rows[0]
    assert (first["id"], first["status"], first["step"], first["total_steps"]) == \
        ("j-0001", "done", 5, 5)
    assert first["gpus"] == "0,1" and isinstance(first["pid"], int)
    assert cli_main(["jobs"]) == 0
    table = capsys.readouterr().out
    assert "j-0001" in table and "5/5" in table

    assert cli_main(["jobs", "log", "1"]) == 0
    assert "step 5/5" in capsys.readouterr().out
    assert cli_main(["jobs", "log", "1", "--stdout", "-n", "1"]) == 0
    assert "trainer ended" in capsys.readouterr().out
    assert cli_main(["jobs", "log", "1", "-f"]) == 0  # a finished job: prints and returns
    assert "done" in capsys.readouterr().out
    assert cli_main(["jobs", "attach", "1"]) == 0
    assert "mira done" in capsys.readouterr().out

    assert cli_main(["jobs", "stop", "j-0042"]) == 1
    err = capsys.readouterr().err
    assert "no job 'j-0042'" in err and "Traceback" not in err
    assert cli_main(["jobs", "resume", "1"]) == 1
    assert "j-0001 cannot be resumed: it finished (done)" in capsys.readouterr().err
    assert cli_main(["jobs", "start", str(tmp_path / "missing.toml")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["jobs", "start", str(cfg), "--gpus", "zero"]) == 1
    assert "bad GPU list" in capsys.readouterr().err


def test_attach_and_log_follow_a_running_job(jobenv, tmp_path, capsys):
    job = control.submit(make_config(tmp_path / "a", "a", steps=15, delay=0.05))
    assert attach_plain(job.id, interval=0.1) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(f"{job.id} running  step" in ln for ln in lines)
    assert lines[-1].startswith("a done:")
    job = control.submit(make_config(tmp_path / "b", "b", steps=15, delay=0.05))
    assert cli_main(["jobs", "log", job.id, "-f"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln for ln in out if ln.startswith("step ")] == \
        [f"step {n}/15 loss {0.1 + 0.05 / n:.4f}" for n in range(1, 16)]  # each line once
    assert out[-1] == "done" and job_now(job.id).status == "done"


def test_cli_jobs_runs_as_a_command(jobenv):
    proc = subprocess.run([sys.executable, "-m", "lorabake_tui.cli", "jobs", "list", "--json"],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


# ---- external kohya runs -------------------------------------------------------------------

KOHYA_LOG = (
    "running training / 学習開始\n"
    "  num train images * repeats / 学習画像の数×繰り返し回数: 40\n"
    "  num batches per epoch / 1epochのバッチ数: 20\n"
    "  num epochs / epoch数: 2\n"
    "  total optimization steps / 学習ステップ数: 40\n"
    "steps:   0%|          | 0/40 [00:00<?, ?it/s]\n"
    "epoch 1/2\n"
    "\rsteps:  30%|###       | 12/40 [00:06<00:14,  1.95it/s, avr_loss=0.0912]"
)


def test_follow_a_kohya_run(jobenv, tmp_path, capsys):
    log = tmp_path / "kohya.log"
    log.write_text(KOHYA_LOG)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        assert cli_main(["jobs", "follow", str(log), "--pid", str(sleeper.pid)]) == 0
        assert "following" in capsys.readouterr().out
        job = job_now("1")
        assert job.kind == "kohya" and job.status == "running" and job.log_path == str(log)
        history = JobHistory.for_job(job)
        history.poll()
        assert list(history.steps) == [12] and history.last_step["epoch"] == 1
        assert history.latest["start"]["epochs"] == 2
        assert "step 12/40" in progress_line(job, history)
        assert cli_main(["jobs", "list", "--json"]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        assert (row["step"], row["total_steps"], row["pid"]) == (12, 40, sleeper.pid)
        with pytest.raises(LorabakeError, match="already followed"):
            control.follow(log)
        with log.open("a") as fh:
            fh.write("\rsteps: 100%|##########| 40/40 [00:20<00:00,  1.96it/s, avr_loss=0.08]"
                     "\nsaving checkpoint: /out/mira.safetensors\n"
                     "2024-05-01 10:35:12 INFO     model saved.          train_network.py:1085\n")
        history.poll()
        assert history.steps[-1] == 40 and history.saves[-1]["path"] == "/out/mira.safetensors"
        assert job_now("1").status == "running"  # its process still runs
    finally:
        sleeper.kill()
        sleeper.wait()
    assert job_now("1").status == "done"
    with pytest.raises(LorabakeError, match="no process"):
        control.follow(log, pid=sleeper.pid)


def test_a_kohya_run_without_pid_ends_when_its_log_says_so(jobenv, tmp_path):
    log = tmp_path / "k.log"
    log.write_text(KOHYA_LOG)
    job = control.follow(log)
    assert job_now(job.id).status == "running"
    with pytest.raises(LorabakeError, match="no known process"):
        control.stop(job.id)
    with log.open("a") as fh:
        fh.write("\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
                 "torch.OutOfMemoryError: CUDA out of memory.\n")
    assert job_now(job.id).status == "failed"
    follow_again = control.follow(log)
    assert control.remove(follow_again.id).kind == "kohya"  # un-follow


# ---- JobHistory and the log tail -----------------------------------------------------------

def write_history(path: Path, steps: int) -> int:
    """A realistic events.jsonl: start, a step per line, epoch/save every 1000, warnings."""
    lines = [json.dumps({"type": "start", "t": 1.0, "total_steps": steps})]
    for s in range(1, steps + 1):
        lines.append(json.dumps({
            "type": "step", "t": 1.0 + s, "step": s, "total_steps": steps,
            "epoch": 1 + s // 1000, "loss": 0.1 + (s % 7) / 100, "avg_loss": 0.12,
            "lr": [1e-4 * (1 - s / steps), 5e-5], "it_per_s": 1.9, "samples_per_s": 3.8,
            "eta_s": steps - s, "vram_gb": 6.2}))
        if s % 1000 == 0:
            lines.append(json.dumps({"type": "epoch", "t": 1.0 + s, "epoch": s // 1000}))
            lines.append(json.dumps({"type": "save", "t": 1.0 + s, "path": f"/o/e{s}.st"}))
        if s % 5000 == 0:
            lines.append(json.dumps({"type": "warning", "t": 1.0 + s, "message": f"w{s}"}))
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_job_history_loads_50k_events_then_follows_incrementally(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    total = write_history(run / "events.jsonl", 49_900)
    assert total >= 50_000
    (run / "train.log").write_text("".join(f"line {i}\n" for i in range(20_000)))
    t0 = time.perf_counter()
    h = JobHistory(run, log_lines=100)
    assert h.poll() == total
    took = time.perf_counter() - t0
    print(f"\nJobHistory: {total} events loaded in {took * 1000:.0f} ms")
    assert len(h.steps) == len(h.loss) == len(h.lr) == len(h.t) == 49_900
    assert h.steps[0] == 1 and h.steps[-1] == 49_900
    assert h.loss[6] == pytest.approx(0.1) and h.lrs[1][-1] == pytest.approx(5e-5)
    assert h.latest["save"]["path"] == "/o/e49000.st" and len(h.saves) == 49
    assert [w["message"] for w in h.warnings][-1] == "w45000"
    assert h.log_tail() == [f"line {i}" for i in range(19_900, 20_000)]
    assert h.poll() == 0

    offset = h.offset
    with (run / "events.jsonl").open("a") as fh:
        for s in range(49_901, 50_001):
            fh.write(json.dumps({"type": "step", "step": s, "loss": 0.2, "lr": [1e-5]}) + "\n")
        fh.write('{"type": "step", "st')  # still being written
    with (run / "train.log").open("a") as fh:
        fh.write("next\nprogress 50%\rprogress 60%")
    t0 = time.perf_counter()
    assert h.poll() == 100
    print(f"JobHistory: 100 appended events in {(time.perf_counter() - t0) * 1000:.1f} ms")
    assert h.offset > offset and h.steps[-1] == 50_000 and len(h.lrs[1]) == 50_000
    assert h.log_tail()[-2:] == ["next", "progress 60%"]
    with (run / "events.jsonl").open("a") as fh:
        fh.write('ep": 50001}\n')
        # a resume from the state saved at step 47_000: the later points are replaced
        fh.write(json.dumps({"type": "start", "total_steps": 48_200}) + "\n")
        fh.write(json.dumps({"type": "step", "step": 47_001, "loss": 0.3}) + "\n")
    assert h.poll() == 3
    assert h.steps[-1] == 47_001 and len(h.steps) == 47_001 and h.loss[-1] == 0.3
    assert h.steps_since_start == 1
    assert h.latest["start"]["total_steps"] == 48_200


def test_job_history_skips_a_torn_line_and_restarts_on_truncation(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ev = run / "events.jsonl"
    ev.write_text('{"type": "step", "step": 1}\n{"type": "st{"type": "step", "step": 2}\n'
                  '{"type": "step", "step": 3}\n')
    h = JobHistory(run)
    assert h.poll() == 2 and list(h.steps) == [1, 3] and h.skipped_lines == 1
    ev.write_text('{"type": "step", "step": 9}\n')
    assert h.poll() == 1 and list(h.steps) == [9]
    assert JobHistory(tmp_path / "nothing").poll() == 0


def test_tail_lines_reads_from_the_end(tmp_path):
    log = tmp_path / "x.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)) + b"tqdm 1\rtqdm 2")
    assert tail_lines(log, 3) == ["line 99998", "line 99999", "tqdm 2"]
    assert tail_lines(tmp_path / "none.log", 3) == []


def test_finish_watcher_reports_each_end_once(tmp_path):
    with Registry(tmp_path / "j.sqlite") as reg:
        job = reg.add(status="running", run_dir=str(tmp_path), name="mira",
                      started=time.time() - 75)
        watcher = FinishWatcher(reg.jobs())
        assert watcher.update(reg.jobs()) == []
        reg.update(job.id, status="failed", ended=time.time(), exit_code=4,
                   last_message="failed: exit 4 (out of memory)\nCUDA out of memory")
        ended = watcher.update(reg.jobs())
        assert [j.id for j in ended] == [job.id]
        assert watcher.update(reg.jobs()) == []
        msg = finish_message(ended[0])
        assert msg.startswith("mira failed: j-0001 failed: exit 4 (out of memory)")
        assert "CUDA out of memory" in msg and "1m 15s" in msg
        # its next attempt ends between two looks (failed, then done): one notice again
        reg.begin_attempt(job.id, ("failed",), start=True)
        reg.update(job.id, status="done", ended=time.time(), exit_code=0, last_message="done")
        assert [j.attempt for j in watcher.update(reg.jobs())] == [2]
        assert watcher.update(reg.jobs()) == []
