"""A stand-in for `python -m lorabake_tui.trainer.render` in the Evaluate tests: the same
arguments (REQUEST.json --run-dir DIR), the same files (cell PNGs named by core/eval/layout,
the grid manifest rewritten after every cell, the labelled grid at the end) and events (start,
render, end), no torch: each cell is a flat colour from its row and column.

    fake_render.py REQUEST.json --run-dir DIR

$FAKE_RENDER_DELAY: seconds per cell (0.02). $FAKE_RENDER_HOLD=N: after N cells, wait until
stopped. SIGTERM: stop after the cell, write `end` stopped, exit 3."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from PIL import Image

from lorabake_tui.core.eval.compose import compose_grid
from lorabake_tui.core.eval.layout import grid_cells
from lorabake_tui.core.eval.manifest import write_grid_manifest
from lorabake_tui.core.eval.request import GridRequest, read_request
from lorabake_tui.core.run.event_writer import EventWriter
from lorabake_tui.core.run.events import EndStatus, EventType

stopping = False


def _stop(*_):
    global stopping
    stopping = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("request")
    p.add_argument("--run-dir", required=True)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    delay = float(os.environ.get("FAKE_RENDER_DELAY", "0.02"))
    hold = int(os.environ.get("FAKE_RENDER_HOLD", "0"))
    req = read_request(Path(args.request))
    with EventWriter(args.run_dir) as ev:
        if not isinstance(req, GridRequest):
            ev.emit(EventType.START, total_steps=0)
            ev.emit(EventType.END, status=EndStatus.DONE, message="probe (fake): nothing drawn")
            return 0
        cells = grid_cells(req)
        ev.emit(EventType.START, total_steps=len(cells))
        done = []
        write_grid_manifest(req, done, complete=False)
        for n, cell in enumerate(cells, start=1):
            while hold and len(done) >= hold and not stopping:
                time.sleep(0.02)
            if stopping:
                ev.emit(EventType.END, status=EndStatus.STOPPED, message="stopped")
                return 3
            time.sleep(delay)
            cell.path.parent.mkdir(parents=True, exist_ok=True)
            colour = (40 + 60 * cell.row % 256, int(200 * cell.weight) % 256, 90)
            Image.new("RGB", (req.render.width // 8, req.render.height // 8), colour).save(
                cell.path)
            done.append(cell)
            write_grid_manifest(req, done, complete=False)
            ev.emit(EventType.RENDER, done=n, total=len(cells), path=str(cell.path),
                    label=cell.lora.label, s_per_image=delay, eta_s=delay * (len(cells) - n))
        write_grid_manifest(req, done, complete=True)
        compose_grid(req, done).save(req.out)
        ev.emit(EventType.END, status=EndStatus.DONE, message=f"{len(cells)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
