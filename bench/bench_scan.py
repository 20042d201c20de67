"""How long does scanning a 10k-image dataset take?

    python bench/bench_scan.py [--images 10000] [--folders 8] [--runs 5] [--dir DIR] [--profile]
                               [--no-pyc-cache]

Builds (or reuses) the dataset under bench/out/, then times
  (a) scan_dataset() in this process, warm page cache: best and median of --runs;
  (b) the whole `lorabake scan DIR --json` command as a subprocess, spawn to exit (interpreter
      start-up and imports included): best and median of --runs;
  (c) "cold-ish" scan_dataset(): file contents evicted from the page cache first with
      posix_fadvise(DONTNEED) (no root needed; directory and inode caches stay warm).
--profile adds a cProfile of one warm in-process scan (top functions by cumulative time).
Target: a 10k-image scan in <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c

TARGET_S = 1.5


def check(ds, images: int) -> None:
    found = sum(con.image_count for con in ds.concepts)
    if found != images or ds.problems:
        raise SystemExit(f"scan found {found} images and {len(ds.problems)} problem(s); "
                         f"expected {images} and none: is the dataset damaged?")


def dataset_files(root: Path) -> list[str]:
    return [e.path for d in os.scandir(root) if d.is_dir() and not d.name.startswith(".")
            for e in os.scandir(d.path)]


def evict(paths: list[str]) -> None:
    """Ask the kernel to drop these files' cached pages; needs no root. Dirty pages (a freshly
    built dataset) cannot be dropped, hence the sync first."""
    os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(paths: list[str]) -> float | None:
    """Share of these files' pages in the page cache, via util-linux `fincore` if present."""
    if not shutil.which("fincore"):
        return None
    try:
        out = subprocess.run(["fincore", "-b", "-n", "-r", "-o", "RES,SIZE", *paths],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    resident = pages = 0
    for line in out.split("\n"):
        parts = line.split()
        if len(parts) == 2:
            resident += int(parts[0])
            pages += -(-int(parts[1]) // 4096) * 4096  # the file's size in whole pages
    return resident / pages if pages else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=c.DEFAULT_IMAGES)
    p.add_argument("--folders", type=int, default=c.DEFAULT_FOLDERS)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--dir", type=Path, default=None,
                   help="dataset folder (default bench/out/dataset-IMAGESxFOLDERS)")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one scan")
    p.add_argument("--no-pyc-cache", action="store_true",
                   help="run children with the environment as is (no bytecode cache of ours)")
    args = p.parse_args()

    print(c.machine_line())
    print(c.load_line())
    root = c.prepare_dataset(args.dir or c.default_dataset_dir(args.images, args.folders),
                             args.images, args.folders)
    c.ensure_importable()
    from lorabake_tui.core.dataset.scan import scan_dataset

    # (a) in-process, warm: one untimed run first fills the page cache and dentry cache
    check(scan_dataset(root), args.images)
    inproc = []
    for _ in range(args.runs):
        t = time.perf_counter()
        ds = scan_dataset(root)
        inproc.append(time.perf_counter() - t)
    check(ds, args.images)

    # (b) the CLI command, spawn to exit
    cmd = [*c.lorabake_command(), "scan", str(root), "--json"]
    env = c.child_env(pyc_cache=not args.no_pyc_cache)
    print(c.pyc_note() if not args.no_pyc_cache else "children run with the environment as is")
    baseline = [c.time_subprocess([sys.executable, "-c", "pass"], env=env)[0]
                for _ in range(args.runs)]
    c.time_subprocess(cmd, env=env)  # warm-up: .pyc files and caches
    cli = []
    for _ in range(args.runs):
        elapsed, out = c.time_subprocess(cmd, env=env)
        cli.append(elapsed)
    data = json.loads(out)
    if sum(con["images"] for con in data["concepts"]) != args.images:
        raise SystemExit("`lorabake scan --json` reported the wrong image count")

    # (c) cold-ish: contents evicted from the page cache (metadata caches stay warm)
    cold: list[float] = []
    cold_note = ""
    if hasattr(os, "posix_fadvise"):
        files = dataset_files(root)
        sample = files[:: max(1, len(files) // 400)]
        evicted = None
        for i in range(3):
            evict(files)
            if i == 0:
                evicted = resident_fraction(sample)
            t = time.perf_counter()
            check(scan_dataset(root), args.images)
            cold.append(time.perf_counter() - t)
        scanned = resident_fraction(sample)
        cold_note = "runs " + ", ".join(c.ms(x) for x in cold)
        if evicted is not None and scanned is not None:
            cold_note += (f"; page cache held {evicted:.0%} of the sampled files' pages after "
                          f"eviction, {scanned:.0%} after a scan")
    else:
        cold_note = "posix_fadvise unavailable here: warm-cache figures only"

    n = args.runs
    rows = [("measurement", "best", "median", "runs", f"target <= {c.ms(TARGET_S)}")]
    b, m = c.best_median(inproc)
    rows.append((f"(a) scan_dataset(), in-process, warm cache, {args.images} images",
                 c.ms(b), c.ms(m), str(n), c.verdict(m, TARGET_S)))
    b, m = c.best_median(cli)
    rows.append(("(b) `lorabake scan DIR --json`, spawn to exit",
                 c.ms(b), c.ms(m), str(n), c.verdict(m, TARGET_S)))
    b, m = c.best_median(baseline)
    rows.append(("    of which bare interpreter start (`python -c pass`)",
                 c.ms(b), c.ms(m), str(n), ""))
    if cold:
        b, m = c.best_median(cold)
        rows.append(("(c) scan_dataset(), file pages evicted (fadvise DONTNEED)",
                     c.ms(b), c.ms(m), str(len(cold)), c.verdict(m, TARGET_S)))
    print()
    c.print_table(rows)
    print(f"\nper image (a, median): {c.best_median(inproc)[1] / args.images * 1e6:.1f} us; "
          f"command: {' '.join(cmd)}")
    if cold_note:
        print(f"(c): {cold_note}")
    print("(a)/(b) run with a warm page cache; a truly cold scan (after reboot or "
          "drop_caches, which needs root) also pays directory and inode reads.")

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(scan_dataset, root)
        print("\ncProfile of one warm scan_dataset() (profiling overhead inflates times):")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(12)
    print(c.load_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
