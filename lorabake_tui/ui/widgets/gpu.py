"""GPU utilisation and memory from nvidia-smi, polled in a worker thread every few seconds.

Hidden where nvidia-smi does not exist (a CPU box, a laptop watching over SSH) or stops
answering. $LORABAKE_NVIDIA_SMI replaces the command (tests, or a wrapper script)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.widgets import Static

from ..palette import theme_style

NVIDIA_SMI = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used,memory.total",
              "--format=csv,noheader,nounits"]
COMMAND_ENV = "LORABAKE_NVIDIA_SMI"
POLL_S = 3.0
GIVE_UP_AFTER = 3  # failures in a row before the meter hides for good


@dataclass(frozen=True, slots=True)
class GpuStat:
    index: int
    util: float | None  # percent
    used_mb: float | None
    total_mb: float | None


def gpu_command() -> list[str] | None:
    """The query to run, or None when its program is not installed."""
    custom = os.environ.get(COMMAND_ENV, "").strip()
    cmd = shlex.split(custom) if custom else list(NVIDIA_SMI)
    return cmd if cmd and shutil.which(cmd[0]) else None


def parse_gpu_csv(text: str) -> list[GpuStat]:
    """One GpuStat per line of `util, used, total`; "[N/A]" fields become None."""
    def num(s: str) -> float | None:
        try:
            return float(s)
        except ValueError:
            return None

    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        out.append(GpuStat(len(out), *(num(p) for p in parts)))
    return out


def _bar(fraction: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def gpu_text(stats: list[GpuStat], mine: frozenset[int] | None = None, *, app=None) -> Text:
    """`GPU0 ███░ 97% 18.2/24.0 GB`; the selected job's GPUs in bold; colours from `app`'s
    theme (ui/palette.py)."""
    text = Text()
    for s in stats:
        if text:
            text.append("   ")
        strong = mine is not None and s.index in mine
        text.append(f"GPU{s.index} ", style="bold" if strong else "dim")
        if s.util is not None:
            role = "success" if s.util >= 70 else "warning" if s.util >= 20 else "error"
            text.append(_bar(s.util / 100), style=theme_style(app, role))
            text.append(f" {s.util:3.0f}% ")
        if s.used_mb is not None and s.total_mb:
            text.append(f"{s.used_mb / 1024:.1f}/{s.total_mb / 1024:.1f} GB",
                        style=theme_style(app, "error", bold=True)
                        if s.used_mb / s.total_mb > 0.95 else "")
    return text


class GpuMeter(Static):
    DEFAULT_CSS = """
    GpuMeter { height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stats: list[GpuStat] = []
        self.mine: frozenset[int] | None = None
        self._failures = 0
        self._busy = False
        self.command = gpu_command()

    def on_mount(self) -> None:
        self.display = False  # until the first answer
        if self.command is not None:
            self.poll()
            self._timer = self.set_interval(POLL_S, self.poll)

    def show_gpus(self, gpus: str) -> None:
        """Mark the selected job's devices (its CUDA_VISIBLE_DEVICES, '' = all)."""
        self.mine = frozenset(int(g) for g in gpus.split(",") if g.isdigit()) or None
        self._draw()

    def poll(self) -> None:
        if self._busy or self.command is None:
            return
        self._busy = True
        self._query(self.command)

    @work(thread=True, group="gpu", exit_on_error=False, description="nvidia-smi")
    def _query(self, cmd: list[str]) -> None:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5,
                                  stdin=subprocess.DEVNULL)
            stats = parse_gpu_csv(proc.stdout) if proc.returncode == 0 else []
        except (OSError, subprocess.SubprocessError):
            stats = []
        self.app.call_from_thread(self._answer, stats)

    def _answer(self, stats: list[GpuStat]) -> None:
        self._busy = False
        if not stats:
            self._failures += 1
            if self._failures >= GIVE_UP_AFTER:
                self.command = None  # no driver, or it hangs: stop asking
                self._timer.stop()
                self.display = False
            return
        self._failures = 0
        self.stats = stats
        self.display = True
        self._draw()

    def _draw(self) -> None:
        if self.stats:
            # always one line: no screen-wide layout pass
            self.update(gpu_text(self.stats, self.mine, app=self.app), layout=False)
