"""`lorabake grid` and `lorabake probe`: draw an epoch x weight grid of a run's LoRA files, or
probe a trigger word with the base model. Both run in the foreground (progress on stderr;
Ctrl+C keeps what was drawn), or with --detach as a render job that waits for its GPU behind
training jobs and outlives the terminal (`lorabake jobs` lists, stops and tails it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.base.errors import LorabakeError
from .common import Parser, print_json

GRID_JSON_HELP = """\
--json prints the manifest (also written as OUT.json beside the grid):
  grid (path), complete (bool), base, run_dir, render {steps, cfg, width, height, sampler,
  negative, clip_skip, dtype}, rows [{label, epoch, path}], weights, prompts, seeds,
  cells [{epoch, label, weight, prompt, prompt_index, seed, row, path}]
With --detach: {job, folder, grid, manifest}.

Rows are the LoRA files (epochs in order, then the final file), columns the weights, one block
per prompt and seed. Weight 0 is the base model: the same image in every row. Each cell is also
a PNG in the folder OUT (without .png), with A1111's `parameters` text."""

PROBE_JSON_HELP = """\
--json prints probe.json: word, subject, base, images [{group, prompt, seed, path}],
  diversity (the word's), baseline_diversity (the empty prompt's), subject_diversity, ratio
  (word / empty), reading ("free" | "partly known" | "known"), explanation, tokens (the
  `lorabake trigger --json` report).
With --detach: {job, folder}.

diversity: the mean over pairs of seeds of 1 - the cosine similarity of the final latents
(centred): 0 = the same picture every time, about 1 = unrelated pictures. ratio >= 0.85: free;
0.6-0.85: partly known; below 0.6: known (the model already draws something for the word)."""


def _render_options(p: argparse.ArgumentParser, *, default_steps: int = 20) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--seed", type=int, default=1, metavar="N", help="first seed (default 1)")
    g.add_argument("--steps", type=int, default=default_steps, metavar="N",
                   help=f"sampling steps (default {default_steps})")
    g.add_argument("--cfg", type=float, default=7.0, metavar="X", help="CFG scale (default 7)")
    g.add_argument("--size", default="512x512", metavar="WxH", help="image size (512x512)")
    g.add_argument("--sampler", default="Euler a", metavar="NAME",
                   help="A1111 sampler name: Euler a, Euler, DPM++ 2M, DPM++ 2M Karras, DDIM, "
                        "... (default Euler a)")
    g.add_argument("--negative", default="", metavar="TEXT", help="negative prompt")
    g.add_argument("--clip-skip", type=int, metavar="N",
                   help="default: the run's (a run folder or --config), else 1")
    g.add_argument("--precision", default="auto", choices=("auto", "fp16", "bf16", "fp32"),
                   help="auto: fp32 on CPU, bf16 (or fp16) on a GPU")
    j = p.add_argument_group("as a job")
    j.add_argument("--detach", action="store_true",
                   help="queue it as a render job (starts when its GPUs are free of training)")
    j.add_argument("--gpus", default="", metavar="0,1", help="with --detach: CUDA devices")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _settings(args, clip_skip: int):
    from ..core.eval.request import RenderSettings, parse_size

    width, height = parse_size(args.size)
    r = RenderSettings(steps=args.steps, cfg=args.cfg, width=width, height=height,
                       sampler=args.sampler, negative=args.negative,
                       clip_skip=args.clip_skip or clip_skip, dtype=args.precision)
    r.check()
    return r


