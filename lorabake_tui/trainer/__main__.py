"""`python -m lorabake_tui.trainer CONFIG` and `accelerate launch -m lorabake_tui.trainer
CONFIG`: train a LoRA. Exit codes: see core/exit_codes.py (0 done, 1 failed, 2 config error,
3 stopped with state saved, 4 out of memory, 5 non-finite loss)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from ..core.run import exit_codes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lorabake_tui.trainer",
        description="Train a SD 1.5 LoRA/LoCon from a lorabake config. SIGTERM or Ctrl+C "
                    "finishes the step, saves state and a LoRA, and exits 3; --resume RUN_DIR "
                    "continues. " + exit_codes.help_line())
    p.add_argument("config", nargs="?", help="the training config (TOML)")
    p.add_argument("--run-dir", help="where this run writes (default: "
                   "OUTPUT_DIR/OUTPUT_NAME-YYYYmmdd-HHMMSS)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or crashed run "
                   "from its saved state, with its own config")
    return p


def _new_run_dir(cfg) -> Path:
    out = cfg.output_dir
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run = out / f"{cfg.output_name}-{stamp}"
    n = 1
    while run.exists():
        n += 1
        run = out / f"{cfg.output_name}-{stamp}-{n}"
    return run


def _same_on_all_ranks(path: Path) -> Path:
    """Under `accelerate launch` every process must write into the same run folder."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return path
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list, parse_flag_from_env

    # the same device choice the Accelerator makes later (CPU runs under ACCELERATE_USE_CPU)
    PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    box = [str(path)]
    broadcast_object_list(box, from_process=0)
    return Path(box[0])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous: dict = {}
    try:
        return _main(args, previous)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(args, previous: dict) -> int:
    from ..core.base.errors import LorabakeError

    try:
        from .loop import FaultHooks, StopFlag, Trainer, write_snapshot
        from .run_config import load_run_config
        from .state import find_state

        stop = StopFlag()
        previous.update(stop.install())
        hooks = FaultHooks.from_env()
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if args.resume:
            run_dir = Path(args.resume)
            snapshot = run_dir / "config.toml"
            if not snapshot.is_file():
                raise LorabakeError(f"{run_dir}: not a lorabake run folder (no config.toml)")
            if find_state(run_dir) is None:
                raise LorabakeError(f"{run_dir}: no saved state to resume from",
                                    "a run saves state when stopped, or with "
                                    "saving.save_state = true")
            cfg = load_run_config(snapshot, processes=world)
            trainer = Trainer(cfg, run_dir, resume_from=run_dir, stop=stop, hooks=hooks)
        else:
            if not args.config:
                build_parser().error("give a CONFIG or --resume RUN_DIR")
            cfg = load_run_config(args.config, processes=world)
            run_dir = Path(args.run_dir) if args.run_dir else _new_run_dir(cfg)
            run_dir = _same_on_all_ranks(run_dir.resolve())
            rank0 = int(os.environ.get("RANK", "0")) == 0
            # only the main process checks: the others would see its fresh events.jsonl
            if rank0 and (run_dir / "events.jsonl").exists():
                raise LorabakeError(f"{run_dir} already holds a run",
                                    f"continue it with --resume {run_dir}, or pick another "
                                    "--run-dir")
            if rank0:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_snapshot(cfg, run_dir)
            trainer = Trainer(cfg, run_dir, resume_from=cfg.settings.saving.resume, stop=stop,
                              hooks=hooks)
    except LorabakeError as exc:
        print(f"lorabake train: {exc}", file=sys.stderr)
        return exit_codes.CONFIG_ERROR
    try:
        outcome = trainer.run()
    except Exception:  # noqa: BLE001 - record it where the dashboard looks, then fail
        text = traceback.format_exc()
        print(text, file=sys.stderr)
        try:
            with open(Path(trainer.run_dir) / "train.log", "a", encoding="utf-8") as fh:
                fh.write(text)
            from .events import EventWriter

            if int(os.environ.get("RANK", "0")) == 0:
                with EventWriter(trainer.run_dir) as ev:
                    last = text.strip().splitlines()[-1]
                    ev.emit("error", message=last)
                    ev.emit("end", status="failed", message=last, exit_code=exit_codes.FAILED)
        except OSError:
            pass
        return exit_codes.FAILED
    if outcome.code != exit_codes.DONE:
        print(f"lorabake train: {outcome.message}", file=sys.stderr)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
