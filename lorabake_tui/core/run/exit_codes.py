"""The trainer's exit codes: the contract the trainer, jobs and scripts share (with
events.jsonl). Here in the core so that jobs and the UI read them without importing the
trainer."""

DONE = 0  # finished; the final LoRA is written
FAILED = 1  # anything else (a bug, a full disk, a missing file found late); see train.log
CONFIG_ERROR = 2  # the config or the dataset is not usable; nothing was trained
STOPPED = 3  # SIGTERM/SIGINT: the step finished, state and a LoRA saved; resume continues
OUT_OF_MEMORY = 4  # the GPU (or host) ran out of memory; lower batch size or resolution
NON_FINITE_LOSS = 5  # loss became NaN/inf; the last good save is kept

NAMES = {DONE: "done", FAILED: "failed", CONFIG_ERROR: "config error", STOPPED: "stopped",
         OUT_OF_MEMORY: "out of memory", NON_FINITE_LOSS: "non-finite loss"}


def help_line() -> str:
    """'Exit codes: 0 done, 1 failed, ...' for --help texts (one list, no drift)."""
    return "Exit codes: " + ", ".join(f"{code} {name}" for code, name in NAMES.items()) + "."
