"""The run folder, by name: every file and folder a training run leaves in its folder.

The trainer writes them, the job runner adds the exit code, and jobs, the UI, the CLI and the
benchmarks read them; all of them take the names from here, so a rename cannot leave a reader
looking for the old one. The README's "run folder" paragraph describes the same list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..base.atomic import atomic_write_text

EVENTS_FILE = "events.jsonl"  # the trainer's event stream (schema: core/run/events.py)
TRAIN_LOG = "train.log"  # the trainer's log, for people
STDOUT_LOG = "stdout.log"  # the console of a job: the runner's lines, tracebacks
LOG_FILES = (TRAIN_LOG, STDOUT_LOG)
CONFIG_SNAPSHOT = "config.toml"  # the config as the run used it, paths absolute; resume reads it
STATE_DIR = "state"  # the last complete saved state
STATE_OLD_DIR = "state.old"  # the save before it, only while a new one is swapped in
STATE_TMP_PREFIX = ".state-"  # a state save still being written
EXIT_CODE_FILE = "exit_code"  # the trainer's exit status, written by the job runner
SAMPLES_DIR = "samples"  # preview images, one set per sampled epoch
TENSORBOARD_DIR = "tensorboard"  # TensorBoard scalars, with logging.tensorboard
LORA_SUFFIX = ".safetensors"

_EPOCH_DIGITS = 6
_STEP_DIGITS = 8


def final_lora_name(output_name: str) -> str:
    """`NAME.safetensors`: the LoRA of a finished run."""
    return f"{output_name}{LORA_SUFFIX}"


def epoch_lora_name(output_name: str, epoch: int) -> str:
    """`NAME-000003.safetensors`: the LoRA saved after an epoch (keep_last prunes these)."""
    return f"{output_name}-{epoch:0{_EPOCH_DIGITS}d}{LORA_SUFFIX}"


def step_lora_name(output_name: str, step: int) -> str:
    """`NAME-step00000120.safetensors`: the LoRA saved when a run is stopped."""
    return f"{output_name}-step{step:0{_STEP_DIGITS}d}{LORA_SUFFIX}"


def _lora_number(output_name: str | None, filename: str, tag: str, digits: int) -> int | None:
    name = ".+" if output_name is None else re.escape(output_name)
    m = re.fullmatch(rf"{name}-{tag}(\d{{{digits}}}){re.escape(LORA_SUFFIX)}", filename)
    return int(m.group(1)) if m else None


def epoch_of_lora(output_name: str | None, filename: str) -> int | None:
    """The epoch in an epoch_lora_name() of this run, else None (the final or a step file,
    or another run's file). `output_name` None: any run's, by the name's ending alone."""
    return _lora_number(output_name, filename, "", _EPOCH_DIGITS)


def step_of_lora(output_name: str | None, filename: str) -> int | None:
    """The step in a step_lora_name() of this run, else None; `output_name` as above."""
    return _lora_number(output_name, filename, "step", _STEP_DIGITS)


def lora_kind(output_name: str | None, filename: str) -> tuple[str, int | None]:
    """Which LoRA file of a run `filename` is: ("epoch", N), ("step", N), ("final", None)
    for final_lora_name(), else ("other", None). Without `output_name`, a file that is
    neither an epoch nor a step file is taken as the final one."""
    if (epoch := epoch_of_lora(output_name, filename)) is not None:
        return "epoch", epoch
    if (step := step_of_lora(output_name, filename)) is not None:
        return "step", step
    final = filename.endswith(LORA_SUFFIX) if output_name is None else \
        filename == final_lora_name(output_name)
    return ("final", None) if final else ("other", None)


def sample_name(output_name: str, epoch: int, index: int) -> str:
    """`NAME-e000002-00.png`: prompt `index`'s preview after `epoch`, in SAMPLES_DIR."""
    return f"{output_name}-e{epoch:0{_EPOCH_DIGITS}d}-{index:02d}.png"


def rank_checksum_name(rank: int) -> str:
    """`rank1.sha256`: the weights' checksum one process writes under a test hook (DDP)."""
    return f"rank{rank}.sha256"


@dataclass(frozen=True, slots=True)
class RunFolder:
    """The paths of one run folder, and the few questions every reader asks about it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a str is welcome too

    @property
    def events(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def train_log(self) -> Path:
        return self.path / TRAIN_LOG

    @property
    def stdout_log(self) -> Path:
        return self.path / STDOUT_LOG

    @property
    def config_snapshot(self) -> Path:
        return self.path / CONFIG_SNAPSHOT

    @property
    def state(self) -> Path:
        return self.path / STATE_DIR

    @property
    def state_old(self) -> Path:
        return self.path / STATE_OLD_DIR

    @property
    def exit_code_file(self) -> Path:
        return self.path / EXIT_CODE_FILE

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_DIR

    def rank_checksum(self, rank: int) -> Path:
        return self.path / rank_checksum_name(rank)

    def holds_run(self) -> bool:
        """A run has started here (its events exist): a new run must go elsewhere."""
        return self.events.exists()

    def has_state(self) -> bool:
        """A saved state to resume from."""
        try:
            return any(self.state.iterdir())
        except OSError:
            return False

    def log_file(self, prefer: str = TRAIN_LOG) -> Path | None:
        """The log to show: `prefer` if it exists, else train.log, else stdout.log."""
        for name in (prefer, *LOG_FILES):
            p = self.path / name
            if p.exists():
                return p
        return None

    def read_exit_code(self) -> int | None:
        """The exit status the job runner recorded; None when there is none (yet)."""
        try:
            return int(self.exit_code_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def write_exit_code(self, code: int) -> None:
        atomic_write_text(self.exit_code_file, f"{code}\n")

    def clear_exit_code(self) -> None:
        """Before a new attempt: an earlier attempt's code must not be read as its own."""
        self.exit_code_file.unlink(missing_ok=True)
