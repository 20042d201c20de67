"""Sample and step counting as kohya does it: the one definition for UI, CLI and trainer."""

from __future__ import annotations

from dataclasses import dataclass


def concept_samples(images: int, repeats: int | None) -> int:
    """images x repeats, or 0 for a folder kohya skips (no prefix, repeats < 1)."""
    if repeats is None or repeats < 1:
        return 0
    return images * repeats


def reg_samples(train_samples: int, reg_base_samples: int) -> int:
    """kohya repeats regularization images until they match the training samples."""
    if reg_base_samples == 0:
        return 0
    return max(train_samples, reg_base_samples)


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
    r = reg_samples(t, sum(concept_samples(n, rr) for n, rr in reg))
    return EpochSummary(t, r, epochs)
