"""A stand-in for `python -m lorabake_tui.trainer`: the same arguments (its parser), exit codes,
run-dir files (events.jsonl through the same writer, train.log, state/, a LoRA file) and
event schema, no torch, steps of a few ms.

    fake_trainer.py CONFIG --run-dir DIR     |     fake_trainer.py --resume DIR

The config's `[fake]` table drives it: steps (5), delay (seconds per step, 0.02),
fail = true (exit `exit_code`, default 1, at step `fail_at`, default 2), crash = true
(SIGKILL itself at step `crash_at`, default 2), save_every (write state/ every N steps, 0),
hold_at (a first attempt waits after that step until it is stopped, 0: never; a list of
steps: each attempt waits at the first one it reaches).
SIGTERM/SIGINT: finish the step, write state/, exit 3. Resume reads state/step.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import tomllib
from pathlib import Path

from lorabake_tui.core.run.event_writer import EventWriter
from lorabake_tui.core.run.events import STATE_SAVE, EndStatus, EventType
from lorabake_tui.core.run.exit_codes import DONE, STOPPED
from lorabake_tui.core.run.folder import RunFolder, final_lora_name, step_lora_name
from lorabake_tui.core.run.launch import trainer_parser


def save_state(run_dir: Path, step: int) -> None:
    state = RunFolder(run_dir).state
    state.mkdir(exist_ok=True)
    tmp = state / "step.tmp"
    tmp.write_text(f"{step}\n")
    os.replace(tmp, state / "step")


def main(argv: list[str] | None = None) -> int:
    args = trainer_parser("fake_trainer.py").parse_args(argv)
    if args.resume:
        run = RunFolder(args.resume)
        first = int((run.state / "step").read_text()) + 1
    else:
        run = RunFolder(args.run_dir)
        run.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.config, run.config_snapshot)
        first = 1
    run_dir, config = run.path, run.config_snapshot
    fake = tomllib.loads(config.read_text()).get("fake", {})
    steps = int(fake.get("steps", 5))
    delay = float(fake.get("delay", 0.02))
    save_every = int(fake.get("save_every", 0))
    # hold_at: a first attempt waits after that step until it is stopped (a test can then
    # stop it at a known point however slow the machine is); a resumed one never holds,
    # unless hold_at lists a step for it
    hold = fake.get("hold_at", 0)
    if isinstance(hold, list):
        hold_at = min((int(h) for h in hold if int(h) >= first), default=0)
    else:
        hold_at = int(hold) if first == 1 else 0

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    log = open(run.train_log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    with EventWriter(run_dir) as ev:
        ev.emit(EventType.START, total_steps=steps, resumed_from=first - 1,
                cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), cwd=os.getcwd())
        log.write(f"start: {steps} steps from {first}\n")
        print(f"fake trainer: {steps} steps from {first}", flush=True)
        t0 = time.time()
        for step in range(first, steps + 1):
            time.sleep(delay)
            if fake.get("crash") and step == int(fake.get("crash_at", 2)):
                os.kill(os.getpid(), signal.SIGKILL)
            if fake.get("fail") and step == int(fake.get("fail_at", 2)):
                code = int(fake.get("exit_code", 1))
                ev.emit(EventType.ERROR, message=f"fake failure at step {step}")
                ev.emit(EventType.END, status=EndStatus.FAILED, message="fake failure",
                        exit_code=code)
                log.write(f"error: fake failure at step {step}\n")
                print("Traceback (most recent call last):\nRuntimeError: fake failure",
                      file=sys.stderr, flush=True)
                return code
            loss = 0.1 + 0.05 / step
            rate = (step - first + 1) / max(time.time() - t0, 1e-6)
            ev.emit(EventType.STEP, step=step, total_steps=steps, epoch=1 + (step - 1) * 2 // steps,
                    loss=round(loss, 5), avg_loss=round(loss + 0.01, 5), lr=[1e-4, 5e-5],
                    it_per_s=round(rate, 3), samples_per_s=round(2 * rate, 3),
                    eta_s=round((steps - step) / rate, 2), vram_gb=None)
            log.write(f"step {step}/{steps} loss {loss:.4f}\n")
            if save_every and step % save_every == 0:
                save_state(run_dir, step)
            while step == hold_at and not stop:
                time.sleep(0.02)
            if stop:
                save_state(run_dir, step)
                out = run_dir / step_lora_name("fake", step)
                out.write_bytes(b"fake")
                ev.emit(EventType.SAVE, path=str(out), step=step)
                ev.emit(EventType.END, status=EndStatus.STOPPED,
                        message=f"stopped at step {step}", exit_code=STOPPED)
                log.write(f"stopped at step {step}\n")
                return STOPPED
        out = run_dir / final_lora_name("fake")
        out.write_bytes(b"fake")
        ev.emit(EventType.SAVE, path=str(out), step=steps)
        save_state(run_dir, steps)
        ev.emit(EventType.SAVE, path=str(run.state), kind=STATE_SAVE, step=steps)  # as the trainer
        ev.emit(EventType.END, status=EndStatus.DONE, message="done", exit_code=DONE)
        log.write("done\n")
    return DONE


if __name__ == "__main__":
    sys.exit(main())
