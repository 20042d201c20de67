"""The config as the trainer reads it: the same check as the Config screen and
`lorabake config check` (core/project/check.py), so the trainer refuses exactly what they
report, and the same training plan, so it trains exactly what they show."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..core.base.errors import LorabakeError
from ..core.captions.processing import CaptionRules
from ..core.config.file import read_config_text
from ..core.config.schema import TrainingSettings
from ..core.project.check import check_text
from ..core.project.plan import TrainingPlan


class ConfigErrors(LorabakeError):
    def __init__(self, source: str, lines: list[str]) -> None:
        super().__init__(f"{source}: {len(lines)} error(s):\n  " + "\n  ".join(lines),
                         f"`lorabake config check {source}` explains each")
        self.lines = lines


@dataclass(slots=True)
class RunConfig:
    settings: TrainingSettings
    plan: TrainingPlan
    text: str  # the file as read: the run folder keeps a copy
    source: str
    base_dir: Path

    @property
    def base_model(self) -> str:
        return self.settings.general.base_model

    @property
    def output_name(self) -> str:
        return self.settings.saving.output_name

    @property
    def output_dir(self) -> Path:
        return self.settings.saving.output_dir or self.base_dir / "output"

    def for_processes(self, n: int) -> RunConfig:
        """The plan split over `n` processes (the world size is known once launched)."""
        if n == self.plan.processes:
            return self
        return dataclasses.replace(self, plan=dataclasses.replace(self.plan, processes=n))

    def caption_rules(self) -> CaptionRules:
        d = self.settings.data
        return CaptionRules(
            shuffle=d.shuffle_caption, keep_tokens=d.keep_tokens,
            keep_tokens_separator=d.keep_tokens_separator,
            caption_dropout_rate=d.caption_dropout_rate,
            tag_dropout_rate=d.caption_tag_dropout_rate,
            token_warmup_min=d.token_warmup_min, token_warmup_step=d.token_warmup_step)


def run_config_from_text(text: str, source: str, base_dir: Path, *, processes: int = 1
                         ) -> RunConfig:
    result = check_text(text, source=source, base_dir=base_dir, processes=processes)
    errors = [f"{source}:{f.line}: {f.message}" if f.line else f"{source}: {f.message}"
              for f in result.errors]
    if errors:
        raise ConfigErrors(source, errors)
    if result.plan is None:
        raise ConfigErrors(source, [f"{source}: the training folders could not be read"])
    return RunConfig(result.settings, result.plan, text, source, base_dir)


def load_run_config(path: Path | str, *, processes: int = 1) -> RunConfig:
    path = Path(path)
    return run_config_from_text(read_config_text(path), str(path), path.resolve().parent,
                                processes=processes)
