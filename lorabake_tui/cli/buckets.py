"""`lorabake buckets DIR`: the bucket distribution kohya will use at the project's settings,
with batches per epoch and steps from the training plan (the numbers the Config stage and
the trainer use), and a recommendation of fewer buckets."""

from __future__ import annotations

import argparse

from ..core.base.errors import LorabakeError
from .common import Parser, add_dataset_options, add_json, caption_ext, print_json, warn

# flag -> config key: each flag is a what-if over the project's training.toml
OVERRIDES = {"resolution": "buckets.resolution", "min": "buckets.min", "max": "buckets.max",
             "step": "buckets.step", "no_upscale": "buckets.no_upscale",
             "enable": "buckets.enable", "batch": "general.batch_size",
             "epochs": "general.epochs"}

JSON_HELP = """\
--json prints one object:
  buckets [{resolution [w, h], images, samples}], images [{path, size, bucket, resized,
  error}], batches_per_epoch, mean_ar_error, epochs, total_steps, warnings [str],
  left_out [str], errors [str] (what the trainer would stop on), summary
  {samples_per_epoch, train_samples, reg_samples, batches_per_epoch,
  steps_per_epoch, gradient_accumulation_steps, epochs, total_steps, warmup_steps,
  buckets, images},
  settings {resolution, min, max, step, no_upscale, enable, batch_size, epochs},
  config (the training.toml read, or null), what_if {key: {config, now}},
  recommendation (with --recommend): {buckets, mean_crop, images}"""


def parse_resolution(text: str) -> int:
    """argparse type: N, or NxN (lorabake trains square resolutions)."""
    from ..core.images.imageops import parse_size

    try:
        w, h = parse_size(text)
    except LorabakeError:
        raise argparse.ArgumentTypeError(f"resolution must be N, not {text!r}") from None
    if w != h:
        raise argparse.ArgumentTypeError(f"lorabake trains square resolutions: give one "
                                         f"number, not {text!r}")
    return w


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lorabake buckets", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The aspect-ratio buckets kohya will make from DIR at the project's "
                    "settings (DIR/.lorabake/training.toml, else the defaults), with batches "
                    "per epoch and steps; --recommend K proposes K buckets that crop least. "
                    "Each setting flag is a what-if: it changes this report, not the config "
                    "(the Buckets stage saves settings).", epilog=JSON_HELP)
    p.add_argument("dir")
    what = "what-if (default: the project config's"
    p.add_argument("--resolution", type=parse_resolution, metavar="N",
                   help=f"training resolution, {what} buckets.resolution)")
    p.add_argument("--min", type=int, metavar="N", help=f"min bucket side, {what} buckets.min)")
    p.add_argument("--max", type=int, metavar="N", help=f"max bucket side, {what} buckets.max)")
    p.add_argument("--step", type=int, metavar="N", help=f"bucket step, {what} buckets.step)")
    p.add_argument("--no-upscale", dest="no_upscale", action="store_const", const=True,
                   help=f"kohya's bucket_no_upscale, {what} buckets.no_upscale)")
    p.add_argument("--upscale", dest="no_upscale", action="store_const", const=False,
                   help="allow upscaling (the opposite what-if)")
    p.add_argument("--buckets", dest="enable", choices=("on", "off"),
                   help=f"aspect-ratio buckets on or off, {what} buckets.enable)")
    p.add_argument("--batch", type=int, metavar="N",
                   help=f"batch size, {what} general.batch_size)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help=f"epochs for the step total, {what} general.epochs)")
    add_dataset_options(p)
    p.add_argument("--recommend", type=int, metavar="K", help="propose K buckets")
    add_json(p)
    return p


