"""The training plan: what a config does with a scanned dataset. Which folders train and how
often (subsets, repeats, kohya's regularization matching), which images kohya would skip,
the bucket of every image, and from those the numbers: samples and batches per epoch, steps
per epoch, total steps after general.max_steps, epochs started and warmup steps.

This is the one derivation of those numbers. The trainer trains exactly `plan.images`; the
Config summary, the Buckets screen, `lorabake buckets`, `lorabake config check` and both
exports read the same plan, so they cannot disagree.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ..buckets.assign import (
    BucketReport,
    BucketSettings,
    BucketSettingsError,
    assign_all,
)
from ..config.findings import ERROR, WARNING, Finding
from ..config.schema import Subset, TrainingSettings
from ..dataset.balance import MAIN_CONCEPT_LIMIT, OPTIMIZER_TARGETS, target_name
from ..dataset.scan import CaptionState, Concept, Dataset, ImageItem
from ..dataset.steps import reg_repeats, run_steps
from ..images.limits import PIXEL_LIMIT_HINT, pixel_limit_message
from ..images.media import KOHYA_IMAGE_EXTS

BUCKET_KEYS = {"resolution": "buckets.resolution", "min": "buckets.min", "max": "buckets.max",
               "step": "buckets.step", "batch": "general.batch_size"}


def bucket_settings(s: TrainingSettings) -> BucketSettings:
    """The bucket settings a config trains with (buckets off: one square bucket), checked
    and rounded as kohya does; raises BucketSettingsError naming the field."""
    b = s.buckets
    if not b.enable:
        return BucketSettings.single(b.resolution, s.general.batch_size).adjusted()
    return BucketSettings((b.resolution, b.resolution), b.min, b.max, b.step, b.no_upscale,
                          s.general.batch_size).adjusted()


@dataclass(frozen=True, slots=True)
class PlannedConcept:
    """A folder that trains: its scan and the repeats it trains with."""

    concept: Concept
    repeats: int  # the folder's prefix, or the subset's override
    subset: Subset | None  # None when the config lists no subsets (every folder trains)


class PlannedImage(NamedTuple):  # a tuple: plans of 10k images make 10k of them
    key: str  # "folder/name"
    concept: Concept
    image: ImageItem
    repeats: int  # per epoch; regularization images after kohya's matching
    bucket: tuple[int, int]
    resized: tuple[int, int]  # scaled to this, then cropped to the bucket

    @property
    def is_reg(self) -> bool:
        return self.concept.is_reg

    @property
    def size(self) -> tuple[int, int]:
        return (self.image.width or 0, self.image.height or 0)


@dataclass(slots=True)
class TrainingPlan:
    settings: TrainingSettings
    buckets: BucketSettings | None  # None: the bucket settings are wrong (see findings)
    concepts: list[PlannedConcept] = field(default_factory=list)
    images: list[PlannedImage] = field(default_factory=list)
    report: BucketReport | None = None
    left_out: list[str] = field(default_factory=list)  # images kohya would not train, why
    findings: list[Finding] = field(default_factory=list)
    processes: int = 1
    grad_accum: int = 1  # optimizer.gradient_accumulation_steps (plan_training sets it)
    train_samples: int = 0  # kohya's "num train images * repeats" (regularization apart)
    reg_samples: int = 0

    @property
    def ok(self) -> bool:
        return self.report is not None and not any(f.is_error for f in self.findings)

    @property
    def samples_per_epoch(self) -> int:
        return self.train_samples + self.reg_samples

    @property
    def batches_per_epoch(self) -> int:
        """Sum over buckets of ceil(samples / batch): why steps != images*repeats/batch."""
        return self.report.batches_per_epoch if self.report is not None else 0

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: the batches split over processes and accumulation."""
        return math.ceil(self.batches_per_epoch / self.processes / self.grad_accum)

    @property
    def total_steps(self) -> int:
        return self._run()[0]

    @property
    def epochs(self) -> int:
        """Epochs the run starts: general.epochs, fewer when general.max_steps ends it."""
        return self._run()[1]

    @property
    def uncut_steps(self) -> int:
        return self.settings.general.epochs * self.steps_per_epoch

    @property
    def warmup_steps(self) -> int:
        return round(self.total_steps * self.settings.optimizer.warmup_ratio)

    def _run(self) -> tuple[int, int]:
        return run_steps(self.settings.general.epochs, self.batches_per_epoch,
                         max_steps=self.settings.general.max_steps, processes=self.processes,
                         grad_accum=self.grad_accum)

    def summary(self) -> dict:
        """The numbers `config check --json`, `buckets --json` and the trainer report."""
        return {"samples_per_epoch": self.samples_per_epoch,
                "train_samples": self.train_samples, "reg_samples": self.reg_samples,
                "batches_per_epoch": self.batches_per_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "gradient_accumulation_steps": self.grad_accum, "epochs": self.epochs,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "buckets": len(self.report.buckets) if self.report is not None else 0,
                "images": len(self.images)}


