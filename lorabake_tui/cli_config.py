"""`lorabake config ...`: make a training config from a preset and a dataset, and check one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core.errors import LorabakeError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lorabake config",
                                description="Training configs: presets, new, check.")
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
    return p


def main(argv: list[str]) -> int:
    from .core.config_presets import list_presets, new_config

    args = build_parser().parse_args(argv)
    if args.action == "presets":
        print("\n".join(list_presets()))
        return 0
    if args.action == "new":
        from .core.config_file import dump_config
        from .core.dataset import scan_dataset

        ds = scan_dataset(args.dir, args.reg, caption_ext=args.caption_ext)
        text = dump_config(new_config(args.preset, ds))
        if not args.output:
            print(text, end="")
            return 0
        out = Path(args.output)
        if out.exists():
            raise LorabakeError(f"{out} exists", "choose another -o, or delete it first")
        from .core.atomic import atomic_write_text

        atomic_write_text(out, text)
        print(f"wrote {out} (preset {args.preset}); check it with `lorabake config check "
              f"{out}`", file=sys.stderr)
        return 0
    return check(args)


def check(args) -> int:
    from .core.config_check import check_config
    from .core.config_file import load_config
    from .core.dataset import scan_dataset

    doc = load_config(args.file)
    dataset = None
    train = doc.value("data.train_dir")
    if train and Path(train).is_dir():
        try:
            dataset = scan_dataset(train, doc.value("data.reg_dir") or None,
                                   caption_ext=doc.value("data.caption_extension"))
        except LorabakeError:
            dataset = None
    findings = check_config(doc, dataset=dataset, check_paths=not args.no_paths)
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
