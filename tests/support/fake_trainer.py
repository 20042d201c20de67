"""A stand-in for `python -m lorabake_tui.trainer`: the same arguments, exit codes and run-dir
files (events.jsonl, train.log, state/, a LoRA file), no torch, steps of a few ms.

    fake_trainer.py CONFIG --run-dir DIR     |     fake_trainer.py --resume DIR

The config's `[fake]` table drives it: steps (5), delay (seconds per step, 0.02),
fail = true (exit `exit_code`, default 1, at step `fail_at`, default 2), crash = true
(SIGKILL itself at step `crash_at`, default 2), save_every (write state/ every N steps, 0),
hold_at (a first attempt waits after that step until it is stopped, 0: never).
SIGTERM/SIGINT: finish the step, write state/, exit 3. Resume reads state/step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
import tomllib
from pathlib import Path

from lorabake_tui.trainer.events import EventWriter

STOPPED = 3


def save_state(run_dir: Path, step: int) -> None:
    state = run_dir / "state"
    state.mkdir(exist_ok=True)
    tmp = state / "step.tmp"
    tmp.write_text(f"{step}\n")
    os.replace(tmp, state / "step")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("config", nargs="?")
    p.add_argument("--run-dir")
    p.add_argument("--resume")
    args = p.parse_args(argv)
    if args.resume:
        run_dir = Path(args.resume)
        config = run_dir / "config.toml"
        first = int((run_dir / "state" / "step").read_text()) + 1
    else:
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        config = run_dir / "config.toml"
        shutil.copyfile(args.config, config)
        first = 1
    fake = tomllib.loads(config.read_text()).get("fake", {})
    steps = int(fake.get("steps", 5))
    delay = float(fake.get("delay", 0.02))
    save_every = int(fake.get("save_every", 0))
    # hold_at: a first attempt waits after that step until it is stopped (a test can then
    # stop it at a known point however slow the machine is); a resumed one never holds
    hold_at = int(fake.get("hold_at", 0)) if first == 1 else 0

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    log = open(run_dir / "train.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    with EventWriter(run_dir) as ev:
        ev.emit("start", total_steps=steps, resumed_from=first - 1,
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
                ev.emit("error", message=f"fake failure at step {step}")
                ev.emit("end", status="failed", message="fake failure")
                log.write(f"error: fake failure at step {step}\n")
                print("Traceback (most recent call last):\nRuntimeError: fake failure",
                      file=sys.stderr, flush=True)
                return code
            loss = 0.1 + 0.05 / step
            rate = (step - first + 1) / max(time.time() - t0, 1e-6)
            ev.emit("step", step=step, total_steps=steps, epoch=1 + (step - 1) * 2 // steps,
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
                out = run_dir / f"fake-step{step:06d}.safetensors"
                out.write_bytes(b"fake")
                ev.emit("save", path=str(out))
                ev.emit("end", status="stopped", message=f"stopped at step {step}")
                log.write(f"stopped at step {step}\n")
                return STOPPED
        out = run_dir / "fake.safetensors"
        out.write_bytes(b"fake")
        ev.emit("save", path=str(out))
        save_state(run_dir, steps)
        ev.emit("save", path=str(run_dir / "state"), kind="state", step=steps)  # as the trainer
        ev.emit("end", status="done", message="done")
        log.write("done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
