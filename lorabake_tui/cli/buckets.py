"""`lorabake buckets DIR`: the bucket distribution kohya will use, and a recommendation."""

from __future__ import annotations

import argparse
import json

from ..core.base.errors import LorabakeError


def parse_resolution(text: str) -> tuple[int, int]:
    """argparse type over the core's one parser of `N` / `WxH`."""
    from ..core.images.imageops import parse_size

    try:
        return parse_size(text)
    except LorabakeError:
        raise argparse.ArgumentTypeError(f"resolution must be N or WxH, not {text!r}") from None


def add_bucket_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resolution", type=parse_resolution, default=(512, 512), metavar="N|WxH",
                   help="training resolution (default 512)")
    p.add_argument("--min", type=int, default=256, help="min bucket side (default 256)")
    p.add_argument("--max", type=int, default=1024, help="max bucket side (default 1024)")
    p.add_argument("--step", type=int, default=64, help="bucket step (default 64)")
    p.add_argument("--no-upscale", action="store_true", help="kohya's bucket_no_upscale")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lorabake buckets",
        description="The aspect-ratio buckets kohya will make from DIR, with batches per "
                    "epoch and steps; --recommend K proposes K buckets that crop least.")
    p.add_argument("dir")
    add_bucket_options(p)
    p.add_argument("--epochs", type=int, default=8, help="epochs for the step total (default 8)")
    p.add_argument("--caption-ext", default=".txt", metavar="EXT")
    p.add_argument("--recommend", type=int, metavar="K", help="propose K buckets")
    p.add_argument("--json", action="store_true")
    return p


def settings_from(args):
    from ..core.buckets.assign import BucketSettings

    return BucketSettings(args.resolution, args.min, args.max, args.step, args.no_upscale,
                          args.batch)


def main(argv: list[str]) -> int:
    from ..core.buckets.assign import assign_all, bucket_histogram, dataset_items
    from ..core.buckets.recommend import recommend
    from ..core.dataset.scan import scan_dataset
    from ..core.dataset.steps import total_steps

    args = build_parser().parse_args(argv)
    if args.epochs < 1:
        raise LorabakeError("--epochs must be at least 1")
    settings = settings_from(args).adjusted()
    ds = scan_dataset(args.dir, caption_ext=args.caption_ext)
    items, left_out = dataset_items(ds)
    report = assign_all(items, settings)
    steps = total_steps(args.epochs, report.batches_per_epoch)
    plan = recommend(items, settings, args.recommend) if args.recommend else None
    if args.json:
        data = report.to_json()
        data.update({"epochs": args.epochs, "total_steps": steps, "warnings": report.warnings(),
                     "left_out": left_out})
        if plan is not None:
            data["recommendation"] = plan.to_json()
        print(json.dumps(data, indent=2))
        return 0
    rows = bucket_histogram(report)
    most = max((s for _, _, s in rows), default=1)
    print(f"{len(rows)} bucket(s) at {settings.resolution[0]}x{settings.resolution[1]}"
          f"{' (no upscale)' if settings.no_upscale else ''}, batch {settings.batch_size}")
    for (w, h), n, s in rows:
        bar = "#" * max(1, round(30 * s / most))
        print(f"  {w:>5}x{h:<5} {n:6d} images {s:7d} samples  {bar}")
    print(f"\n{report.batches_per_epoch} batches per epoch, {steps} steps over {args.epochs} "
          f"epochs; mean aspect-ratio error {report.mean_ar_error:.4f}")
    for w in report.warnings():
        print(f"  warning: {w}")
    if left_out:
        print(f"  {len(left_out)} image(s) kohya will not see, e.g. {left_out[0]}")
    if plan is not None:
        counts = plan.counts()
        print(f"\nrecommended {len(plan.buckets)} bucket(s), mean crop {plan.mean_crop:.1%}:")
        for b in plan.buckets:
            print(f"  {b[0]:>5}x{b[1]:<5} {counts[b]:6d} images")
        print("  apply with the Buckets screen or `lorabake images DIR resize`")
    return 0
