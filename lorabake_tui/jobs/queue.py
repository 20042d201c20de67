"""The training queue: configs waiting for the trainer, one TOML snapshot each, in
<dataset>/.lorabake/queue/. The Config screen adds to it; the Train stage runs it in order.
A snapshot is immutable, so editing the config afterwards never changes a queued run."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.base.atomic import atomic_write_text
from ..core.base.project_files import STATE_DIRNAME


@dataclass(frozen=True, slots=True)
class QueuedRun:
    path: Path
    name: str
    queued_at: str


def queue_dir(root: Path) -> Path:
    return Path(root) / STATE_DIRNAME / "queue"


def enqueue(root: Path, config_text: str, name: str) -> QueuedRun:
    d = queue_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "run")[:60]
    path = d / f"{stamp}-{safe}.toml"
    n = 1
    while path.exists():  # two in one second
        n += 1
        path = d / f"{stamp}-{safe}-{n}.toml"
    atomic_write_text(path, config_text)
    return QueuedRun(path, safe, stamp)


def list_queue(root: Path) -> list[QueuedRun]:
    d = queue_dir(root)
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.toml")):
        stamp, _, rest = p.stem.partition("-")
        time_part, _, name = rest.partition("-")
        out.append(QueuedRun(p, name or p.stem, f"{stamp}-{time_part}"))
    return out
