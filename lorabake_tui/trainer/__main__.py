"""`python -m lorabake_tui.trainer CONFIG` and `accelerate launch -m lorabake_tui.trainer
CONFIG`: train a LoRA. Arguments: core/run/launch.py (shared with `lorabake train`); exit
codes: core/run/exit_codes.py (0 done, 1 failed, 2 config error, 3 stopped with state saved,
4 out of memory, 5 non-finite loss)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from ..core.run import exit_codes
from ..core.run.event_reader import finished_end
from ..core.run.events import EndStatus, EventType
from ..core.run.folder import CONFIG_SNAPSHOT, TRAIN_LOG, RunFolder
from ..core.run.launch import trainer_parser


def build_parser() -> argparse.ArgumentParser:
    return trainer_parser("python -m lorabake_tui.trainer")


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
            snapshot = run_dir / CONFIG_SNAPSHOT
            if not snapshot.is_file():
                raise LorabakeError(f"{run_dir}: not a lorabake run folder "
                                    f"(no {CONFIG_SNAPSHOT})")
            if finished_end(RunFolder(run_dir).events) is not None:
                # its final LoRA is written: training on would overwrite a finished run
                raise LorabakeError(f"{run_dir}: this run already finished (done); nothing "
                                    "to resume", f"train again in a new run folder: "
                                    f"lorabake train {snapshot}")
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
            if rank0 and RunFolder(run_dir).holds_run():
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
            with open(Path(trainer.run_dir) / TRAIN_LOG, "a", encoding="utf-8") as fh:
                fh.write(text)
            from ..core.run.event_writer import EventWriter

            if int(os.environ.get("RANK", "0")) == 0:
                with EventWriter(trainer.run_dir) as ev:
                    last = text.strip().splitlines()[-1]
                    ev.emit(EventType.ERROR, message=last)
                    ev.emit(EventType.END, status=EndStatus.FAILED, message=last,
                            exit_code=exit_codes.FAILED)
        except OSError:
            pass
        return exit_codes.FAILED
    if outcome.code != exit_codes.DONE:
        print(f"lorabake train: {outcome.message}", file=sys.stderr)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
