"""Sample and step counting as kohya does it: the one definition for UI, CLI and trainer."""

from __future__ import annotations

import math
from dataclasses import dataclass


def concept_samples(images: int, repeats: int | None) -> int:
    """images x repeats, or 0 for a folder kohya skips (no prefix, repeats < 1)."""
    if repeats is None or repeats < 1:
        return 0
    return images * repeats


def reg_repeats(train_samples: int, reg_repeats_in_order: list[int]) -> list[int]:
    """Per regularization image, the repeats kohya ends up giving it: images are taken in
    order with their folder's repeats until the training sample count is reached (the rest
    get 0, unused); if they run out first, each gets one more repeat in turn until the count
    is reached exactly."""
    out = [0] * len(reg_repeats_in_order)
    n = 0
    for i, r in enumerate(reg_repeats_in_order):
        out[i] = r
        n += r
        if n >= train_samples:
            return out
    while n < train_samples and out:
        for i in range(len(out)):
            out[i] += 1
            n += 1
            if n >= train_samples:
                break
    return out


def reg_samples(train_samples: int, reg_folders: list[tuple[int, int | None]]) -> int:
    """Regularization samples per epoch as kohya registers them (see reg_repeats);
    `reg_folders`: (images, repeats) per folder, skipped folders (no prefix) add nothing."""
    per_image = [r for n, r in reg_folders if r is not None and r >= 1 for _ in range(n)]
    return sum(reg_repeats(train_samples, per_image))


@dataclass(frozen=True, slots=True)
class EpochSummary:
    train_samples: int  # per epoch, repeats included
    reg_samples: int  # per epoch after kohya's matching (0 without reg images)
    epochs: int

    @property
    def samples_per_epoch(self) -> int:
        return self.train_samples + self.reg_samples

    @property
    def total_samples(self) -> int:
        return self.samples_per_epoch * self.epochs


def epoch_summary(train: list[tuple[int, int | None]], reg: list[tuple[int, int | None]],
                  epochs: int) -> EpochSummary:
    """`train`/`reg`: (images, repeats) per folder."""
    t = sum(concept_samples(n, r) for n, r in train)
    r = reg_samples(t, reg)
    return EpochSummary(t, r, epochs)


def total_steps(epochs: int, batches_per_epoch: int, *, processes: int = 1,
                grad_accum: int = 1) -> int:
    """Optimizer steps over the run, as kohya counts them: per epoch the batches are split
    over processes and gradient accumulation, rounded up."""
    return epochs * math.ceil(batches_per_epoch / processes / grad_accum)


def run_steps(epochs: int, batches_per_epoch: int, *, max_steps: int = 0, processes: int = 1,
              grad_accum: int = 1) -> tuple[int, int]:
    """(optimizer steps, epochs started) of a run: the epochs' steps, cut at `max_steps`
    when that comes first (0: no cut); the last epoch started may then be a partial one."""
    per_epoch = total_steps(1, batches_per_epoch, processes=processes, grad_accum=grad_accum)
    total = epochs * per_epoch
    if max_steps and max_steps < total:
        return max_steps, math.ceil(max_steps / per_epoch)
    return total, epochs