# ---- grid --------------------------------------------------------------------------------
def grid_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lorabake grid", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Render an epoch x weight grid (like A1111's X/Y plot) of a "
                           "training run's LoRA files, or of LoRA files you name.",
               epilog=GRID_JSON_HELP)
    p.add_argument("sources", nargs="+", metavar="RUN_DIR|LORA",
                   help="a run folder (its epoch files and final file), or LoRA files")
    p.add_argument("-o", "--out", required=True, metavar="GRID.png", help="the grid image")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="a prompt (repeat for more; default: the run's sample prompts, else "
                        "the trigger and top tags of its dataset)")
    p.add_argument("--weights", default="0,0.4,0.7,1", metavar="W,W",
                   help="LoRA weights, the columns (default 0,0.4,0.7,1)")
    p.add_argument("--epochs", default="all", metavar="all|last|1,3,5",
                   help="which of a run's files: all, last, or epoch numbers (final: the "
                        "final file)")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="seeds per prompt, from --seed on (default 1)")
    p.add_argument("--model", metavar="BASE", help="the base model (default: the run's)")
    _render_options(p)
    return p


def _grid_request(args):
    from ..core.eval.request import GridRequest, parse_weights, seed_list, select_loras
    from ..core.eval.run_loras import file_choices, run_info, run_loras

    first = Path(args.sources[0]).expanduser()
    info = None
    if first.is_dir():
        if len(args.sources) > 1:
            raise LorabakeError("give one run folder, or LoRA files, not both")
        info = run_info(first)
        loras = select_loras(args.epochs, run_loras(first, info.output_name))
    else:
        loras = file_choices(args.sources)
    base = args.model or (info.base if info else "")
    if not base:
        raise LorabakeError("no base model", "give --model (a checkpoint, a diffusers "
                            "folder or builtin:...) or a run folder")
    prompts = args.prompt or (list(info.prompts) if info else []) or \
        (_dataset_prompts(info.train_dir) if info and info.train_dir else [])
    if not prompts:
        raise LorabakeError("no prompt", "give --prompt TEXT")
    out = Path(args.out).expanduser().resolve()
    if out.suffix.lower() != ".png":
        raise LorabakeError(f"{args.out}: the grid is a PNG", "give -o NAME.png")
    req = GridRequest(base=base, loras=loras, weights=parse_weights(args.weights),
                      prompts=prompts, seeds=seed_list(args.seed, args.seeds), out=str(out),
                      render=_settings(args, info.clip_skip if info else 1),
                      run_dir=str(info.path) if info else "")
    req.check()
    return req


def _dataset_prompts(train_dir: Path) -> list[str]:
    from ..core.captions.store import CaptionStore
    from ..core.dataset.scan import scan_dataset
    from ..core.eval.prompts import default_prompts

    try:
        return default_prompts(CaptionStore.load(scan_dataset(train_dir)).records)
    except (LorabakeError, OSError):
        return []  # a moved dataset: the user gives --prompt


def grid_main(argv: list[str]) -> int:
    from ..core.eval.layout import grid_folder, grid_manifest

    args = grid_parser().parse_args(argv)
    req = _grid_request(args)
    if grid_folder(req.out).exists() or Path(req.out).exists():
        raise LorabakeError(f"{req.out} (or its folder) already exists",
                            "choose another -o name; a grid is never drawn over another")
    if args.detach:
        return _detach(req, args, {"grid": req.out, "manifest": str(grid_manifest(req.out))})
    code = _foreground(req)
    if args.json and grid_manifest(req.out).exists():
        print_json(json.loads(grid_manifest(req.out).read_text()))
    elif code == 0:
        print(req.out)
    return code