def main(argv: list[str]) -> int:
    from ..core.buckets.assign import bucket_histogram
    from ..core.buckets.recommend import recommend
    from ..core.project.project import Project

    args = build_parser().parse_args(argv)
    for flag in ("min", "max", "step", "batch", "epochs", "recommend"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise LorabakeError(f"--{flag} must be at least 1")
    project = Project(args.dir, reg_root=args.reg, caption_ext=caption_ext(args.caption_ext))
    if not project.root.is_dir():
        raise LorabakeError(f"{args.dir} is not a directory",
                            "give the training root that holds the N_name folders")
    base, _, from_file = project.settings()
    bad = sorted(set(OVERRIDES.values()) & base.invalid)
    if bad:
        warn(f"{project.files.config}: {', '.join(bad)} wrong (`lorabake config check` says "
             "why): the defaults stand in")
    s = base
    what_if: dict[str, dict] = {}
    for flag, name in OVERRIDES.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if flag == "enable":
            value = value == "on"
        section, key = name.split(".")
        old = getattr(getattr(base, section), key)
        s = s.replace(section, **{key: value})
        if value != old:
            what_if[name] = {"config": old, "now": value}
    plan = project.plan(s)
    if plan.report is None or plan.buckets is None:
        raise LorabakeError(plan.findings[0].message if plan.findings else "no bucket plan")
    report, bs = plan.report, plan.buckets
    recommendation = recommend([(i.key, i.size, i.repeats) for i in plan.images], bs,
                               args.recommend) if args.recommend else None
    source = str(project.files.config) if from_file else None
    if args.json:
        data = report.to_json()
        data.update({"epochs": plan.epochs, "total_steps": plan.total_steps,
                     "warnings": report.warnings(), "left_out": plan.left_out,
                     "errors": [f.message for f in plan.findings if f.is_error],
                     "summary": plan.summary(),
                     "settings": {"resolution": s.buckets.resolution, "min": s.buckets.min,
                                  "max": s.buckets.max, "step": s.buckets.step,
                                  "no_upscale": s.buckets.no_upscale,
                                  "enable": s.buckets.enable,
                                  "batch_size": s.general.batch_size,
                                  "epochs": s.general.epochs},
                     "config": source, "what_if": what_if})
        if recommendation is not None:
            data["recommendation"] = recommendation.to_json()
        print_json(data)
        return 0
    print(f"settings from {source or 'the defaults (no training.toml yet)'}")
    for name, change in what_if.items():
        print(f"  what-if: {name} = {change['now']} (the config says {change['config']})")
    rows = bucket_histogram(report)
    most = max((n for _, _, n in rows), default=1)
    mode = " (no upscale)" if bs.no_upscale else "" if s.buckets.enable else " (buckets off)"
    print(f"{len(rows)} bucket(s) at {s.buckets.resolution}{mode}, batch {bs.batch_size}")
    for (w, h), n, samples in rows:
        bar = "#" * max(1, round(30 * samples / most))
        print(f"  {w:>5}x{h:<5} {n:6d} images {samples:7d} samples  {bar}")
    cut = f" (general.max_steps stops it at {plan.total_steps})" \
        if plan.total_steps < plan.uncut_steps else ""
    print(f"\n{plan.batches_per_epoch} batches per epoch, {plan.uncut_steps} steps over "
          f"{s.general.epochs} epochs{cut}; mean aspect-ratio error {report.mean_ar_error:.4f}")
    for f in plan.findings:
        if f.is_error:  # e.g. an image too large to open: the trainer refuses to start
            print(f"  error: {f.message}")
    for w in report.warnings():
        print(f"  warning: {w}")
    if plan.left_out:
        print(f"  {len(plan.left_out)} image(s) left out (kohya skips or stops on them), "
              f"e.g. {plan.left_out[0]}")
    if recommendation is not None:
        counts = recommendation.counts()
        print(f"\nrecommended {len(recommendation.buckets)} bucket(s), mean crop "
              f"{recommendation.mean_crop:.1%}:")
        for b in recommendation.buckets:
            print(f"  {b[0]:>5}x{b[1]:<5} {counts[b]:6d} images")
        print("  apply with the Buckets screen or `lorabake images DIR resize`")
    return 0
