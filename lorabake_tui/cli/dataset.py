"""`lorabake scan DIR` and `lorabake balance DIR`: the concept folders, their problems, and
balanced repeats applied as folder renames (through the journal; `lorabake undo` reverts)."""

from __future__ import annotations

import argparse
import sys

from ..core.base.errors import LorabakeError
from .common import Parser, add_dataset_options, add_json, caption_ext, print_json, print_table
from .progress import progress_printer


def project_of(args):
    """The project at args.dir, with --reg / --caption-ext as overrides."""
    from pathlib import Path

    from ..core.project.project import Project

    root = Path(args.dir)
    if not root.exists():
        raise LorabakeError(f"training folder {root} does not exist", "check the path")
    return Project(root, reg_root=getattr(args, "reg", None),
                   caption_ext=caption_ext(getattr(args, "caption_ext", None)))


def scan_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lorabake scan",
        description="Scan a dataset: concept folders, images, captions and problems.")
    p.add_argument("dir")
    add_dataset_options(p)
    add_json(p)
    return p


def scan_main(argv: list[str]) -> int:
    args = scan_parser().parse_args(argv)
    project = project_of(args)
    ds = project.scan(progress=progress_printer("scanning"))
    pending = project.journal.interrupted()
    if args.json:
        data = ds.to_json()
        data["interrupted_operation"] = pending.label if pending else None
        print_json(data)
        return 0
    from ..core.dataset.steps import epoch_summary

    rows = [("folder", "images", "repeats", "samples", "no caption")]
    for c in ds.concepts:
        folder = ("reg/" if c.is_reg else "") + c.folder
        rows.append((folder, str(c.image_count), "-" if c.repeats is None else str(c.repeats),
                     str(c.samples), str(c.captions_missing)))
    print_table(rows)
    s = epoch_summary([(c.image_count, c.repeats) for c in ds.train_concepts],
                      [(c.image_count, c.repeats) for c in ds.reg_concepts], 1)
    print(f"\n{s.train_samples} training samples per epoch"
          + (f", {s.reg_samples} regularization" if s.reg_samples else ""))
    if pending:
        print(f"\n! interrupted operation '{pending.label}': run `lorabake undo {args.dir}`")
    if ds.problems:
        errors = sum(1 for p in ds.problems if p.severity == "error")
        print(f"\n{errors} error(s), {len(ds.problems) - errors} warning(s):")
        for p in ds.problems:
            print(f"  {p.severity:7} {p.path}: {p.message}. {p.hint}")
    else:
        print("\nno problems found")
    return 0


def balance_parser() -> argparse.ArgumentParser:
    from ..core.dataset.balance import OPTIMIZER_TARGETS

    p = Parser(
        prog="lorabake balance",
        description="Balance repeats: each concept folder gets about TARGET samples per "
                    "epoch (repeats = ceil(target / images)). Shows the rename plan; --apply "
                    "renames the folders (undo with `lorabake undo`). The project's config "
                    "names concepts, not folders, so it stays valid.")
    p.add_argument("dir")
    add_dataset_options(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target", type=int, metavar="N", help="samples per concept per epoch")
    g.add_argument("--optimizer", choices=list(OPTIMIZER_TARGETS),
                   help="preset target: " + ", ".join(
                       f"{k}={v}" for k, v in OPTIMIZER_TARGETS.items()) +
                   " (default: the project config's optimizer, else adamw)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs for the totals (default: the config's general.epochs)")
    p.add_argument("--apply", action="store_true", help="rename the folders")
    add_json(p, "the plan")
    return p


def balance_main(argv: list[str]) -> int:
    from ..core.dataset.balance import apply_plan, plan_balance, target_for, target_name

    args = balance_parser().parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise LorabakeError("--epochs must be at least 1")
    if args.target is not None and args.target < 1:
        raise LorabakeError("--target must be at least 1")
    project = project_of(args)
    settings = project.settings()[0]
    epochs = args.epochs or settings.general.epochs
    target = args.target if args.target is not None else target_for(
        args.optimizer or target_name(settings.optimizer.type, settings.network.type))
    ds = project.scan(progress=progress_printer("scanning"))
    plan = plan_balance(ds, target, epochs=epochs)
    entry = None
    if args.apply and not plan.conflicts:
        entry = apply_plan(ds, plan)
    if args.json:
        data = plan.to_json()
        data["applied"] = entry is not None
        print_json(data)
        return 1 if args.apply and plan.conflicts else 0
    rows = [("folder", "images", "repeats", "samples", "new folder")]
    for r in plan.rows:
        before = "-" if r.repeats_before is None else str(r.repeats_before)
        rows.append((r.folder, str(r.images), f"{before} -> {r.repeats_after}",
                     str(r.samples_after), r.new_folder if r.renames else "(unchanged)"))
    print(f"target {plan.target} samples per concept per epoch")
    print_table(rows)
    s = plan.summary
    print(f"\n{plan.samples_per_epoch} samples per epoch"
          + (f" (+{s.reg_samples} regularization)" if s.reg_samples else "")
          + f", {s.total_samples} over {s.epochs} epochs")
    for w in plan.warnings:
        print(f"  warning: {w}")
    for c in plan.conflicts:
        print(f"  conflict: {c}", file=sys.stderr)
    if plan.conflicts:
        return 1 if args.apply else 0
    if entry is not None:
        print(f"\nrenamed {len(plan.renames)} folder(s); undo with `lorabake undo {args.dir}`")
    elif not plan.renames:
        print("\nalready balanced: nothing to rename")
    else:
        print(f"\ndry run: add --apply to rename {len(plan.renames)} folder(s)")
    return 0
