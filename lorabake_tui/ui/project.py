"""What every screen shares: the dataset location, the latest scan and the journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.base.journal import Journal
from ..core.dataset.scan import Dataset, scan_dataset


@dataclass(slots=True)
class Project:
    root: Path
    reg_root: Path | None = None
    caption_ext: str = ".txt"
    epochs: int = 8
    dataset: Dataset | None = None
    # bumped after every change lorabake makes, so screens know to rescan when shown again
    generation: int = 0
    dataset_generation: int = -1  # the generation `dataset` was scanned at
    journal: Journal = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.journal = Journal(self.root)

    @property
    def name(self) -> str:
        return self.root.name

    def changed(self) -> None:
        self.generation += 1

    def set_dataset(self, dataset: Dataset, generation: int) -> None:
        self.dataset, self.dataset_generation = dataset, generation

    def fresh_dataset(self) -> Dataset | None:
        """The last scan, if nothing lorabake did since could have made it stale."""
        return self.dataset if self.dataset_generation == self.generation else None

    def scan(self, progress=None, cancelled=None) -> Dataset:
        return scan_dataset(self.root, self.reg_root, caption_ext=self.caption_ext,
                            progress=progress, cancelled=cancelled)
