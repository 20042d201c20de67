"""`python -m lorabake_tui.trainer.render REQUEST.json --run-dir DIR`: draw a grid or a trigger
probe (core/eval/request.py) with one model load. The job runner starts it like the trainer
(same argument shape, exit codes of core/run/exit_codes.py); `lorabake grid` and `lorabake
probe` call main() in the foreground. SIGTERM or Ctrl+C finish the image being drawn, leave
what was drawn (a grid with grey cells for the rest) and exit 3.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ...core.base.errors import LorabakeError
from ...core.eval.request import GridRequest, read_request
from ...core.run import exit_codes
from ...core.run.event_writer import EventWriter
from ...core.run.events import EndStatus, EventType


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lorabake_tui.trainer.render",
        description="Draw a grid or a trigger probe from a render request (request.json). "
                    + exit_codes.help_line())
    p.add_argument("request", help="the request (request.json in a render folder)")
    p.add_argument("--run-dir", help="where events.jsonl goes (default: the request's folder)")
    return p


class _EchoingEvents(EventWriter):
    """Events that also print each image's progress (the foreground commands)."""

    def __init__(self, run_dir: Path, say: Callable[[str], None]) -> None:
        super().__init__(run_dir)
        self.say = say

    def emit(self, type_: str, **fields):
        event = super().emit(type_, **fields)
        if event["type"] == EventType.RENDER:
            self.say(f"[{event['done']}/{event['total']}] {event.get('label', '')}  "
                     f"(eta {event.get('eta_s', 0):.0f} s)")
        return event


def main(argv: list[str] | None = None, *, stop: Callable[[], bool] | None = None,
         say: Callable[[str], None] | None = None, echo: bool = False) -> int:
    args = build_parser().parse_args(argv)
    say = say or (lambda text: print(text, flush=True))
    flag: list[int] = []
    if stop is None:
        def on_signal(signum, _frame) -> None:
            flag.append(signum)
            say(f"{signal.Signals(signum).name}: stopping after the image being drawn")

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        stop = lambda: bool(flag)  # noqa: E731
    try:
        req = read_request(Path(args.request))
    except LorabakeError as exc:
        say(f"error: {exc}")
        return exit_codes.CONFIG_ERROR
    run_dir = Path(args.run_dir or Path(args.request).parent)
    with (_EchoingEvents(run_dir, say) if echo else EventWriter(run_dir)) as events:
        return _run(req, events, stop, say)


def _run(req, events: EventWriter, stop, say) -> int:
    from .grid_run import run_grid
    from .probe_run import run_probe

    def end(code: int, status: EndStatus, message: str) -> int:
        say(message)
        events.emit(EventType.END, status=status, message=message, exit_code=code)
        return code

    # transformers warns that torchvision (deliberately absent) would speed up image
    # processors the pipeline never uses: noise in every render's log
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from .engine import RenderEngine

        t0 = time.monotonic()
        say(f"loading {req.base}")
        engine = RenderEngine.load(req.base, dtype=req.render.dtype,
                                   clip_skip=req.render.clip_skip)
        say(f"loaded in {time.monotonic() - t0:.1f} s")
        work = run_grid if isinstance(req, GridRequest) else run_probe
        outcome = work(engine, req, events, stop)
        say(outcome.message)
        return outcome.code
    except LorabakeError as exc:
        return end(exit_codes.CONFIG_ERROR, EndStatus.FAILED, str(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return end(exit_codes.FAILED, EndStatus.FAILED, f"{where}{exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - one line in events, the traceback in the log
        torch_mod = sys.modules.get("torch")
        if torch_mod is not None and isinstance(exc, torch_mod.OutOfMemoryError):
            return end(exit_codes.OUT_OF_MEMORY, EndStatus.FAILED,
                       "out of memory: lower the size, or render fewer at once")
        traceback.print_exc()
        return end(exit_codes.FAILED, EndStatus.FAILED, f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
