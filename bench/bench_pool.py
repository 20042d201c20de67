"""What do the image tools' worker pools cost to start, and how fast do they stop?

    python bench/bench_pool.py [--workers N] [--runs 5] [--dir DIR]

1. Start and finish: run_tasks over 64 trivial items with a pool of 2 and of N workers
   (default os.cpu_count()), in a process that has imported the image tools, as the CLI
   has: the whole price of a pool (fork, the workers' initializer that ties them to their
   owner, shutdown), paid once per batch.
2. Stop: `lorabake images DIR convert --workers N` on 16 noise JPEGs of 1500 px (seconds of
   work), sent SIGTERM and, in a second run, SIGKILL once its workers are busy: the time
   until every worker is gone, until the caller's pipes reach EOF, and the exit code.
   SIGTERM must end with 143 and nothing written; SIGKILL with no worker left (FAIL else).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common as c

IMAGES = 16


def pool_cost(workers: int, runs: int) -> tuple[float, float]:
    import lorabake_tui.core.dataset.imagetools  # noqa: F401 - the CLI's process size
    from lorabake_tui.core.base.workers import run_tasks

    items = list(range(64))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        assert run_tasks(abs, items, workers=workers) == items
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def build(src: Path) -> Path:
    import numpy as np
    from PIL import Image

    first = src / "10_bench" / "img_00.jpg"
    if not first.exists():
        first.parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(3).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
        Image.fromarray(noise).save(first, quality=90)
        for i in range(1, IMAGES):
            shutil.copyfile(first, first.with_name(f"img_{i:02d}.jpg"))
    return src


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop_once(src: Path, work: Path, workers: int, sig: int) -> dict:
    import psutil

    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(src, work)
    proc = subprocess.Popen([*c.lorabake_command(), "images", str(work), "convert",
                             "--workers", str(workers)], env=c.child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    while len(me.children()) < workers:
        if proc.poll() is not None:
            sys.exit(f"FAIL: the command ended before its workers started: {proc.stderr}")
        time.sleep(0.005)
    time.sleep(0.5)
    kids = [k.pid for k in me.children()]
    t = time.perf_counter()
    proc.send_signal(sig)
    while not all(_gone(k) for k in kids) and time.perf_counter() - t < 10:
        time.sleep(0.002)
    gone_s = time.perf_counter() - t if all(_gone(k) for k in kids) else None
    try:
        proc.communicate(timeout=10)
        eof_s: float | None = time.perf_counter() - t
    except subprocess.TimeoutExpired:
        eof_s = None
    for k in kids:
        if not _gone(k):
            os.kill(k, signal.SIGKILL)
    proc.kill()
    proc.wait()
    untouched = not any(work.rglob("*.png"))
    return {"gone": gone_s, "eof": eof_s, "code": proc.returncode, "untouched": untouched}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default bench/out)")
    args = ap.parse_args()
    c.ensure_importable()
    base = args.dir or c.OUT
    base.mkdir(parents=True, exist_ok=True)
    print(c.machine_line())
    print(c.load_line())
    rows = [("pool", "best", "median")]
    for n in sorted({2, args.workers}):
        best, med = pool_cost(n, args.runs * 4)
        rows.append((f"{n} workers, 64 trivial tasks", c.ms(best), c.ms(med)))
    c.print_table(rows)
    src = build(base / "pool-src")
    print()
    rows = [("signal", "workers gone", "pipes at EOF", "exit", "nothing written")]
    failed = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for _ in range(max(1, args.runs // 2)):
            r = stop_once(src, base / "pool-run", args.workers, sig)
            rows.append((signal.Signals(sig).name, c.ms(r["gone"]), c.ms(r["eof"]),
                         str(r["code"]), "yes" if r["untouched"] else "no"))
            if r["gone"] is None or r["eof"] is None:
                failed.append(f"{signal.Signals(sig).name}: a worker or the pipe outlived it")
            if sig == signal.SIGTERM and (r["code"] != 143 or not r["untouched"]):
                failed.append(f"SIGTERM: exit {r['code']}, nothing written: {r['untouched']}")
    c.print_table(rows)
    print(c.load_line())
    if failed:
        sys.exit("FAIL: " + "; ".join(failed))


if __name__ == "__main__":
    main()
