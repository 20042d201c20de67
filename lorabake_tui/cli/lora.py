"""`lorabake lora info FILE` (what a LoRA file is) and `lorabake lora resize FILE` (a rank
out of a DyLoRA)."""

from __future__ import annotations

import argparse
import sys

from .common import Parser, print_json

INFO_HELP = """\
The type, module counts and ranks come from the tensors (a file without metadata still gets
them); the rest from kohya's ss_* metadata, which is checked against the tensors (notes).
conv counts convolutions with a kernel above 1x1 (LoCon's conv_dim); 1x1 ones count as linear.

--json prints one object:
  file, size (bytes), type ("lora" | "locon" | "loha" | "lokr" | "ia3" | "dylora", or a
  LyCORIS algo by its name), type_from ("metadata" | "keys"), network_module, network_args
  (object or null), unit (DyLoRA), dtypes [str], tensors (count),
  modules {total, unet, text_encoder, other, linear, conv},
  dim, alpha, conv_dim, conv_alpha (the most common value, null when none),
  dims, alphas, conv_dims, conv_alphas (every distinct value, most common first),
  output_name, comment (ss_training_comment: the triggers), base_model (ss_sd_model_name),
  base_model_version, hashes {sd_model_hash, new_sd_model_hash, sshs_model_hash,
  sshs_legacy_hash}, training {resolution, steps, max_steps, epoch, epochs, train_images,
  batches_per_epoch, learning_rate, unet_lr, text_encoder_lr, optimizer, scheduler,
  clip_skip, started_at, finished_at} (numbers where the metadata holds one; null when absent),
  tags (null without ss_tag_frequency): [{folder, distinct, top [{tag, count}]}],
  metadata_keys (count), notes [str]"""

RESIZE_HELP = """\
For a DyLoRA (kohya networks.dylora, saved at its full dim): rank N is the first N rows of
every lora_down and the first N columns of every lora_up; alphas are kept, ss_network_dim
becomes N, the key lorabake_resized says "split from DyLoRA, rank D to N" (the comment and
its triggers stay as they are) and the sshs_* hashes are computed anew. --all writes every
multiple of the unit (ss_network_args unit, else 4) below the full dim, as
PREFIX-rankN.safetensors. An existing file is never overwritten."""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lorabake lora", description="Look into a trained LoRA file; cut a rank "
               "out of a DyLoRA.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = sub.add_parser("info", help="type, modules, dim/alpha, base model, triggers, "
                       "training and top tags of a LoRA (lorabake, kohya, LyCORIS)",
                       description="What a LoRA .safetensors file is.", epilog=INFO_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("file")
    a.add_argument("--tags", type=int, default=10, metavar="N",
                   help="top tags per folder (default 10)")
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a = sub.add_parser("resize", help="rank N (or every rank) out of a DyLoRA file",
                       description="Extract a lower rank from a DyLoRA file.",
                       epilog=RESIZE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("file")
    which = a.add_mutually_exclusive_group(required=True)
    which.add_argument("--dim", type=int, metavar="N", help="the rank to keep")
    which.add_argument("--all", action="store_true", help="every multiple of the unit below "
                       "the full dim; -o is then a prefix")
    a.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the file to write (with --all: the prefix)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "resize":
        return resize(args)
    from ..core.lora.info import lora_info

    info = lora_info(args.file, top_tags=max(0, args.tags))
    if args.json:
        print_json(info.to_json())
        return 0
    print_info(info)
    return 0


def _num(v) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _when(v) -> str:
    """kohya's ss_training_*_at: seconds since the epoch, shown in UTC."""
    import datetime as dt

    if not isinstance(v, int | float):
        return str(v)
    try:
        return dt.datetime.fromtimestamp(v, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return _num(v)


def _list(values: list, none: str = "-") -> str:
    return "/".join(_num(v) for v in values) if values else none


def print_info(info) -> None:
    m = info.modules
    src = "metadata" if info.type_from == "metadata" else "tensor keys"
    unit = f", unit {info.unit}" if info.unit else ""
    print(f"{info.path}: {info.type} (from the {src}{unit}), {info.size:,} bytes, "
          f"{', '.join(info.dtypes)}")
    other = f", {m['other']} other" if m["other"] else ""
    print(f"modules: {m['total']} ({m['unet']} UNet, {m['text_encoder']} text encoder{other}; "
          f"{m['linear']} linear, {m['conv']} conv)")
    if info.type != "ia3":
        # a LoKr whose factors are both full matrices has no rank
        none = "full" if info.type == "lokr" else "-"
        line = f"dim {_list(info.dims, none)}, alpha {_list(info.alphas)}"
        if m["conv"]:
            line += (f"; conv_dim {_list(info.conv_dims, none)}, "
                     f"conv_alpha {_list(info.conv_alphas)}")
        print(line)
    if info.network_module:
        args = " ".join(f"{k}={v}" for k, v in (info.network_args or {}).items())
        print(f"network: {info.network_module}{' ' + args if args else ''}")
    if info.metadata_keys == 0:
        print("no metadata")
    rows = [("output name", info.output_name), ("comment (triggers)", info.comment),
            ("base model", info.base_model), ("base model version", info.base_model_version)]
    rows += [(k.replace("_", " "), v) for k, v in info.hashes.items()]
    rows += [(k.replace("_", " "), None if v is None else _when(v) if k.endswith("_at")
              else _num(v)) for k, v in info.training.items()]
    shown = [(k, v) for k, v in rows if v not in (None, "")]
    if shown:
        width = max(len(k) for k, _ in shown)
        for k, v in shown:
            print(f"{k + ':':{width + 1}} {v}")
    for folder in info.tags or []:
        tags = ", ".join(f"{t} ({c})" for t, c in folder.top)
        print(f"tags in {folder.folder} ({folder.distinct} distinct): {tags or '-'}")
    for n in info.notes:
        print(f"note: {n}")


def resize(args) -> int:
    from ..core.lora.resize import resize as resize_one
    from ..core.lora.resize import resize_all

    if args.all:
        for rank, path in resize_all(args.file, args.output):
            print(f"wrote {path} (rank {rank})", file=sys.stderr)
        return 0
    out = resize_one(args.file, args.dim, args.output)
    print(f"wrote {out} (rank {args.dim})", file=sys.stderr)
    return 0
