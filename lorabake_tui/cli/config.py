"""`lorabake config ...`: make a training config from a preset and a dataset, check one, and
export it to (or import it from) kohya sd-scripts and LoRA_Easy_Training_Scripts files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.base.errors import LorabakeError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lorabake config",
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
    a = sub.add_parser("check", help="validate a config; exits 1 on errors")
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
    from ..core.config.check import check_config, resolve_path
    from ..core.config.file import load_config
    from ..core.dataset.scan import scan_dataset

    doc = load_config(args.file)
    base = Path(args.file).parent
    dataset = None
    train = doc.value("data.train_dir")
    if train and resolve_path(train, base).is_dir():
        reg = doc.value("data.reg_dir")
        try:
            dataset = scan_dataset(resolve_path(train, base),
                                   resolve_path(reg, base) if reg else None,
                                   caption_ext=doc.value("data.caption_extension"))
        except LorabakeError:
            dataset = None
    findings = check_config(doc, dataset=dataset, check_paths=not args.no_paths, base_dir=base,
                            for_trainer=True)
    errors = [f for f in findings if f.severity == "error"]
    if args.json:
        print(json.dumps({"errors": [f.to_json() for f in errors],
                          "warnings": [f.to_json() for f in findings if f not in errors]},
                         indent=2))
    else:
        for f in findings:
            where = f"{args.file}:{f.line}" if f.line else args.file
            print(f"{where}: {f.severity}: {f.message}")
        if not findings:
            print(f"{args.file}: no problems found")
    return 1 if errors else 0


def _total_steps(args, cfg: dict) -> int | None:
    from ..core.config.kohya import estimate_total_steps

    if args.total_steps is not None:
        if args.total_steps < 1:
            raise LorabakeError("--total-steps must be at least 1")
        return args.total_steps
    return estimate_total_steps(cfg)


def _notes(notes: list[str]) -> None:
    for n in notes:
        print(f"note: {n}", file=sys.stderr)


def export(args) -> int:
    import shlex

    from ..core.config.check import check_config
    from ..core.config.file import load_config

    doc = load_config(args.file)
    errors = [f for f in check_config(doc, check_paths=False) if f.severity == "error"]
    if errors:
        f = errors[0]
        where = f"{args.file}:{f.line}" if f.line else args.file
        raise LorabakeError(f"{where}: {f.message}", "fix it first; `lorabake config check "
                            f"{args.file}` lists every problem")
    cfg = doc.merged()
    total = _total_steps(args, cfg)
    notes: list[str] = []
    o = cfg["optimizer"]
    if args.to == "kohya" and args.total_steps is None and total and (
            o["warmup_ratio"] > 0 or o["scheduler"] == "cosine_annealing_warm_restarts"):
        notes.append(f"{total} total steps counted from the dataset (--total-steps N to "
                     "override)")
    if args.to == "easy":
        from ..core.config.easy import prompts_path_for, write_easy

        out = write_easy(cfg, args.out, force=args.force, notes=notes)
        _notes(notes)
        extra = f" and {prompts_path_for(out)}" if any(
            str(p).strip() for p in cfg["sampling"]["prompts"]) else ""
        print(f"wrote {out}{extra}: load it in LoRA_Easy_Training_Scripts", file=sys.stderr)
        return 0
    from ..core.config.kohya import PROMPTS_NAME, write_kohya

    cfg_path, ds_path = write_kohya(cfg, args.out, total_steps=total, force=args.force,
                                    notes=notes)
    _notes(notes)
    prompts = cfg_path.parent / PROMPTS_NAME
    written = [cfg_path, ds_path] + ([prompts] if any(
        str(p).strip() for p in cfg["sampling"]["prompts"]) else [])
    print(f"wrote {', '.join(map(str, written))}; run from your sd-scripts folder:",
          file=sys.stderr)
    print(f"accelerate launch train_network.py --config_file {shlex.quote(str(cfg_path))} "
          f"--dataset_config {shlex.quote(str(ds_path))}")
    return 0


def _is_ours(data: dict) -> bool:
    def has(section: str, *keys: str) -> bool:
        sec = data.get(section)
        return isinstance(sec, dict) and any(k in sec for k in keys)

    return has("data", "train_dir", "subsets") or has("network", "type") or \
        has("general", "base_model")


def _fill_subsets(cfg: dict) -> None:
    """A kohya folder-mode config (train_data_dir, no dataset config): the subsets from a scan,
    as `config new` makes them."""
    from ..core.dataset.scan import scan_dataset

    d = cfg["data"]
    if d["subsets"] or not d["train_dir"] or not Path(d["train_dir"]).is_dir():
        return
    ds = scan_dataset(d["train_dir"], d["reg_dir"] or None, caption_ext=d["caption_extension"])
    d["subsets"] = [{"folder": c.folder, "repeats": c.repeats, "is_reg": c.is_reg}
                    for c in ds.concepts if c.repeats is not None and c.repeats >= 1
                    and c.image_count]


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
    total = _total_steps(args, cfg)
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
