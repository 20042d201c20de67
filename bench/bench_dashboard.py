"""The Train dashboard on a long run: how soon a 50k-event history shows, and whether the UI
stays responsive while the run appends 100 events/s.

    .venv/bin/python bench/bench_dashboard.py [--events 50000] [--rate 100] [--seconds 5]
                                              [--runs 3]

Writes a synthetic events.jsonl (bench_job_history's: every field the trainer writes, epochs,
saves, warnings) and a 20,000-line train.log for a job registered as running in a private
state dir, then opens the workbench headless (App.run_test, 160x48) directly on the Train
screen with that job selected (as `lorabake jobs attach` does), and measures:

(a) load: from entering run_test (app start-up included) to the header showing the last
    step (the job list reads it from the end of events.jsonl), and to the loss chart holding
    every point of the history (JobHistory's full read in a worker); best and median of
    --runs; target <= 1 s;
(b) follow: a thread appends --rate step events/s (and a log line each) for --seconds while
    the benchmark sends a key every 50 ms (time until the app's loop has handled it) and a
    10 ms app timer records how late it fires (event-loop stalls); also how far the header
    lags behind the file (the age of the oldest written step it does not show yet).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from textual import events

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _common import ensure_importable, machine_line  # noqa: E402
from bench_job_history import step_fields, write_history  # noqa: E402

ensure_importable()

SIZE = (160, 48)
LOAD_TARGET_S = 1.0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def setup(tmp: Path, events: int) -> tuple[str, Path, int]:
    """A registered running job with a long history; (job id, run dir, steps)."""
    os.environ["LORABAKE_STATE_DIR"] = str(tmp / "state")
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")  # no user settings, no keymap
    os.environ["LORABAKE_NVIDIA_SMI"] = str(tmp / "no-nvidia-smi")  # same on every machine
    from lorabake_tui.core.run.folder import RunFolder
    from lorabake_tui.jobs.procs import create_time
    from lorabake_tui.jobs.store import Registry

    run = RunFolder(tmp / "run")
    run.path.mkdir()
    n, steps = write_history(run.path, events)
    run.train_log.write_text("".join(f"step {i} loss 0.1\n" for i in range(20_000)))
    size = run.events.stat().st_size
    print(f"events.jsonl: {n} events, {steps} steps, {size / 1e6:.1f} MB")
    now = time.time()
    with Registry() as reg:
        # "running" under this process's pid, so reconcile leaves it alone
        job = reg.add(kind="lorabake", name="bench", status="running", run_dir=str(run.path),
                      created=now, started=now, pid=os.getpid(),
                      pid_ctime=create_time(os.getpid()))
    return job.id, run.path, steps


def head_text(app) -> str:
    try:
        return str(app.screen.query_one("#tr-head").render())
    except Exception:  # noqa: BLE001 - the screen is not there yet
        return ""


async def load_once(root: Path, job_id: str, steps: int) -> tuple[float, float]:
    from lorabake_tui.ui.launch import make_attached_app

    want = f"step {steps}/{steps}"
    app = make_attached_app(root, job_id, images="none", save_settings=False)
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        while want not in head_text(app):
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("the last step never showed")
            await asyncio.sleep(0.002)
        shown = time.perf_counter() - t0
        plot = app.screen.query_one("#tr-loss")
        while len(plot.x) < steps:
            await asyncio.sleep(0.002)
        charted = time.perf_counter() - t0
        await pilot.pause()
    return shown, charted


async def follow(root: Path, job_id: str, run: Path, steps: int, rate: int,
                 seconds: float) -> dict:
    from lorabake_tui.core.run.event_writer import EventWriter
    from lorabake_tui.core.run.events import EventType
    from lorabake_tui.core.run.folder import RunFolder
    from lorabake_tui.ui.launch import make_attached_app

    app = make_attached_app(root, job_id, images="none", save_settings=False)
    written: dict[int, float] = {}
    shown_lag: list[float] = []
    timer_late: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        total = steps + int(rate * seconds)
        step = steps
        t_next = time.perf_counter()
        with EventWriter(run) as ev, open(RunFolder(run).train_log, "a") as log:
            while not stop.is_set() and step < total:
                step += 1
                ev.emit(EventType.STEP, **step_fields(step, total))
                log.write(f"step {step}/{total} loss 0.1\n")
                log.flush()
                written[step] = time.perf_counter()
                t_next += 1 / rate
                time.sleep(max(0.0, t_next - time.perf_counter()))

    async with app.run_test(size=SIZE) as pilot:
        while app.screen.view is None or len(app.screen.view.steps) < steps:
            await asyncio.sleep(0.01)  # the whole history read: measure the following only
        await pilot.pause(0.5)
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            timer_late.append(now - last[0] - 0.01)
            last[0] = now

        app.set_interval(0.01, tick)
        thread = threading.Thread(target=writer, daemon=True)
        t_end = time.perf_counter() + seconds
        thread.start()
        presses: list[float] = []
        while time.perf_counter() < t_end:
            # a key (up: the job list's cursor is already on its first row) and the time
            # until a callback queued right behind it runs: how long input waits for the
            # app's loop. (The pilot's own press() waits for the process to go idle, which
            # the writer thread in this same process never lets happen.)
            done = asyncio.Event()
            t = time.perf_counter()
            app._driver.send_message(events.Key("up", None))
            app.call_later(done.set)
            await asyncio.wait_for(done.wait(), 10)
            presses.append(time.perf_counter() - t)
            # staleness: how long the oldest step not yet on screen has been written
            v = app.screen.view
            shown = v.last_step["step"] if v is not None and v.last_step else steps
            waiting = written.get(shown + 1)
            shown_lag.append(time.perf_counter() - waiting if waiting else 0.0)
            await asyncio.sleep(0.05)
        stop.set()
        thread.join()
        await pilot.pause(1.0)
        final = app.screen.view.last_step["step"]
    return {"presses": presses, "timer_late": timer_late[5:], "shown_lag": shown_lag,
            "written": len(written), "final": final, "expected": steps + len(written)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--rate", type=int, default=100, help="events appended per second")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="lorabake-bench-dash-") as tmp_s:
        tmp = Path(tmp_s)
        job_id, run, steps = setup(tmp, args.events)
        root = tmp / "dataset"
        root.mkdir()

        shown, charted = [], []
        for _ in range(args.runs):
            s, c = asyncio.run(load_once(root, job_id, steps))
            shown.append(s)
            charted.append(c)
        best, med = min(shown), statistics.median(shown)
        verdict = "ok" if med <= LOAD_TARGET_S else "OVER"
        cbest, cmed = min(charted), statistics.median(charted)
        cverdict = "ok" if cmed <= LOAD_TARGET_S else "OVER"
        print(f"(a) 50k-event history, from app start (target <= {ms(LOAD_TARGET_S)}):")
        print(f"    header shows the last step: best {ms(best)}, median {ms(med)} ({verdict})")
        print(f"    whole history charted:      best {ms(cbest)}, median {ms(cmed)} "
              f"({cverdict})")

        r = asyncio.run(follow(root, job_id, run, steps, args.rate, args.seconds))
        pr, late, lag = r["presses"], r["timer_late"], r["shown_lag"]
        print(f"(b) appending {args.rate} events/s for {args.seconds:g} s "
              f"({r['written']} events):")
        print(f"    key press round trip: {len(pr)} presses, median {ms(statistics.median(pr))}"
              f", p95 {ms(sorted(pr)[int(len(pr) * 0.95)])}, max {ms(max(pr))}")
        print(f"    10 ms app timer lateness: median {ms(statistics.median(late))}, p99 "
              f"{ms(sorted(late)[int(len(late) * 0.99)])}, max {ms(max(late))}")
        if lag:
            print(f"    header behind the file (oldest step written, not yet shown): median "
                  f"{ms(statistics.median(lag))}, max {ms(max(lag))} (polled every 0.5 s)")
        ok = r["final"] == r["expected"]
        print(f"    last step shown after the appends: {r['final']} "
              f"({'all' if ok else 'NOT all'} {r['expected']} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
