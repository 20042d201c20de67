"""Bucket assignment for a 10k-image dataset, sizes from file headers (target <= 1 s).

    .venv/bin/python bench/bench_buckets.py [--images N] [--folders N] [--runs N]

Times (a) the header scan, (b) kohya bucket assignment of every image at 512 (both modes)
with batches per epoch, (c) the two together, and (d) a 4-bucket recommendation. The
dataset has mixed sizes on purpose; a second set of runs assigns 10k *distinct* sizes so
that the per-size cache in `assign_all` cannot help.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from _common import (
    DEFAULT_FOLDERS,
    DEFAULT_IMAGES,
    best_median,
    default_dataset_dir,
    ensure_importable,
    load_line,
    machine_line,
    ms,
    prepare_dataset,
    print_table,
    verdict,
)

TARGET = 1.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    p.add_argument("--folders", type=int, default=DEFAULT_FOLDERS)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    ensure_importable()
    from lorabake_tui.core.buckets.assign import BucketSettings, assign_all
    from lorabake_tui.core.buckets.recommend import recommend
    from lorabake_tui.core.config.schema import TrainingSettings
    from lorabake_tui.core.dataset.scan import scan_dataset
    from lorabake_tui.core.project.plan import plan_training

    print(machine_line())
    print(load_line())
    root = prepare_dataset(default_dataset_dir(args.images, args.folders), args.images,
                           args.folders)
    scan_dataset(root)  # warm the page cache
    # what the Buckets screen and `lorabake buckets` compute: the training plan at 512 px
    settings = TrainingSettings().replace("data", train_dir=root).replace("general",
                                                                          batch_size=1)
    rows = [("measurement", "best", "median", "runs", f"target <= {ms(TARGET)}")]
    scans, assigns, both, assigns_nu = [], [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ds = scan_dataset(root)
        t1 = time.perf_counter()
        plan = plan_training(settings, ds)
        report = plan.report
        plan.total_steps  # noqa: B018  (part of the work the screen shows)
        t2 = time.perf_counter()
        plan_training(settings.replace("buckets", no_upscale=True), ds).total_steps  # noqa: B018
        t3 = time.perf_counter()
        scans.append(t1 - t0)
        assigns.append(t2 - t1)
        assigns_nu.append(t3 - t2)
        both.append(t2 - t0)
    rnd = random.Random(0)
    distinct = [(f"i{n}", (rnd.randint(64, 4000), rnd.randint(64, 4000)), 1)
                for n in range(args.images)]
    fresh = []
    for _ in range(args.runs):
        t = time.perf_counter()
        assign_all(distinct, BucketSettings()).batches_per_epoch  # noqa: B018
        fresh.append(time.perf_counter() - t)
    t = time.perf_counter()
    items = [(i.key, i.size, i.repeats) for i in plan.images]
    plan = recommend(items, BucketSettings(), 4)
    rec = time.perf_counter() - t
    n = len(items)
    for label, vals, target in [
        (f"(a) header scan, {args.images} images", scans, None),
        (f"(b) training plan: {n} images to buckets + batches and steps", assigns, None),
        ("    the same, bucket_no_upscale", assigns_nu, None),
        ("(c) scan + assignment: what `lorabake buckets` does", both, TARGET),
        (f"(b') assign {args.images} distinct random sizes (no cache help)", fresh, None),
    ]:
        best, med = best_median(vals)
        rows.append((label, ms(best), ms(med), str(len(vals)), verdict(med, target)))
    rows.append(("(d) recommend 4 buckets", ms(rec), "", "1", ""))
    print_table(rows)
    print(f"\nbuckets in use: {len(report.buckets)}; batches per epoch {report.batches_per_epoch}; "
          f"recommended {plan.buckets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
