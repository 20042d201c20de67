"""Helpers shared by the bench scripts (paths, the benchmark dataset, timing, tables)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"  # git-ignored
DEFAULT_IMAGES = 10000
DEFAULT_FOLDERS = 8


def default_dataset_dir(images: int, folders: int) -> Path:
    return OUT / f"dataset-{images}x{folders}"


_NEEDS_PATH = False


def ensure_importable() -> None:
    """Let `import lorabake_tui` work even if the venv lacks the (editable) install."""
    global _NEEDS_PATH
    try:
        import lorabake_tui  # noqa: F401
    except ImportError:
        _NEEDS_PATH = True
        sys.path.insert(0, str(REPO))


def prepare_dataset(dir: Path, images: int, folders: int) -> Path:
    from make_dataset import ensure_dataset

    t = time.perf_counter()
    root, built = ensure_dataset(dir, images, folders)
    if built:
        print(f"built {images}-image dataset in {root} ({time.perf_counter() - t:.1f} s)")
    else:
        print(f"reusing {images}-image dataset in {root}")
    return root.resolve()


def lorabake_command() -> list[str]:
    """The `lorabake` console script next to this interpreter, else `python -m lorabake_tui`."""
    exe = Path(sys.executable).parent / ("lorabake.exe" if os.name == "nt" else "lorabake")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "lorabake_tui"]


PYCACHE = OUT / "pycache"


def child_env(*, pyc_cache: bool = True) -> dict[str, str]:
    """Environment for timed children: the repo put on PYTHONPATH only if it must be.

    pyc_cache: run with a bytecode cache, as after `pip install` (which compiles every .py).
    It lives in bench/out/pycache (PYTHONPYCACHEPREFIX), so nothing is written elsewhere; a
    PYTHONDONTWRITEBYTECODE in the environment would otherwise make every start compile
    lorabake_tui from source. pyc_cache=False keeps the environment as it is.
    """
    env = dict(os.environ)
    if pyc_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    if _NEEDS_PATH:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def time_subprocess(cmd: list[str], *, env: dict[str, str] | None = None,
                    timeout: float = 60) -> tuple[float, str]:
    """(seconds from spawn to exit, stdout); raises if the command fails."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def pyc_note() -> str:
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return ("note: PYTHONDONTWRITEBYTECODE is set here; children run with a bytecode cache "
                f"in {PYCACHE} instead (as after pip install), see --no-pyc-cache")
    return f"children run with their bytecode cache in {PYCACHE}"


def best_median(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def verdict(value: float, target: float | None) -> str:
    if target is None:
        return ""
    return "ok" if value <= target else f"OVER by {ms(value - target)}"


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) if c[:1].isdigit() or c == "-"
                 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def machine_line() -> str:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} logical CPU(s)"
    if usable is not None and usable != os.cpu_count():
        cores += f", {usable} usable by this process (nproc)"
    if physical:
        cores += f", {physical} physical"
    return (f"machine: {platform.machine()} {platform.system()} {platform.release()}, {cores}; "
            f"Python {platform.python_version()}")


def load_line() -> str:
    """System load: other processes on a small machine move these figures a lot."""
    if not hasattr(os, "getloadavg"):
        return "load average: unknown"
    one, five, fifteen = os.getloadavg()
    return (f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPU(s)"
            + ("  <- busy machine: trust 'best' over 'median'"
               if one > (os.cpu_count() or 1) / 2 else ""))
