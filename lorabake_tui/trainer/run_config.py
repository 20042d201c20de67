"""The config as the trainer reads it: the same file, schema and checks as the Config screen,
relative paths read against the file's folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.base.errors import LorabakeError
from ..core.captions.processing import CaptionRules
from ..core.config.check import check_config, resolve_path
from ..core.config.file import ConfigDoc, load_config, parse_config
from ..core.config.schema import BUILTIN_PREFIX


class ConfigErrors(LorabakeError):
    def __init__(self, source: str, lines: list[str]) -> None:
        super().__init__(f"{source}: {len(lines)} error(s):\n  " + "\n  ".join(lines),
                         f"`lorabake config check {source}` explains each")
        self.lines = lines


@dataclass(slots=True)
class RunConfig:
    doc: ConfigDoc
    source: str
    base_dir: Path

    def v(self, name: str) -> Any:
        return self.doc.value(name)

    def path(self, name: str) -> Path | None:
        value = self.v(name)
        return resolve_path(value, self.base_dir) if value else None

    @property
    def base_model(self) -> str:
        spec = self.v("general.base_model")
        return spec if spec.startswith(BUILTIN_PREFIX) else str(self.path("general.base_model"))

    @property
    def output_name(self) -> str:
        return self.v("saving.output_name")

    def caption_rules(self) -> CaptionRules:
        return CaptionRules(
            shuffle=self.v("data.shuffle_caption"), keep_tokens=self.v("data.keep_tokens"),
            keep_tokens_separator=self.v("data.keep_tokens_separator"),
            caption_dropout_rate=self.v("data.caption_dropout_rate"),
            tag_dropout_rate=self.v("data.caption_tag_dropout_rate"),
            token_warmup_min=self.v("data.token_warmup_min"),
            token_warmup_step=self.v("data.token_warmup_step"))


def _checked(doc: ConfigDoc, source: str, base_dir: Path) -> RunConfig:
    findings = check_config(doc, base_dir=base_dir, for_trainer=True)
    errors = [f"{source}:{f.line}: {f.message}" if f.line else f"{source}: {f.message}"
              for f in findings if f.severity == "error"]
    if errors:
        raise ConfigErrors(source, errors)
    return RunConfig(doc, source, base_dir)


def load_run_config(path: Path | str) -> RunConfig:
    path = Path(path)
    return _checked(load_config(path), str(path), path.resolve().parent)


def run_config_from_text(text: str, source: str, base_dir: Path) -> RunConfig:
    return _checked(parse_config(text, source), source, base_dir)
