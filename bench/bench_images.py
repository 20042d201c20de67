"""How fast does `convert` turn a mixed folder into PNGs, on one core and on all of them?

    python bench/bench_images.py [--images 1000] [--workers N] [--runs 1] [--dir DIR]

Builds (or reuses) bench/out/images-src-IMAGES: IMAGES pictures of 512-1024 px a side
(gradients, shapes and mild noise, so they compress like drawings, not like static), a
quarter each WEBP, JPEG, BMP and GIF (one GIF in ten animated, 3 frames), each with a caption.
Deterministic. Then, for workers=1 and workers=N (default os.cpu_count()), on a fresh copy
each run: plan_images(root, "convert") and apply_image_plan(plan, workers=...), the real code
path (worker processes, one journal entry, one filesystem sync). Timed apart: the plan (scan
included), the processing (decode + PNG encode in the workers, until the last result) and the
journal apply (moves, writes, sync). images/s = source images / processing time. The PNGs of
both runs must be byte-identical, or the script stops with FAIL. Also printed: the parent's
peak RSS (the new PNGs are held in memory for the journal entry).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import _common as c

SEED = 20240611
FORMATS = ("webp", "jpg", "bmp", "gif")


def _picture(rng, w: int, h: int):
    import numpy as np
    from PIL import Image, ImageDraw

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=-1)
    base = base * rng.uniform(0.4, 1.0, 3) + rng.uniform(0, 60, 3)
    base += rng.normal(0, 4, (h, w, 1))  # mild grain: real images are never flat
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(6, 16))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return im


def build_source(root: Path, images: int) -> Path:
    import numpy as np
    from PIL import Image

    stamp = root / ".bench-images.json"
    want = {"images": images, "seed": SEED, "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"reusing {images} source images in {root}")
        return root
    if root.exists():
        shutil.rmtree(root)
    t = time.perf_counter()
    rng = np.random.default_rng(SEED)
    for i in range(images):
        folder = root / f"{(5, 10, 20)[i % 3]}_set{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(512, 1025, 2))
        im = _picture(rng, w, h)
        fmt = FORMATS[i % 4]
        path = folder / f"img_{i:05d}.{fmt}"
        if fmt == "webp":
            im.save(path, "WEBP", quality=90)
        elif fmt == "jpg":
            im.save(path, "JPEG", quality=92)
        elif fmt == "bmp":
            im.save(path, "BMP")
        elif i % 40 == 3:  # one GIF in ten: a 3-frame animation
            frames = [im.quantize(64)] + [
                im.rotate(a, fillcolor=(255, 255, 255)).quantize(64) for a in (2, 4)]
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=80)
        else:
            im.quantize(256).save(path, "GIF")
        path.with_suffix(".txt").write_text(f"set{i % 3}, 1girl, solo\n", encoding="utf-8")
    stamp.write_text(json.dumps(want))
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"built {images} source images in {root} ({time.perf_counter() - t:.1f} s, "
          f"{size / 2**20:.0f} MiB)")
    Image.init()
    return root


def png_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        if ".lorabake" in p.relative_to(root).parts:
            continue
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def one_run(src: Path, work: Path, workers: int) -> dict:
    from lorabake_tui.core.dataset.imagetools import apply_image_plan, plan_images

    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(src, work)
    (work / ".bench-images.json").unlink()
    os.sync()
    marks: dict[str, float] = {}

    def progress(done: int, total: int) -> None:
        if done == total:
            marks["processed"] = time.perf_counter()

    t0 = time.perf_counter()
    plan = plan_images(work, "convert")
    t1 = time.perf_counter()
    result = apply_image_plan(plan, workers=workers, progress=progress)
    t2 = time.perf_counter()
    if not result.applied or result.failures:
        sys.exit(f"FAIL: workers={workers}: {len(result.failures)} failure(s): "
                 + "; ".join(f"{f.path}: {f.error}" for f in result.failures[:3]))
    outputs = sum(len(f.new_paths) for f in plan.todo)
    return {"workers": workers, "images": len(plan.todo), "outputs": outputs,
            "plan": t1 - t0, "process": marks["processed"] - t1,
            "journal": t2 - marks["processed"], "total": t2 - t0,
            "digest": png_digest(work)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=1, help="runs per worker count (best is shown)")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default bench/out)")
    args = ap.parse_args()
    c.ensure_importable()
    base = args.dir or c.OUT
    base.mkdir(parents=True, exist_ok=True)
    print(c.machine_line())
    print(c.load_line())
    src = build_source(base / f"images-src-{args.images}", args.images)
    best: dict[int, dict] = {}
    for workers in (1, args.workers):
        if workers in best:
            continue
        for run in range(args.runs):
            r = one_run(src, base / f"images-run-w{workers}", workers)
            print(f"  workers={workers} run {run + 1}: plan {c.ms(r['plan'])}, process "
                  f"{c.ms(r['process'])}, journal {c.ms(r['journal'])}, total {c.ms(r['total'])}")
            if workers not in best or r["total"] < best[workers]["total"]:
                best[workers] = r
    one = best[1]
    rows = [("workers", "images", "outputs", "plan", "process", "journal", "total",
             "images/s (process)", "images/s (total)")]
    for r in best.values():
        rows.append((str(r["workers"]), str(r["images"]), str(r["outputs"]), c.ms(r["plan"]),
                     c.ms(r["process"]), c.ms(r["journal"]), c.ms(r["total"]),
                     f"{r['images'] / r['process']:.1f}", f"{r['images'] / r['total']:.1f}"))
    print()
    c.print_table(rows)
    if args.workers != 1:
        many = best[args.workers]
        print(f"\nspeed-up with {args.workers} workers: processing "
              f"{one['process'] / many['process']:.2f}x, end to end "
              f"{one['total'] / many['total']:.2f}x")
        if many["digest"] != one["digest"]:
            sys.exit("FAIL: the PNGs differ between workers=1 and workers="
                     f"{args.workers}")
        print(f"ok: identical PNG bytes (sha256 {one['digest'][:12]}...)")
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of this (parent) process: {rss:,.0f} MiB (the journal entry holds every "
          "new PNG in memory until it is written)")
    print(c.load_line())


if __name__ == "__main__":
    main()