def plan_training(s: TrainingSettings, dataset: Dataset, *, processes: int = 1
                  ) -> TrainingPlan:
    """The plan of `s` over a scan of its folders. Never raises: what the trainer would stop
    on is an error finding (the trainer refuses a plan with errors)."""
    findings: list[Finding] = []
    grad_accum = s.optimizer.gradient_accumulation_steps
    try:
        buckets = bucket_settings(s)
    except BucketSettingsError as exc:
        key = BUCKET_KEYS.get(exc.field, "buckets.resolution")
        return TrainingPlan(s, None, findings=[Finding(ERROR, key, None, f"{key}: {exc}")],
                            processes=processes, grad_accum=grad_accum)
    concepts = _concepts(s, dataset, findings)
    images, left_out, too_big = _images(concepts)
    if too_big:
        findings.append(Finding(
            ERROR, "data.train_dir", None, f"{len(too_big)} image(s) too large to open, e.g. "
            f"{too_big[0]}: kohya and the trainer stop on them. {PIXEL_LIMIT_HINT}"))
    planned_folders = {(pc.concept.folder, pc.concept.is_reg) for pc in concepts}
    for c in dataset.concepts:
        if (c.folder, c.is_reg) not in planned_folders:
            why = skip_reason(c.repeats) if c.repeats is None or c.repeats < 1 \
                else "folder not in data.subsets"
            left_out += [f"{c.folder}/{im.name}: {why}" for im in c.images]
    report = assign_all([(key, size, repeats) for key, _, _, repeats, size in images], buckets)
    planned: list[PlannedImage] = []
    make = tuple.__new__  # PlannedImage's own __new__ is a Python call: 10k of them add up
    for (key, concept, image, repeats, _), bimg in zip(images, report.images, strict=True):
        a = bimg.assignment
        if a.bucket is None or a.resized is None:
            left_out.append(f"{key}: {a.error}")
            continue
        planned.append(make(PlannedImage, (key, concept, image, repeats, a.bucket,
                                           a.resized)))
    plan = TrainingPlan(s, buckets, concepts, planned, report, left_out, findings, processes,
                        grad_accum)
    plan.train_samples = sum(i.repeats for i in planned if not i.concept.is_reg)
    plan.reg_samples = sum(i.repeats for i in planned if i.concept.is_reg)
    _check(plan, dataset)
    return plan


# (key, concept, image, repeats, size) of an image kohya would train: plain tuples, made
# for every image of the dataset
_Candidate = tuple[str, Concept, ImageItem, int, tuple[int, int]]


