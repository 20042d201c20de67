"""Trainer speed: ms per step and peak memory, through the real trainer (a subprocess each).

On CPU: the built-in tiny SD1.5-shaped model at 64 px, batch 2, LoRA dim 4.
With an NVIDIA GPU, also the full SD1.5 architecture with random weights
(`builtin:sd15-random`, nothing downloaded) at 512 px, LoRA dim 16 on the UNet, cached latents
and text-encoder outputs, batch 1 and 4, bf16 and fp16: it/s, samples/s, peak VRAM.

    .venv/bin/python bench/train_step.py [--steps N] [--cpu-only] [--gpu-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorabake_tui.core.run.event_reader import read_all_events  # noqa: E402
from lorabake_tui.core.run.events import EventType  # noqa: E402
from lorabake_tui.core.run.folder import RunFolder  # noqa: E402

CONFIG = """[general]
base_model = "{model}"
epochs = 1000
max_steps = {steps}
batch_size = {batch}
mixed_precision = "{mp}"
cache_latents = "memory"
max_token_length = 75
train = "{train}"
gradient_checkpointing = false
[data]
train_dir = "data"
shuffle_caption = false
[network]
type = "lora"
dim = {dim}
alpha = {dim}
[optimizer]
type = "AdamW"
scheduler = "constant"
[buckets]
resolution = {res}
min = {res}
max = {res}
step = 64
[saving]
output_dir = "out"
output_name = "bench"
every_n_epochs = 1000
"""


def make_images(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.new("RGB", (size, size), (40 * i % 255, 90, 160))
        ImageDraw.Draw(im).ellipse((size // 8, size // 8, size // 2, size // 2),
                                   fill=(220, 30, 30))
        im.save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text("bench, 1girl, red circle, simple background\n")


def run_case(work: Path, *, model: str, res: int, batch: int, mp: str, dim: int, steps: int,
             train: str, threads: int | None) -> dict:
    case = work / f"{model.split(':')[-1]}-{res}-b{batch}-{mp}-t{threads or 'all'}"
    make_images(case / "data" / "100_bench", max(8, batch * 2), res)
    cfg = case / "cfg.toml"
    cfg.write_text(CONFIG.format(model=model, steps=steps, batch=batch, mp=mp, dim=dim,
                                 res=res, train=train))
    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    run_dir = case / "run"
    code = (
        "import resource, sys\n"
        "from lorabake_tui.trainer.__main__ import main\n"
        f"rc = main([{str(cfg)!r}, '--run-dir', {str(run_dir)!r}])\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=case, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"trainer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss_kb = int(next(line.split()[1] for line in proc.stdout.splitlines()
                      if line.startswith("MAXRSS")))
    steps = [e for e in read_all_events(RunFolder(run_dir).events)
             if e["type"] == EventType.STEP]
    ts = [e["t"] for e in steps]
    warm = min(5, len(ts) // 3)  # the first steps pay for lazy initialisation
    gaps = [b - a for a, b in zip(ts[warm:], ts[warm + 1:], strict=False)]
    ms = statistics.median(gaps) * 1000
    mean_ms = (ts[-1] - ts[warm]) / max(1, len(ts) - warm - 1) * 1000
    vram = [e["vram_gb"] for e in steps if e["vram_gb"] is not None]
    return {"case": case.name, "ms_median": ms, "ms_mean": mean_ms,
            "it_s": 1000 / mean_ms, "samples_s": batch * 1000 / mean_ms,
            "peak_rss_gb": rss_kb / 2**20, "peak_vram_gb": max(vram) if vram else None}


def show(rows: list[dict], header: bool = True) -> None:
    if header:
        print(f"{'case':28} {'ms/step med':>11} {'ms/step mean':>12} {'it/s':>7} "
              f"{'samples/s':>9} {'peak RSS GB':>11} {'peak VRAM GB':>12}")
    for r in rows:
        vram = f"{r['peak_vram_gb']:.2f}" if r["peak_vram_gb"] is not None else "-"
        print(f"{r['case']:28} {r['ms_median']:11.1f} {r['ms_mean']:12.1f} {r['it_s']:7.2f} "
              f"{r['samples_s']:9.2f} {r['peak_rss_gb']:11.2f} {vram:>12}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--gpu-only", action="store_true")
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s)"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lorabake-bench-") as tmp:
        work = Path(tmp)
        if not args.gpu_only:
            for threads in (1, None):
                r = run_case(work, model="builtin:tiny-sd15", res=64, batch=2, mp="no", dim=4,
                             steps=args.steps, train="both", threads=threads)
                r["case"] = f"cpu tiny 64px b2 {'1 thread' if threads else 'all threads'}"
                rows.append(r)
                show(rows[-1:], header=len(rows) == 1)
        if torch.cuda.is_available() and not args.cpu_only:
            print("\nfull SD1.5 UNet, random weights, 512 px, LoRA dim 16 (UNet), cached "
                  "latents and text-encoder outputs:")
            gpu_rows = []
            for mp in ("bf16", "fp16"):
                for batch in (1, 4):
                    gpu_rows.append(run_case(work, model="builtin:sd15-random", res=512,
                                             batch=batch, mp=mp, dim=16, steps=args.steps,
                                             train="unet", threads=None))
                    show(gpu_rows[-1:], header=len(gpu_rows) == 1)


if __name__ == "__main__":
    main()
