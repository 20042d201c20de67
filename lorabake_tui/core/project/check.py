"""The whole check of a training config: its values and rules (core/config/check.py), then
the training plan over a scan of its folders (core/project/plan.py). This is what the
Config screen shows as you type, what `lorabake config check` prints and what the trainer
runs before it loads anything: `config check` finds everything `train` would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.errors import LorabakeError
from ..buckets.assign import BucketSettingsError
from ..config.check import check_settings
from ..config.file import ConfigDoc, parse_config
from ..config.findings import ERROR, WARNING, Finding, ordered
from ..config.schema import TrainingSettings
from ..dataset.scan import Dataset, scan_dataset
from .plan import BUCKET_KEYS, TrainingPlan, bucket_settings, plan_training

# the settings the training plan is made from
PLAN_INPUTS = ("buckets.", "data.", "general.batch_size", "general.epochs",
               "general.max_steps", "optimizer.warmup_ratio")


@dataclass(slots=True)
class CheckResult:
    settings: TrainingSettings
    findings: list[Finding]
    doc: ConfigDoc | None = None  # None: the text is not valid TOML
    plan: TrainingPlan | None = None  # None: no dataset could be read
    dataset: Dataset | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


def toml_error_line(message: str) -> int | None:
    import re

    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def check_text(text: str, *, source: str = "config", base_dir: Path | None = None,
               dataset: Dataset | None = None, check_paths: bool = True,
               for_trainer: bool = True, scan: bool = True, processes: int = 1
               ) -> CheckResult:
    """check_training for text that may not even parse (the editor, as you type)."""
    try:
        doc = parse_config(text, source)
    except LorabakeError as exc:
        return CheckResult(TrainingSettings(source=source, base_dir=base_dir),
                           [Finding(ERROR, "toml", toml_error_line(str(exc)), str(exc))])
    return check_training(doc, base_dir=base_dir, dataset=dataset, check_paths=check_paths,
                          for_trainer=for_trainer, scan=scan, processes=processes)


def check_training(doc: ConfigDoc, *, base_dir: Path | None = None,
                   dataset: Dataset | None = None, check_paths: bool = True,
                   for_trainer: bool = True, scan: bool = True, processes: int = 1
                   ) -> CheckResult:
    """Every finding about `doc`, with the plan when its folders can be read. `dataset`: a
    scan already made (used when it is of the config's training folder and caption
    extension); `scan`: scan the folders when no usable scan is given."""
    settings, findings = check_settings(doc, base_dir=base_dir, check_paths=check_paths,
                                        for_trainer=for_trainer)
    result = CheckResult(settings, findings, doc)
    if any(name.startswith(PLAN_INPUTS) for name in settings.invalid):
        # a default standing in for a bad value would give numbers (and findings) that are
        # not this file's: the value's own finding says what to fix first
        result.findings = ordered([f.at(doc.line(f.key)) for f in findings])
        return result
    ds = dataset if _matches(dataset, settings) else None
    if ds is None and scan:
        ds = _scan(settings, findings)
    if ds is None:
        try:
            bucket_settings(settings)
        except BucketSettingsError as exc:
            key = BUCKET_KEYS.get(exc.field, "buckets.resolution")
            findings.append(Finding(ERROR, key, None, f"{key}: {exc}"))
    else:
        result.dataset = ds
        result.plan = plan_training(settings, ds, processes=processes)
        findings.extend(result.plan.findings)
    result.findings = ordered([f.at(doc.line(f.key)) for f in findings])
    return result


def _matches(dataset: Dataset | None, s: TrainingSettings) -> bool:
    train = s.data.train_dir
    if dataset is None or train is None:
        return False
    reg = s.data.reg_dir
    return (dataset.root == _resolved(train) and dataset.caption_ext == s.data.caption_extension
            and (dataset.reg_root == (_resolved(reg) if reg else None)))


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p


def _scan(s: TrainingSettings, findings: list[Finding]) -> Dataset | None:
    train = s.data.train_dir
    if train is None or not train.is_dir():
        return None  # the path check reports it
    reg = s.data.reg_dir if s.data.reg_dir is not None and s.data.reg_dir.is_dir() else None
    try:
        return scan_dataset(train, reg, caption_ext=s.data.caption_extension)
    except (LorabakeError, OSError) as exc:
        findings.append(Finding(ERROR, "data.train_dir", None,
                                f"data.train_dir: cannot read {train}: {exc}"))
        return None


def train_dir_note(s: TrainingSettings, project_root: Path) -> Finding | None:
    """A project's config that trains another folder than the project's own."""
    train = s.data.train_dir
    if train is not None and train.is_dir() and _resolved(train) != project_root:
        return Finding(WARNING, "data.train_dir", None,
                       f"data.train_dir is {train}, not this project's folder {project_root}: "
                       "the trainer trains that folder")
    return None
