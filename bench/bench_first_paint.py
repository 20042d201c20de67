"""How soon does the workbench show something, and how soon the scanned dataset?

    python bench/bench_first_paint.py [--images 10000] [--folders 8] [--runs 5] [--dir DIR]
                                      [--no-pyc-cache] [--importtime]

Builds (or reuses) the 10k-image dataset under bench/out/, then starts the real app headless
(bench/first_paint_driver.py: make_app(root, images="none", save_settings=False) under
App.run_test(size=(160, 48))) in a fresh process --runs times and reports, from the moment
before the process is spawned (imports and interpreter start-up included):
  (a) first paint: the Concepts screen's first frame;
  (b) populated: the first frame that shows the scanned concept folders.
Also: import time of lorabake_tui.ui.app alone (and of textual.app alone, for scale), and a
check that torch is not imported by the UI. --importtime lists the slowest imports.
Target: first paint <= 1.0 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import _common as c

TARGET_S = 1.0
DRIVER = c.BENCH / "first_paint_driver.py"
IMPORT_SNIPPET = ("import time; t = time.perf_counter(); import {mod}; "
                  "print(time.perf_counter() - t)")


def import_time(mod: str, runs: int, env: dict[str, str]) -> list[float]:
    cmd = [sys.executable, "-c", IMPORT_SNIPPET.format(mod=mod)]
    c.time_subprocess(cmd, env=env)  # warm-up: fills the bytecode cache
    return [float(c.time_subprocess(cmd, env=env)[1]) for _ in range(runs)]


def first_paint_run(root: Path, first_folder: str, env: dict[str, str]) -> dict:
    spawn = time.time()
    proc = subprocess.run([sys.executable, str(DRIVER), str(root), repr(spawn), first_folder],
                          capture_output=True, text=True, env=env, timeout=120, cwd=c.REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"driver failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}\n"
                         f"{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def print_importtime(env: dict[str, str], top: int = 12) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lorabake_tui.ui.app"],
                          capture_output=True, text=True, env=env, cwd=c.REPO, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(4)))
    by_pkg: dict[str, int] = {}
    for self_us, _, name in rows:
        by_pkg[name.split(".")[0]] = by_pkg.get(name.split(".")[0], 0) + self_us
    print(f"\n-X importtime of lorabake_tui.ui.app (one run; the flag adds overhead), "
          f"{len(rows)} modules")
    print("self time by top-level package: " + ", ".join(
        f"{k} {v / 1000:.0f} ms" for k, v in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:8]))
    print("slowest modules, cumulative (self):")
    for self_us, cum_us, name in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"  {cum_us / 1000:7.1f} ms ({self_us / 1000:5.1f})  {name}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=c.DEFAULT_IMAGES)
    p.add_argument("--folders", type=int, default=c.DEFAULT_FOLDERS)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--dir", type=Path, default=None,
                   help="dataset folder (default bench/out/dataset-IMAGESxFOLDERS)")
    p.add_argument("--no-pyc-cache", action="store_true",
                   help="run children with the environment as is (no bytecode cache of ours)")
    p.add_argument("--importtime", action="store_true", help="list the slowest imports")
    args = p.parse_args()

    print(c.machine_line())
    print(c.load_line())
    root = c.prepare_dataset(args.dir or c.default_dataset_dir(args.images, args.folders),
                             args.images, args.folders)
    c.ensure_importable()
    env = c.child_env(pyc_cache=not args.no_pyc_cache)
    print(c.pyc_note() if not args.no_pyc_cache else "children run with the environment as is")
    first_folder = min(e.name for e in os.scandir(root)
                       if e.is_dir() and not e.name.startswith("."))

    imp_app = import_time("lorabake_tui.ui.app", args.runs, env)
    imp_textual = import_time("textual.app", args.runs, env)
    imp_nocache = None
    if not args.no_pyc_cache and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        imp_nocache = import_time("lorabake_tui.ui.app", args.runs, c.child_env(pyc_cache=False))

    first_paint_run(root, first_folder, env)  # warm-up: bytecode cache, page cache
    runs = [first_paint_run(root, first_folder, env) for _ in range(args.runs)]

    def col(key: str) -> list[float]:
        return [r[key] for r in runs]

    n = str(args.runs)
    rows = [("measurement (seconds from spawn unless said)", "best", "median", "runs",
             f"target <= {c.ms(TARGET_S)}")]
    b, m = c.best_median(imp_app)
    rows.append(("import lorabake_tui.ui.app alone (in its process)", c.ms(b), c.ms(m), n, ""))
    b, m = c.best_median(imp_textual)
    rows.append(("  for scale: import textual.app alone", c.ms(b), c.ms(m), n, ""))
    if imp_nocache:
        b, m = c.best_median(imp_nocache)
        rows.append(("  import lorabake_tui.ui.app, env as is (no .pyc written)",
                     c.ms(b), c.ms(m), n, ""))
    b, m = c.best_median(col("first_paint"))
    rows.append(("(a) first paint of the Concepts screen", c.ms(b), c.ms(m), n,
                 c.verdict(m, TARGET_S)))
    b, m = c.best_median(col("populated_paint"))
    rows.append(("(b) concepts table populated from the scan, painted", c.ms(b), c.ms(m), n,
                 ""))
    print()
    c.print_table(rows)

    print("\ntimeline, median of the runs (seconds from spawn):")
    for key, label in [("main", "driver's first line (interpreter up)"),
                       ("imported", "lorabake_tui.ui.app imported"),
                       ("app_built", "app object built"),
                       ("first_paint", "(a) first frame of the Concepts screen"),
                       ("pilot_ready", "run_test ready"),
                       ("rows", "scan done, table rows added (show_dataset returned)"),
                       ("populated_paint", "(b) frame with the concept folders")]:
        print(f"  {c.ms(sorted(col(key))[len(runs) // 2]):>9}  {label}")
    scan_in_app = [r["rows"] - r["first_paint"] for r in runs]
    print(f"  scan in the app's worker thread, first frame to rows: "
          f"median {c.ms(sorted(scan_in_app)[len(runs) // 2])}")

    last = runs[-1]
    print(f"\nmodules loaded: {last['modules']}; notable: "
          f"{', '.join(last['heavy_modules']) or 'none'}; RSS {last['rss_mib']:.0f} MiB")
    torch = [r["torch_loaded"] for r in runs]
    if any(torch):
        print(f"FAIL: torch was imported by the UI in {sum(torch)} of {len(runs)} runs")
    else:
        print("ok: torch is not in sys.modules after the UI started and showed the dataset")
    driver_cmd = [sys.executable, str(DRIVER), str(root), "SPAWN_TIME", first_folder]
    print(f"driver: {' '.join(driver_cmd)}")
    if args.importtime:
        print_importtime(env)
    print(c.load_line())
    return 1 if any(torch) else 0


if __name__ == "__main__":
    sys.exit(main())
