"""How fast the dashboard loads and follows a run's history (JobHistory over events.jsonl).

    .venv/bin/python bench/bench_job_history.py [--events 50000] [--runs 5]

Writes a synthetic events.jsonl with the trainer's event writer (start, one step event per
optimizer step with every field the trainer writes, an epoch and a save every 1000 steps, a
warning every 5000) and a
20,000-line train.log to a temp dir, then times (a) a full load, `JobHistory(run).poll()`,
best and median of N (CPU time shown beside wall time: on a busy machine the wall clock
mostly measures the neighbours), and (b) ingesting 100 events appended afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lorabake_tui.core.run.event_writer import EventWriter  # noqa: E402
from lorabake_tui.core.run.events import EventType  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402
from lorabake_tui.jobs.history import JobHistory  # noqa: E402


def step_fields(s: int, total: int) -> dict:
    """A step event's fields (all that the trainer writes), for EventWriter.emit(STEP, ...)."""
    return {"t": 1_700_000_000.0 + s * 0.52, "step": s, "total_steps": total,
            "epoch": 1 + s // 1000, "loss": 0.08 + (s % 13) / 200, "avg_loss": 0.1123,
            "lr": [1e-4 * (1 - s / total), 5e-5 * (1 - s / total)], "it_per_s": 1.93,
            "samples_per_s": 3.86, "eta_s": round((total - s) / 1.93, 1), "vram_gb": 6.21}


def write_history(run_dir: Path, events: int) -> tuple[int, int]:
    """About `events` events in RUN_DIR/events.jsonl; returns (events written, steps)."""
    steps = int(events / (1 + 2 / 1000 + 1 / 5000))
    n = 0
    with EventWriter(run_dir) as ev:
        ev.emit(EventType.START, t=1_700_000_000.0, total_steps=steps, epochs=steps // 1000)
        n += 1
        for s in range(1, steps + 1):
            ev.emit(EventType.STEP, **step_fields(s, steps))
            n += 1
            if s % 1000 == 0:
                ev.emit(EventType.EPOCH, t=0.0, epoch=s // 1000)
                ev.emit(EventType.SAVE, t=0.0, path=f"/runs/x/e{s}.st")
                n += 2
            if s % 5000 == 0:
                ev.emit(EventType.WARNING, t=0.0, message="slow step")
                n += 1
    return n, steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="lorabake-bench-") as tmp:
        run = RunFolder(tmp)
        n, steps = write_history(run.path, args.events)
        run.train_log.write_text("".join(f"step {i} loss 0.1\n" for i in range(20_000)))
        size = run.events.stat().st_size
        print(f"events.jsonl: {n} events, {steps} steps, {size / 1e6:.1f} MB")

        walls, cpus = [], []
        for _ in range(args.runs):
            c0, t0 = time.process_time(), time.perf_counter()
            h = JobHistory(run.path)
            got = h.poll()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            assert got == n and len(h.steps) == steps, (got, len(h.steps))
        print(f"(a) full load:  best {min(walls) * 1000:.0f} ms, median "
              f"{statistics.median(walls) * 1000:.0f} ms wall  (CPU best {min(cpus) * 1000:.0f}"
              f" ms, median {statistics.median(cpus) * 1000:.0f} ms)")

        with EventWriter(run.path) as ev:
            for s in range(steps + 1, steps + 101):
                ev.emit(EventType.STEP, **step_fields(s, steps + 100))
        t0 = time.perf_counter()
        got = h.poll()
        took = time.perf_counter() - t0
        assert got == 100 and h.steps[-1] == steps + 100
        print(f"(b) 100 appended events, incremental poll: {took * 1000:.2f} ms")
        t0 = time.perf_counter()
        h.poll()
        print(f"    a poll with nothing new: {(time.perf_counter() - t0) * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
