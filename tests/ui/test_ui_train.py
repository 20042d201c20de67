"""The Train screen, driven by keys only: queue the project's config, watch the fake trainer's
progress and loss chart fill, stop it through the dialog, resume it, copy the LoRA path, hear
the bell; a 50k-event history on first show; the braille chart's downsampling.

Real detached processes (runner, supervisor, tests/fake_trainer.py) do the work; every wait
polls against a deadline, so a broken test fails instead of hanging."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from lorabake_tui.jobs.procs import is_alive
from lorabake_tui.jobs.store import Registry
from lorabake_tui.jobs.supervisor import supervisor_pid
from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.launch import job_project, make_attached_app
from lorabake_tui.ui.screens.config import config_path
from lorabake_tui.ui.screens.job_dialogs import StopDialog
from lorabake_tui.ui.screens.train import TrainScreen, appended
from lorabake_tui.ui.widgets.gpu import GpuMeter, parse_gpu_csv
from lorabake_tui.ui.widgets.plot import LinePlot, Series, downsample
from lorabake_tui.ui.widgets.sample_strip import SampleStrip, SampleTile

from ..support.helpers import make_image, settle, until
from ..support.paths import FAKE_TRAINER

FAKE = FAKE_TRAINER
SIZE = (160, 48)


@pytest.fixture
def jobenv(tmp_path, monkeypatch):
    """A private job registry, the fake trainer, a fast supervisor and no nvidia-smi;
    afterwards every process the test left running is killed."""
    state = tmp_path / "state"
    monkeypatch.setenv("LORABAKE_STATE_DIR", str(state))
    monkeypatch.setenv("LORABAKE_TRAINER_CMD", shlex.join([sys.executable, str(FAKE)]))
    monkeypatch.setenv("LORABAKE_SUPERVISOR_POLL", "0.1")
    monkeypatch.setenv("LORABAKE_NVIDIA_SMI", str(tmp_path / "no-such-nvidia-smi"))
    yield state
    if not (state / "jobs.sqlite").exists():
        return
    if pid := supervisor_pid(state):
        os.kill(pid, signal.SIGKILL)
    with Registry(state / "jobs.sqlite", reconcile=False) as reg:
        for job in reg.jobs(statuses=("running", "stopping")):
            if job.pid and is_alive(job.pid, job.pid_ctime):
                os.killpg(job.pgid or job.pid, signal.SIGKILL)
            if job.child_pid and is_alive(job.child_pid, job.child_ctime):
                os.kill(job.child_pid, signal.SIGKILL)


def write_config(root: Path, **fake) -> Path:
    path = config_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[general]", 'base_model = "builtin:tiny-sd15"', "[saving]",
             f'output_dir = "{root.parent / "runs"}"', 'output_name = "mira"', "[fake]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in fake.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def head(screen: TrainScreen) -> str:
    return str(screen.query_one("#tr-head", Static).render())


def last_step(screen: TrainScreen) -> int:
    v = screen.view
    return v.last_step["step"] if v is not None and v.last_step else 0


def steps_in(run_dir: Path) -> list[int]:
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    return [e["step"] for e in events if e["type"] == "step"]


async def test_queue_watch_stop_resume_copy_and_bell(jobenv, small_dataset, monkeypatch):
    # the first attempt holds after step 12 until stopped: no race with a slow machine
    write_config(small_dataset, steps=60, delay=0.05, hold_at=12)
    app = make_app(small_dataset, images="none", save_settings=False)
    bells = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(time.monotonic()))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 2)
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert screen.query_one("#tr-empty").display  # no jobs yet: says what to do
        await pilot.press("a")  # queue: the supervisor starts it at once, the GPU is free
        job = await until(pilot, lambda: screen.job, "the queued job to show")
        assert screen.job.name == "mira"
        # progress and the loss chart fill as the trainer writes events
        await until(pilot, lambda: last_step(screen) >= 12 and "running" in head(screen),
                    "steps on the dashboard")
        assert "step " in head(screen) and "it/s" in head(screen)
        loss = screen.query_one("#tr-loss", LinePlot)
        assert len(loss.x) >= 8 and loss.series[0].values[0] == pytest.approx(0.15)
        assert not screen.query_one("#tr-gpu", GpuMeter).display  # no nvidia-smi: hidden

        # stop, through the confirmation
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, StopDialog)
        await pilot.press("y")
        stopped = await until(pilot, lambda: screen.job.status == "stopped" and screen.job,
                              "the job to stop")
        assert stopped.id == job.id and stopped.has_state
        await until(pilot, lambda: bells, "the bell for the stopped job")
        at = int((Path(stopped.run_dir) / "state" / "step").read_text())
        assert at == 12

        # resume: the same job's second attempt, still selected, continues after the saved step
        await pilot.press("r")
        resumed = await until(pilot, lambda: screen.job.attempt == 2 and screen.job,
                              "the second attempt")
        assert resumed.id == job.id
        with Registry() as reg:
            assert len(reg.jobs()) == 1  # no second job for the same run
        await until(pilot, lambda: screen.job.status == "done", "the resumed job to finish")
        await until(pilot, lambda: last_step(screen) == 60, "the last step on the dashboard")
        # its chart holds both attempts' steps, and the head says which attempt this is
        assert list(screen.query_one("#tr-loss", LinePlot).x) == list(range(1, 61))
        assert "attempt 2 (earlier: stopped)" in head(screen)
        steps = steps_in(Path(resumed.run_dir))
        assert steps[:at] == list(range(1, at + 1))
        assert steps[-(60 - at):] == list(range(at + 1, 61))  # no step done twice after it
        await until(pilot, lambda: len(bells) >= 2, "the bell for the finished job")
        assert "step 60/60" in head(screen) and "done" in head(screen)

        # copy the final LoRA's path
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == str(Path(resumed.run_dir) / "fake.safetensors")
        assert any(app.clipboard in n.message for n in app.notices)

        # a finished job does not resume: said at once, nothing is started
        await pilot.press("r")
        await pilot.pause()
        assert "finished (done): nothing to resume" in list(app.notices)[-1].message
        assert screen.job.attempt == 2 and screen.job.status == "done"


async def test_a_50k_event_history_shows_at_once(jobenv, small_dataset, tmp_path, monkeypatch):
    run = tmp_path / "runs" / "big"
    run.mkdir(parents=True)
    total = 50_000
    with open(run / "events.jsonl", "w") as fh:
        fh.write(json.dumps({"type": "start", "t": 1.0, "total_steps": total, "epochs": 50})
                 + "\n")
        for s in range(1, total + 1):
            fh.write(json.dumps({"type": "step", "t": 2.0 + s, "step": s, "total_steps": total,
                                 "epoch": 1 + s // 1000, "loss": 0.1 + (s % 7) / 100,
                                 "avg_loss": 0.12, "lr": [1e-4 * (1 - s / total)],
                                 "it_per_s": 2.0, "samples_per_s": 4.0, "eta_s": 0})
                     + "\n")
        fh.write(json.dumps({"type": "save", "t": 9e4, "path": str(run / "big.safetensors"),
                             "epoch": 50, "step": total}) + "\n")
    (run / "train.log").write_text("".join(f"step {s}\n" for s in range(1, 1000)) +
                                   "warning: slow disk\n")
    with Registry() as reg:
        reg.add(kind="lorabake", name="big", status="done", run_dir=str(run), created=1.0,
                started=1.0, ended=9e4, exit_code=0, last_message="done")
    # a fake nvidia-smi: two GPUs
    smi = "print('57, 1024, 24576'); print('3, 10, 24576')"
    monkeypatch.setenv("LORABAKE_NVIDIA_SMI", shlex.join([sys.executable, "-c", smi]))
    app = make_app(small_dataset, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 2)
        t0 = time.monotonic()
        await pilot.press("5")
        screen = app.screen
        await until(pilot, lambda: f"step {total}/{total}" in head(screen), "the last step")
        # the whole history, charted (bench/bench_dashboard.py times it; here: no hang)
        loss = screen.query_one("#tr-loss", LinePlot)
        await until(pilot, lambda: len(loss.x) == total, "the full loss chart")
        took = time.monotonic() - t0
        assert took < 8.0, f"{took:.2f} s to show a 50k-step history"
        assert list(loss.x[-2:]) == [total - 1, total]
        assert "reading its history" not in head(screen)
        await until(pilot, lambda: screen.query_one("#tr-saves").items, "the checkpoint list")
        assert screen.query_one("#tr-saves").items[-1]["epoch"] == 50
        gpu = screen.query_one("#tr-gpu", GpuMeter)
        await until(pilot, lambda: gpu.display, "the GPU meter")
        assert "57%" in str(gpu.render()) and "GPU1" in str(gpu.render())
        await pilot.press("c")
        assert app.clipboard == str(run / "big.safetensors")


def _done_run(run: Path, saves: list[tuple[str, int, int, int]]) -> None:
    """A finished run's events: a start naming the output, the given LoRA saves (file,
    epoch, step, bytes), a state save and the end."""
    run.mkdir(parents=True)
    events = [{"type": "start", "t": 1.0, "total_steps": 160, "epochs": 4,
               "output_name": "mira"},
              {"type": "step", "t": 2.0, "step": 160, "total_steps": 160, "loss": 0.1}]
    events += [{"type": "save", "t": 3.0, "path": str(run / name), "epoch": epoch,
                "step": step, "bytes": size} for name, epoch, step, size in saves]
    events += [{"type": "save", "t": 4.0, "path": str(run / "state"), "kind": "state",
                "step": 160},
               {"type": "end", "t": 5.0, "status": "done", "message": "done", "exit_code": 0}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


async def test_checkpoints_read_as_epoch_step_final_with_sizes_and_c_copies(
        jobenv, small_dataset, tmp_path, monkeypatch):
    run = tmp_path / "runs" / "mira-1"
    _done_run(run, [("mira-000003.safetensors", 3, 119, 364 * 1024),
                    # stopped in its first epoch: the trainer's epoch counter says 0
                    ("mira-step00000119.safetensors", 0, 119, 2_400_000),
                    ("mira.safetensors", 4, 160, 144 * 1024 * 1024)])
    with Registry() as reg:
        reg.add(kind="lorabake", name="mira", status="done", run_dir=str(run), created=1.0,
                started=1.0, ended=5.0, exit_code=0, last_message="done")
    app = make_app(small_dataset, images="none", save_settings=False)
    app.settings.notify_on_finish = False
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)  # OSC 52 goes out here
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 2)
        await pilot.press("5")
        screen = app.screen
        saves = screen.query_one("#tr-saves")
        await until(pilot, lambda: len(saves.items) == 3, "the checkpoint list")
        rows = [screen._save_row(ev, 44).plain for ev in saves.items]
        assert rows[0].startswith("epoch 3 ") and rows[0].endswith(" 364 KB")
        assert rows[1].startswith("step 119 ") and rows[1].endswith(" 2.3 MB")
        assert rows[2].startswith("final ") and rows[2].endswith(" 144 MB")
        assert not any("e0" in r.split()[0] or " 0 MB" in r for r in rows)

        await pilot.press("c")  # the final LoRA
        await pilot.pause()
        final = str(run / "mira.safetensors")
        assert copied == [final]
        notice = list(app.notices)[-1]
        assert notice.message == final  # shown whole, last, to select by hand
        assert "set-clipboard on" in notice.title
        bar = app.screen.query_one("#stagebar")
        await until(pilot, lambda: bar.notice.endswith(final), "the notice in the stage bar")
        saves.focus()
        saves.cursor = 0
        await pilot.press("c")  # the highlighted checkpoint
        await pilot.pause()
        assert copied[-1] == str(run / "mira-000003.safetensors")


async def test_r_refuses_a_superseded_attempt(jobenv, small_dataset, tmp_path):
    # rows as an older lorabake left them: a resume made a second job in the same folder
    run = tmp_path / "runs" / "mira-2"
    (run / "state").mkdir(parents=True)
    (run / "state" / "step").write_text("93\n")
    (run / "events.jsonl").write_text(json.dumps({"type": "start", "t": 1.0,
                                                  "total_steps": 200}) + "\n")
    with Registry() as reg:
        first = reg.add(kind="lorabake", name="mira", status="stopped", run_dir=str(run),
                        created=1.0, started=1.0, ended=2.0, exit_code=3)
        later = reg.add(kind="lorabake", name="mira", status="stopped", run_dir=str(run),
                        resume=True, resume_of=first.id, created=3.0, started=3.0, ended=4.0)
    app = make_attached_app(small_dataset, first.id, images="none", save_settings=False)
    app.settings.notify_on_finish = False
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.job and screen.job.id == first.id, "the old attempt")
        await pilot.press("r")
        notice = await until(pilot, lambda: [n for n in app.notices
                                             if n.title == "Not resumed"], "the refusal")
        assert f"{first.id} cannot be resumed" in notice[-1].message
        assert f"resume {later.id} instead" in notice[-1].message
    with Registry() as reg:
        assert [j.status for j in reg.jobs()] == ["stopped", "stopped"]


async def test_sample_images_show_as_thumbnails(jobenv, small_dataset, tmp_path):
    run = tmp_path / "runs" / "withsamples"
    run.mkdir(parents=True)
    shown = [make_image(run / "sample" / f"e1-{n}.png", color=(40 * n, 90, 200))
             for n in range(2)]
    gone = run / "sample" / "e1-9.png"  # listed but deleted since: a tile that says so
    events = [{"type": "start", "t": 1.0, "total_steps": 4, "epochs": 1},
              {"type": "step", "t": 2.0, "step": 4, "total_steps": 4, "epoch": 1,
               "loss": 0.1, "avg_loss": 0.1, "lr": [1e-4]},
              {"type": "sample", "t": 3.0, "epoch": 1, "paths": [str(p) for p in shown]
               + [str(gone)]}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    with Registry() as reg:
        reg.add(kind="lorabake", name="withsamples", status="done", run_dir=str(run),
                created=1.0, started=1.0, ended=3.0, exit_code=0, last_message="done")
    app = make_app(small_dataset, images="halfcell", save_settings=False)
    app.settings.notify_on_finish = False
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 2)
        await pilot.press("5")
        screen = app.screen
        strip = screen.query_one("#tr-samples", SampleStrip)
        await until(pilot, lambda: len(strip.query(SampleTile)) == 3, "three sample tiles")
        assert strip.display and strip.border_title == "Samples after epoch 1"
        tiles = list(strip.query(SampleTile))
        assert [t.path.name for t in tiles] == ["e1-0.png", "e1-1.png", "e1-9.png"]
        assert [t.image is not None for t in tiles] == [True, True, False]
        assert strip.outer_size.height == 10  # its own height over the concept strip's 12


async def test_attach_opens_on_the_job_and_a_queues_the_config_once_there_is_one(
        jobenv, small_dataset, tmp_path, monkeypatch):
    # two finished jobs; attach picks the older one
    with Registry() as reg:
        for name in ("old", "new"):
            reg.add(kind="lorabake", name=name, status="done", run_dir=str(tmp_path / name),
                    created=time.time(), ended=time.time())
    app = make_attached_app(small_dataset, "j-0001", images="none", save_settings=False)
    app.settings.notify_on_finish = False
    bells = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(1))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await until(pilot, lambda: screen.job, "the attached job")
        assert screen.job.id == "j-0001" and screen.job.name == "old"
        await pilot.press("a")  # the project has no training config yet
        await pilot.pause()
        assert "no training config" in list(app.notices)[-1].message
        with Registry() as reg:
            assert len(reg.jobs()) == 2  # nothing was queued
        cfg = write_config(small_dataset, steps=3, delay=0.01)
        await pilot.press("a")
        new = await until(pilot, lambda: screen.job.id == "j-0003" and screen.job,
                          "the config's job")
        assert new.source == str(cfg.resolve())
        await until(pilot, lambda: screen.job.status == "done", "it to finish")
        await pilot.pause(2.5)  # another list refresh: the watcher has seen it end
        assert bells == []  # notify_on_finish off
        await pilot.press("question_mark")  # every key of the screen, with its description
        await pilot.pause()
        keys = dict(app.screen.keys)
        assert keys.get("a") == "Queue" and keys.get("A") == "Start now"
        assert {"Stop", "Resume", "Copy path", "Log", "Remove", "Move up"} <= set(keys.values())


def test_notify_on_finish_is_a_user_setting(tmp_path, monkeypatch):
    from lorabake_tui.core.base.user_settings import Settings

    assert Settings().notify_on_finish
    s = Settings(notify_on_finish=False)
    s.save()
    assert Settings.load().notify_on_finish is False


def test_attach_project_comes_from_the_job_config(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    ds.mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ntrain_dir = "{ds}"\ncaption_extension = ".caption"\n')
    assert job_project(cfg) == (ds, None, ".caption")
    monkeypatch.chdir(tmp_path)
    cfg.write_text(f'[data]\ntrain_dir = "{tmp_path / "gone"}"\n')
    assert job_project(cfg)[0] == tmp_path
    assert job_project(None)[0] == tmp_path


# ---- the chart ------------------------------------------------------------------------------

def test_downsample_keeps_extremes_and_gaps():
    values = [float(i) for i in range(50_000)]
    values[12_345] = 1e6  # a spike
    values[40_000:40_600] = [math.nan] * 600  # a gap wider than a bucket
    out = downsample(values, 100)
    assert len(out) == 100
    assert out[0] == (0.0, 0.0, 499.0, 499.0)
    assert out[24][2] == 1e6  # the spike survives
    assert out[80] is None  # indices 40000-40499: all NaN
    assert out[-1][3] == 49_999.0
    assert downsample(values[:10], 100)[3] == (3.0, 3.0, 3.0, 3.0)  # fewer: one each
    assert downsample([], 10) == [] and downsample([1.0, math.inf], 10)[1] is None


def test_log_window_appends_only_new_lines():
    assert appended(("a", "b", "c"), ("b", "c", "d", "e")) == ["d", "e"]
    assert appended(("a", "b"), ("a", "b")) == []
    assert appended(("a", "b"), ("x", "y")) is None
    assert parse_gpu_csv("57, 1024, 24576\n[N/A], 5, 10\n")[1].util is None


async def test_plot_draws_50k_points_to_its_width():
    class PlotApp(App):
        def compose(self) -> ComposeResult:
            yield LinePlot(id="p")

    xs = list(range(1, 50_001))
    ys = [1.0 / (1 + i / 1000) for i in range(50_000)]
    app = PlotApp()
    async with app.run_test(size=(80, 14)) as pilot:
        plot = app.query_one(LinePlot)
        # how fast 50k points chart is bench/bench_dashboard.py's figure, not a test's
        plot.set_data(xs, [Series(ys, "red", "loss"), Series([math.nan] * 50_000, "blue")])
        await pilot.pause()
        lines = [plot.render_line(y).text for y in range(plot.size.height)]
        width = plot.size.width
        assert all(len(line) == width for line in lines)
        body = lines[:-1]
        # every dot column of the curve is drawn: no holes in a continuous series
        columns = [any("\u2800" < line[c] <= "\u28ff" for line in body)
                   for c in range(8, width)]
        assert all(columns)
        assert body[0].strip().startswith("1┤")  # the top label is the maximum
        assert lines[-1].split() == ["1", "25001", "50000"]  # x labels: first, middle, last


async def test_a_job_that_ends_rings_on_any_screen(jobenv, small_dataset, monkeypatch):
    import lorabake_tui.ui.app as app_module
    from lorabake_tui.jobs import control

    monkeypatch.setattr(app_module, "JOB_POLL_S", 0.3)
    cfg = write_config(small_dataset, steps=40, delay=0.05)
    job = control.submit(cfg, start=True)
    app = make_app(small_dataset, images="none", save_settings=False)
    bells = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(time.monotonic()))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 2)  # the Concepts screen; Train is never opened
        await until(pilot, lambda: bells, "the bell for the job that ended", timeout=30)
        assert app.current_mode == "concepts"
        assert any(job.id in n.message or "mira" in n.message for n in app.notices)