# ---- probe -------------------------------------------------------------------------------
def probe_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lorabake probe", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Draw a candidate trigger word alone (and with the dataset's most "
                           "common subject tag) over several seeds with the base model, and "
                           "measure how much the images agree: a free word scatters like an "
                           "empty prompt, a word the model knows does not.",
               epilog=PROBE_JSON_HELP)
    p.add_argument("word", help="the candidate trigger")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="BASE", help="the base model")
    src.add_argument("--config", metavar="FILE",
                     help="a training config: its base model, clip skip and dataset")
    p.add_argument("--dir", metavar="DATASET", help="the dataset (for the subject tag)")
    p.add_argument("--subject", metavar="TAG",
                   help="pair the word with this tag (default: the dataset's most common "
                        "subject tag; '' for none)")
    p.add_argument("--seeds", type=int, default=4, metavar="K", help="seeds (default 4)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="a new folder")
    _render_options(p)
    return p


def probe_main(argv: list[str]) -> int:
    from ..core.eval.request import ProbeRequest, seed_list

    args = probe_parser().parse_args(argv)
    if not args.word.strip():
        raise LorabakeError("the trigger word is empty")
    base, clip_skip, dataset = args.model or "", 1, args.dir
    if args.config:
        from ..core.config.file import load_config
        from ..core.config.validate import read_settings

        cfg = Path(args.config).expanduser()
        settings, _ = read_settings(load_config(cfg), base_dir=cfg.resolve().parent)
        base, clip_skip = settings.general.base_model, settings.general.clip_skip
        dataset = dataset or (str(settings.data.train_dir) if settings.data.train_dir else None)
    if not base:
        raise LorabakeError("no base model", "give --model BASE or --config FILE")
    subject = args.subject if args.subject is not None else _subject(dataset, args.word)
    out = Path(args.out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise LorabakeError(f"{out} is not empty", "give a new folder with -o")
    req = ProbeRequest(base=base, word=args.word.strip(), seeds=seed_list(args.seed, args.seeds),
                       out_dir=str(out), subject=subject, render=_settings(args, clip_skip))
    req.check()
    if args.detach:
        return _detach(req, args, {})
    code = _foreground(req)
    manifest = out / "probe.json"
    if code == 0 and manifest.exists():
        data = json.loads(manifest.read_text())
        if args.json:
            print_json(data)
        else:
            _print_probe(data)
    return code


def _subject(dataset: str | None, word: str) -> str:
    if not dataset:
        return ""
    from ..core.captions.store import CaptionStore
    from ..core.dataset.scan import scan_dataset
    from ..core.eval.prompts import subject_tag

    return subject_tag(CaptionStore.load(scan_dataset(dataset)).records, word)


def _print_probe(d: dict) -> None:
    print(f"{d['word']}: diversity {d['diversity']:.3f} across {len(d['images']) // 2} seeds "
          f"(empty prompt {d['baseline_diversity']:.3f}; ratio {d['ratio']:.2f})")
    print(f"reading: {d['reading']}: {d['explanation']}")
    if d.get("subject"):
        print(f"with '{d['subject']}': diversity {d['subject_diversity']:.3f}")
    t = d["tokens"]
    print(f"tokens: {t['count']} ({' | '.join(p['piece'] for p in t['pieces'])}), "
          f"contamination risk {t['risk']}")
    print(f"images: {Path(d['images'][0]['path']).parent}")


# ---- shared --------------------------------------------------------------------------------
def _foreground(req) -> int:
    from ..core.eval.layout import REQUEST_FILE, render_folder
    from ..core.eval.request import write_request

    folder = render_folder(req)
    folder.mkdir(parents=True, exist_ok=True)
    write_request(req, folder / REQUEST_FILE)
    try:
        from ..trainer.render.__main__ import main as render_main
    except ImportError as exc:
        raise LorabakeError(f"the render engine is not installed ({exc.name} missing)",
                            "pip install 'lorabake-tui[train]'") from None
    return render_main([str(folder / REQUEST_FILE), "--run-dir", str(folder)],
                       say=lambda text: print(text, file=sys.stderr, flush=True), echo=True)


def _detach(req, args, extra: dict) -> int:
    from ..jobs.control import submit_render

    job = submit_render(req, gpus=args.gpus, start=False)
    if args.json:
        print_json({"job": job.id, "folder": job.run_dir, **extra})
    else:
        print(f"queued {job.id} ({job.name}) in {job.run_dir}: lorabake jobs log -f {job.id}")
    return 0
