"""What does an epoch x weight grid cost with one model load and in-place LoRA switches,
against loading the model for every cell?

    python bench/bench_render.py [--full] [--steps 4] [--size 64] [--type lora]
                                 [--device cpu|cuda] [--dtype auto]

A 3-epoch x 4-weight grid (weights 0, 0.4, 0.7, 1; one prompt, one seed) on
builtin:tiny-sd15, and with --full also on builtin:sd15-random (SD1.5's real architecture,
random weights; at --size, 256 px by default there). The three epoch files are written first
(untimed) by lorabake's own export from adapters filled with seeded random values.

(a) engine: RenderEngine.load once, then per cell set_lora(file, weight) and render;
(b) per cell: RenderEngine.load, set_lora, render, for each of the 12 cells.
Printed: both totals, the load time, mean set_lora and render times, the ratio b / a, and
whether both ways gave the same latents bit for bit (they must: FAIL and exit 1 else).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import _common as c

EPOCHS = 3
WEIGHTS = (0.0, 0.4, 0.7, 1.0)
PROMPT = "mychar, 1girl, red hair, smile"
SEED = 1234


def make_epoch_files(base: str, kind: str, folder: Path) -> list[Path]:
    """Three LoRA files of `kind` for `base`, as the trainer exports them."""
    import torch
    from safetensors.torch import save_file

    from lorabake_tui.trainer.base_model import load_base_model
    from lorabake_tui.trainer.network import attach, kohya_state, lora_configs, trainable

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{kind}-{base.split(':')[-1]}-{e:06d}.safetensors"
             for e in range(1, EPOCHS + 1)]
    if all(p.is_file() for p in paths):
        return paths
    model = load_base_model(base)
    net = lora_configs(kind, 16, 8.0, 8 if kind in ("locon", "loha", "lokr") else 0, 4.0, 0.0,
                       unet=True, text_encoder=True)
    attach(net, model.unet, model.text_encoder)
    params = [*trainable(model.unet), *trainable(model.text_encoder)]
    for epoch, path in enumerate(paths):
        g = torch.Generator().manual_seed(epoch)
        with torch.no_grad():
            for p in params:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        save_file(kohya_state(net, model.unet, model.text_encoder, torch.float32), str(path),
                  metadata={"ss_network_module": net.module})
    return paths


def cells(files: list[Path]):
    return [(f, w) for f in files for w in WEIGHTS]


def render(engine, args):
    return engine.render(PROMPT, seed=SEED, steps=args.steps, width=args.size,
                         height=args.size, sampler=args.sampler)


def one_load(base: str, files: list[Path], args) -> dict:
    from lorabake_tui.trainer.render.engine import RenderEngine

    start = time.perf_counter()
    engine = RenderEngine.load(base, device=args.device, dtype=args.dtype)
    switches, renders, latents = [], [], []
    for path, w in cells(files):
        switches.append(engine.set_lora(path, w))
        r = render(engine, args)
        renders.append(r.seconds)
        latents.append(r.latents)
    total = time.perf_counter() - start
    del engine
    gc.collect()
    return {"total": total, "latents": latents, "switches": switches, "renders": renders}


def load_per_cell(base: str, files: list[Path], args) -> dict:
    from lorabake_tui.trainer.render.engine import RenderEngine

    start = time.perf_counter()
    loads, switches, renders, latents = [], [], [], []
    for path, w in cells(files):
        engine = RenderEngine.load(base, device=args.device, dtype=args.dtype)
        loads.append(engine.load_seconds)
        switches.append(engine.set_lora(path, w))
        r = render(engine, args)
        renders.append(r.seconds)
        latents.append(r.latents)
        del engine
        gc.collect()
    return {"total": time.perf_counter() - start, "latents": latents, "loads": loads,
            "switches": switches, "renders": renders}


def bench(base: str, args) -> bool:
    import torch

    files = make_epoch_files(base, args.type, c.OUT / "render-loras")
    n = len(cells(files))
    print(f"\n{base}: {EPOCHS} epochs x {len(WEIGHTS)} weights = {n} cells, {args.type}, "
          f"{args.size}x{args.size}, {args.steps} steps, {args.sampler}, "
          f"{torch.get_num_threads()} torch threads")
    one_load(base, files[:1], args)  # warm-up, untimed: imports and first-call costs
    a = one_load(base, files, args)
    b = load_per_cell(base, files, args)
    load = statistics.median(b["loads"])
    c.print_table([
        ("", "seconds"),
        ("(a) engine: one load + switches, total", f"{a['total']:.2f}"),
        ("(b) a load per cell, total", f"{b['total']:.2f}"),
        ("base load (median of the per-cell loads)", f"{load:.3f}"),
        ("set_lora, mean of all cells", f"{statistics.mean(a['switches']):.4f}"),
        # each file's first cell is weight 0: it reads the file and restores the base
        ("set_lora, weight 0 (file read, base restored)",
         f"{statistics.mean(a['switches'][::len(WEIGHTS)]):.4f}"),
        ("set_lora, weights 0.4 / 0.7 / 1 (deltas applied)",
         f"{statistics.mean(s for i, s in enumerate(a['switches']) if i % len(WEIGHTS)):.4f}"),
        ("render, mean", f"{statistics.mean(a['renders']):.3f}"),
        ("(b) set_lora, mean (a fresh read each cell)", f"{statistics.mean(b['switches']):.4f}"),
        ("(b) render, mean (first render of a fresh model)",
         f"{statistics.mean(b['renders']):.3f}"),
    ])
    ratio = b["total"] / a["total"]
    print(f"ratio (b) / (a): {ratio:.2f}x; set_lora mean / load: "
          f"{statistics.mean(a['switches']) / load:.4f}")
    same = all((x == y).all() for x, y in zip(a["latents"], b["latents"], strict=True))
    print(("ok: " if same else "FAIL: ") + "the engine's latents are "
          + ("bit for bit" if same else "NOT") + " those of a fresh load per cell")
    return same


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="also builtin:sd15-random")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="tiny model's side in pixels")
    p.add_argument("--full-size", type=int, default=256, help="sd15-random's side in pixels")
    p.add_argument("--type", default="lora", choices=["lora", "locon", "loha", "lokr", "ia3"])
    p.add_argument("--sampler", default="Euler a")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    args = p.parse_args()
    c.ensure_importable()
    print(c.machine_line())
    print(c.load_line())
    ok = bench("builtin:tiny-sd15", args)
    if args.full:
        args.size = args.full_size
        ok = bench("builtin:sd15-random", args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