def _concepts(s: TrainingSettings, dataset: Dataset, findings: list[Finding]
              ) -> list[PlannedConcept]:
    subsets = s.data.subsets
    if not subsets:  # every folder trains with the repeats in its name
        return [PlannedConcept(c, c.repeats, None) for c in dataset.concepts
                if c.repeats is not None and c.repeats >= 1]
    out: list[PlannedConcept] = []
    named: set[tuple[str, bool]] = set()
    for sub in subsets:
        named.add((sub.concept, sub.is_reg))
        matches = [c for c in dataset.concepts if c.name == sub.concept
                   and c.is_reg == sub.is_reg]
        where = "regularization" if sub.is_reg else "training"
        if not matches:
            others = sorted({c.name for c in dataset.concepts if c.is_reg == sub.is_reg})
            guess = difflib.get_close_matches(sub.concept, others, n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else \
                f"the {where} folders name {', '.join(map(repr, others[:6])) or 'nothing'}"
            findings.append(Finding(
                ERROR, sub.key, None, f"{sub.key}: no {where} folder holds the concept "
                f"{sub.concept!r} ({hint}): rename the subset or create the folder "
                f"N_{sub.concept}"))
            continue
        for c in matches:
            repeats = sub.repeats if sub.repeats is not None else c.repeats
            if repeats is None or repeats < 1:
                why = "no repeat prefix, so kohya skips it" if repeats is None \
                    else skip_reason(repeats)
                findings.append(Finding(
                    ERROR, sub.key, None, f"{sub.key}: the folder {c.folder} has {why}: "
                    f"rename it N_{c.name} (Concepts screen) or set repeats in the subset"))
                continue
            if sub.repeats is not None and c.repeats is not None and sub.repeats != c.repeats:
                findings.append(Finding(
                    WARNING, f"{sub.key}.repeats", None, f"{sub.key}: repeats = {sub.repeats} "
                    f"overrides the folder's {c.repeats} ({c.folder}): remove repeats to "
                    "follow the folder (balancing renames it)"))
            out.append(PlannedConcept(c, repeats, sub))
    for c in dataset.concepts:
        if c.image_count and c.repeats and c.repeats >= 1 and (c.name, c.is_reg) not in named:
            findings.append(Finding(
                WARNING, "data.subsets", None, f"folder {c.folder} is in no [[data.subsets]]: "
                f"it is not trained (add one with concept = \"{c.name}\"" +
                (", is_reg = true" if c.is_reg else "") + ", or remove every subset to train "
                "all folders)"))
    return out


def skip_reason(repeats: int | None) -> str:
    """Why kohya skips a folder with these repeats (None: the prefix is not a number). kohya
    reads "0_x" and "-1_x" as 0 and -1 repeats, and skips them for being below 1."""
    if repeats is None:
        return "folder skipped by kohya (no repeat prefix)"
    return f"repeats {repeats}: kohya skips folders with fewer than 1 repeat"


def _images(concepts: list[PlannedConcept]
            ) -> tuple[list[_Candidate], list[str], list[str]]:
    """The images kohya would train, with their repeats; those it would skip; and those it
    would stop on for their size (also in the second list: they get no bucket)."""
    train: list[_Candidate] = []
    reg: list[_Candidate] = []
    left_out: list[str] = []
    too_big: list[str] = []
    for pc in concepts:
        c = pc.concept
        for im in c.images:
            key = f"{c.folder}/{im.name}"
            if im.ext not in KOHYA_IMAGE_EXTS:
                left_out.append(f"{key}: kohya cannot read {im.ext}")
            elif not im.readable or im.width is None or im.height is None:
                left_out.append(f"{key}: unreadable image")
            elif im.over_pixel_limit:
                too_big.append(f"{key}: {pixel_limit_message(im.width, im.height)}")
                left_out.append(too_big[-1])
            else:
                (reg if c.is_reg else train).append(
                    (key, c, im, pc.repeats, (im.width, im.height)))
    if reg:
        per = reg_repeats(sum(e[3] for e in train), [e[3] for e in reg])
        train += [(key, c, im, r, size) for (key, c, im, _, size), r
                  in zip(reg, per, strict=True) if r]
    return train, left_out, too_big


def _check(plan: TrainingPlan, dataset: Dataset) -> None:
    """Findings about the whole plan: what the trainer would stop on, and what the guide
    warns about."""
    s, add = plan.settings, plan.findings.append
    if not plan.train_samples:
        add(Finding(ERROR, "data.train_dir", None, f"no training images in {dataset.root}: "
                    "concept folders need a repeat prefix such as 10_name (Concepts screen)"))
    per_concept: dict[str, int] = {}
    bad: list[PlannedImage] = []
    empty: list[PlannedImage] = []
    for i in plan.images:  # one pass: a plan can hold tens of thousands of images
        state = i.image.caption
        if state is CaptionState.NOT_UTF8:
            bad.append(i)
        elif state is CaptionState.EMPTY:
            empty.append(i)
        if not i.concept.is_reg:
            per_concept[i.concept.folder] = per_concept.get(i.concept.folder, 0) + i.repeats
    if bad:
        first = bad[0]
        add(Finding(ERROR, "data.caption_extension", None,
                    f"{len(bad)} caption(s) cannot be read as UTF-8, e.g. {first.concept.folder}"
                    f"/{first.image.caption_name}: the trainer stops on them; re-save them as "
                    "UTF-8 (the Tags screen lists them)"))
    if empty:
        add(Finding(WARNING, "data.caption_extension", None,
                    f"{len(empty)} caption(s) are empty, e.g. {empty[0].concept.folder}/"
                    f"{empty[0].image.caption_name}: they train with no tags (kohya refuses "
                    "them); tag them"))
    skipped = [x for x in plan.left_out if "bucket step" in x]
    if skipped:
        add(Finding(WARNING, "buckets.no_upscale", None,
                    f"{len(skipped)} image(s) are too small for any bucket and are left out, "
                    f"e.g. {skipped[0]}"))
    opt = s.optimizer.type
    target = OPTIMIZER_TARGETS[target_name(opt, s.network.type)]
    for folder, n in per_concept.items():
        if not target / 2.5 <= n <= target * 2.5:
            add(Finding(WARNING, "data.subsets", None,
                        f"{folder}: {n} samples per epoch, far from {opt}'s ~{target} per "
                        "concept: balance the repeats (Concepts screen, b)"))
    if plan.train_samples > MAIN_CONCEPT_LIMIT:
        add(Finding(WARNING, "data.subsets", None,
                    f"{plan.train_samples} samples per epoch in all: above "
                    f"{MAIN_CONCEPT_LIMIT} the main concept tends to burn"))
    if plan.report is not None:
        small = [k for k in plan.report.buckets
                 if plan.report.samples(k) < s.general.batch_size]
        if small:
            add(Finding(WARNING, "general.batch_size", None,
                        f"{len(small)} bucket(s) hold fewer samples than the batch size "
                        f"{s.general.batch_size}"))
