"""`lorabake config ...`: make a training config from a preset and a dataset, check one, and
export it to (or import it from) kohya sd-scripts and LoRA_Easy_Training_Scripts files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.base.errors import LorabakeError
from .common import Parser, print_json

JSON_HELP = """\
--json prints one object:
  errors [{key, line, message}], warnings [{key, line, message}],
  summary (null when the training folders cannot be read):
    {samples_per_epoch, train_samples, reg_samples, batches_per_epoch, steps_per_epoch,
     gradient_accumulation_steps, epochs, total_steps, warmup_steps, buckets, images}
samples count repeats; batches per epoch are summed per bucket (kohya's rounding); steps
are optimizer steps (the batches over optimizer.gradient_accumulation_steps); total steps
are cut at general.max_steps; epochs are the epochs the run starts."""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lorabake config",
                                description="Training configs: presets, new, check, export, "
                                "import.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("presets", help="list the presets (bundled and your own)")
    a = sub.add_parser("new", help="a config from a preset, with the data part from DIR")
    a.add_argument("dir", help="dataset training root")
    a.add_argument("--preset", default="lora-adamw")
    a.add_argument("--reg", metavar="DIR", help="regularization root")
    a.add_argument("--caption-ext", default=".txt", metavar="EXT")
    a.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout); "
                   "an existing file is not overwritten")
    a = sub.add_parser("check", help="validate a config; exits 1 on errors",
                       description="Every problem `lorabake train` would refuse, and the "
                       "mistakes kohya accepts silently, each with its line and the fix; "
                       "then the samples, batches and steps of the run.",
                       epilog=JSON_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("file")
    a.add_argument("--json", action="store_true")
    a.add_argument("--no-paths", action="store_true", help="do not check that paths exist")
    a = sub.add_parser("export", help="write a config as kohya sd-scripts files (--to kohya "
                       "OUTDIR) or a LoRA_Easy_Training_Scripts TOML (--to easy OUT.toml)")
    a.add_argument("file")
    a.add_argument("--to", required=True, choices=("kohya", "easy"),
                   help="kohya: OUT is a folder for config.toml, dataset.toml (and "
                   "prompts.txt); easy: OUT is the .toml to write")
    a.add_argument("out", metavar="OUT")
    _steps_and_force(a)
    a = sub.add_parser("import", help="a config from kohya sd-scripts files or a "
                       "LoRA_Easy_Training_Scripts TOML (the format is detected)")
    a.add_argument("file", help="kohya config.toml (or dataset.toml), or a LoRA_Easy TOML")
    a.add_argument("--dataset", metavar="FILE", help="kohya --dataset_config TOML (default: "
                   "the config's own dataset_config)")
    a.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    _steps_and_force(a)
    return p


def _steps_and_force(a: argparse.ArgumentParser) -> None:
    a.add_argument("--total-steps", type=int, metavar="N", help="the run's optimizer steps, "
                   "for warmup and warm restarts (default: counted from the dataset)")
    a.add_argument("--force", action="store_true", help="overwrite existing files")


def main(argv: list[str]) -> int:
    from ..core.config.presets import list_presets, new_config

    args = build_parser().parse_args(argv)
    if args.action == "presets":
        print("\n".join(list_presets()))
        return 0
    if args.action == "new":
        from ..core.config.file import dump_config
        from ..core.dataset.scan import scan_dataset

        ds = scan_dataset(args.dir, args.reg, caption_ext=args.caption_ext)
        text = dump_config(new_config(args.preset, ds))
        if not args.output:
            print(text, end="")
            return 0
        out = Path(args.output)
        if out.exists():
            raise LorabakeError(f"{out} exists", "choose another -o, or delete it first")
        from ..core.base.atomic import atomic_write_text
        from ..core.base.project_files import STATE_DIRNAME

        if not out.parent.is_dir():
            if out.parent.name == STATE_DIRNAME and out.parent.parent.is_dir():
                out.parent.mkdir()  # the project's own config: its state folder may not exist
            else:
                raise LorabakeError(f"{out.parent} does not exist",
                                    "create the folder first, or choose another -o")

        atomic_write_text(out, text)
        print(f"wrote {out} (preset {args.preset}); check it with `lorabake config check "
              f"{out}`", file=sys.stderr)
        return 0
    if args.action == "export":
        return export(args)
    if args.action == "import":
        return import_config(args)
    return check(args)


def check(args) -> int:
    from ..core.config.file import read_config_text
    from ..core.project.check import check_text

    path = Path(args.file)
    result = check_text(read_config_text(path), source=str(path),
                        base_dir=path.resolve().parent, check_paths=not args.no_paths)
    findings = result.findings
    if args.json:
        print_json({"errors": [f.to_json() for f in result.errors],
                    "warnings": [f.to_json() for f in findings if not f.is_error],
                    "summary": result.plan.summary() if result.plan is not None else None})
    else:
        for f in findings:
            print(f.located(args.file))
        if not findings:
            print(f"{args.file}: no problems found")
        if result.plan is not None and result.plan.report is not None:
            s = result.plan.summary()
            print(f"{s['samples_per_epoch']} samples and {s['batches_per_epoch']} batches per "
                  f"epoch, {s['total_steps']} steps over {s['epochs']} epoch(s)")
    return 1 if result.errors else 0


def _notes(notes: list[str]) -> None:
    for n in notes:
        print(f"note: {n}", file=sys.stderr)


def _given_total(args) -> int | None:
    if args.total_steps is not None and args.total_steps < 1:
        raise LorabakeError("--total-steps must be at least 1")
    return args.total_steps


def export(args) -> int:
    import shlex

    from ..core.config.file import load_config
    from ..core.project.export import export_config

    doc = load_config(args.file)
    notes: list[str] = []
    written, total = export_config(doc, Path(args.file).resolve().parent, args.to, args.out,
                                   total_steps=_given_total(args), force=args.force,
                                   notes=notes)
    o = doc.data.get("optimizer") if isinstance(doc.data.get("optimizer"), dict) else {}
    if args.to == "kohya" and args.total_steps is None and total and (
            o.get("warmup_ratio", 0) or o.get("scheduler") == "cosine_annealing_warm_restarts"):
        notes.insert(0, f"{total} total steps counted from the dataset (--total-steps N to "
                     "override)")
    _notes(notes)
    if args.to == "easy":
        extra = f" and {written[1]}" if len(written) > 1 else ""
        print(f"wrote {written[0]}{extra}: load it in LoRA_Easy_Training_Scripts",
              file=sys.stderr)
        return 0
    cfg_path, ds_path = written[0], written[1]
    print(f"wrote {', '.join(map(str, written))}; run from your sd-scripts folder:",
          file=sys.stderr)
    print(f"accelerate launch train_network.py --config_file {shlex.quote(str(cfg_path))} "
          f"--dataset_config {shlex.quote(str(ds_path))}")
    return 0


def _plan_total(cfg: dict) -> int | None:
    """The total steps an imported config trains, from a scan of its folders (None when
    they cannot be read)."""
    from ..core.config.file import dump_config, parse_config
    from ..core.project.check import check_training

    try:
        doc = parse_config(dump_config(cfg), "imported config")
    except LorabakeError:
        return None
    result = check_training(doc, check_paths=False, for_trainer=False)
    return result.plan.total_steps if result.plan is not None and result.plan.total_steps \
        else None


def _is_ours(data: dict) -> bool:
    def has(section: str, *keys: str) -> bool:
        sec = data.get(section)
        return isinstance(sec, dict) and any(k in sec for k in keys)

    return has("data", "train_dir", "subsets") or has("network", "type") or \
        has("general", "base_model")


def _fill_subsets(cfg: dict) -> None:
    """A kohya folder-mode config (train_data_dir, no dataset config): the subsets from a scan,
    as `config new` makes them."""
    from ..core.config.presets import subsets_for
    from ..core.dataset.scan import scan_dataset

    d = cfg["data"]
    if d["subsets"] or not d["train_dir"] or not Path(d["train_dir"]).is_dir():
        return
    ds = scan_dataset(d["train_dir"], d["reg_dir"] or None, caption_ext=d["caption_extension"])
    d["subsets"] = subsets_for(ds)


def import_config(args) -> int:
    from ..core.config.easy import from_easy, is_easy
    from ..core.config.file import dump_config, load_config
    from ..core.config.kohya import flatten, from_kohya

    src = Path(args.file)
    data = load_config(src).data
    if _is_ours(data):
        raise LorabakeError(f"{src} is already a lorabake config", "check it with `lorabake "
                            f"config check {src}`")
    if is_easy(data):
        if args.dataset:
            raise LorabakeError("--dataset is for kohya files: a LoRA_Easy file holds its own "
                                "subsets")
        kind = "LoRA_Easy_Training_Scripts"

        def convert(total: int | None, notes: list[str]) -> dict:
            return from_easy(data, base_dir=src.parent, notes=notes)
    else:
        kind = "kohya"
        dataset = None
        config = data
        if "datasets" in data:  # a dataset config (possibly with the config around it)
            dataset = {k: data[k] for k in ("general", "datasets") if k in data}
            config = {k: v for k, v in data.items() if k not in dataset}
        if args.dataset:
            dataset = load_config(args.dataset).data
        elif dataset is None and flatten(config).get("dataset_config"):
            ref = Path(str(flatten(config)["dataset_config"])).expanduser()
            if not ref.is_absolute() and not ref.exists():
                ref = src.parent / ref
            if not ref.is_file():
                raise LorabakeError(f"dataset_config {ref} not found", "give it with --dataset")
            dataset = load_config(ref).data

        def convert(total: int | None, notes: list[str]) -> dict:
            return from_kohya(config, dataset, total_steps=total, base_dir=src.parent,
                              notes=notes)
    cfg = convert(args.total_steps, [])
    _fill_subsets(cfg)
    total = _given_total(args)
    if total is None:
        total = _plan_total(cfg)
    notes: list[str] = []
    cfg = convert(total, notes)
    _fill_subsets(cfg)
    text = dump_config(cfg)
    if not args.output:
        _notes(notes)
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.exists() and not args.force:
        raise LorabakeError(f"{out} exists", "choose another -o, or overwrite with --force")
    from ..core.base.atomic import atomic_write_text

    atomic_write_text(out, text)
    _notes(notes)
    print(f"wrote {out} (from a {kind} config); check it with `lorabake config check {out}`",
          file=sys.stderr)
    return 0
