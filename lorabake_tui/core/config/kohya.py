"""kohya sd-scripts' own files, both ways: the `--config_file` TOML (argparse names; its
[section] tables are flattened one level and their names ignored) and the strictly validated
`--dataset_config` TOML ([general], [[datasets]], [[datasets.subsets]]).

Mapping choices that are not one-to-one:

- Scheduler `cosine_annealing_warm_restarts` has no kohya built-in. With the run's total step
  count known and no warmup it becomes lr_scheduler_type = torch's CosineAnnealingWarmRestarts
  with T_0 = ceil(total_steps / cycles) (lr_scheduler_num_cycles is written too: kohya
  ignores it for a custom class; the import reads the cycles back from it). Without the total,
  or with warmup (kohya refuses warmup steps for a custom class), it becomes the built-in
  `cosine_with_restarts` with the same cycles: the same curve (equal cycles, each from the
  peak to zero) that also knows warmup; the import then reads `cosine_with_restarts`.
- warmup_ratio becomes lr_warmup_steps = round(total_steps * ratio); without the total, 0 and
  a note. The import turns steps back into a ratio only with the total (a float below 1 is
  already a ratio, as current sd-scripts read it).
- `constant` with warmup becomes `constant_with_warmup` (kohya refuses warmup for constant).
- "0 = off" settings (min SNR, scale weight norms, noise offset, pyramid noise, dropout, lr
  overrides, keep last) are left out when 0: older sd-scripts refuse noise_offset and
  multires_noise_iterations set together even at 0.
- Settings kohya has no place for: tag_occurrence (kohya always stores tag frequencies),
  saving.state_every_n_steps, and sampling.steps, which travels as `--s N` on each line of
  the prompts file.
- kohya's block-wise network arguments (network.down_lr_weight ... conv_block_alphas) are
  written as its `network_args` strings ("block_dims=4,4,..."), which networks.lora splits
  itself; the import joins what literal_eval made of them back into our values.
  optimizer.gradient_accumulation_steps is written when above 1.
- general.max_steps becomes max_train_steps (without max_train_epochs, which would override
  it) when it ends the run before the epochs do; imported back, epochs is set high so the
  steps decide.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ..base.atomic import atomic_write_text
from ..base.errors import LorabakeError
from ..dataset.folders import parse_folder_name
from .blocks import BLOCK_KEYS, from_network_args
from .blocks import network_args as block_network_args
from .schema import SCHEDULERS, SECTIONS, SETTINGS, Optimizer, TrainingSettings, defaults

CONFIG_NAME = "config.toml"
DATASET_NAME = "dataset.toml"
PROMPTS_NAME = "prompts.txt"
TORCH_WARM_RESTARTS = "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts"
LYCORIS = ("loha", "lokr", "ia3")

# which of our optimizer settings each optimizer takes (same names as its keyword arguments)
OPTIMIZER_ARGS: dict[str, tuple[str, ...]] = {
    "AdamW": ("weight_decay", "betas"),
    "AdamW8bit": ("weight_decay", "betas"),
    "Prodigy": ("weight_decay", "betas", "decouple", "use_bias_correction", "safeguard_warmup",
                "d_coef"),
    "DAdaptAdam": ("weight_decay", "betas", "decouple", "use_bias_correction"),
}
# what an argument left out means: the optimizer's own default (torch, bitsandbytes,
# prodigyopt, dadaptation)
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "AdamW": {"weight_decay": 0.01, "betas": [0.9, 0.999]},
    "AdamW8bit": {"weight_decay": 0.01, "betas": [0.9, 0.999]},
    "Prodigy": {"weight_decay": 0.0, "betas": [0.9, 0.999], "decouple": True,
                "use_bias_correction": False, "safeguard_warmup": False, "d_coef": 1.0},
    "DAdaptAdam": {"weight_decay": 0.0, "betas": [0.9, 0.999], "decouple": False,
                   "use_bias_correction": False},
}
_OPTIMIZER_ALIASES = {"adamw": "AdamW", "adamw8bit": "AdamW8bit", "prodigy": "Prodigy",
                      "dadaptadam": "DAdaptAdam", "dadaptation": "DAdaptAdam"}

# what kohya does when a dataset key is nowhere (library/config_util.py defaults)
_DATASET_DEFAULTS: dict[str, Any] = {
    "enable_bucket": False, "caption_extension": ".caption", "shuffle_caption": False,
    "keep_tokens": 0, "keep_tokens_separator": "", "caption_dropout_rate": 0.0,
    "caption_tag_dropout_rate": 0.0, "token_warmup_min": 1, "token_warmup_step": 0,
    "flip_aug": False, "color_aug": False, "random_crop": False, "batch_size": 1,
    "resolution": 512, "min_bucket_reso": 256, "max_bucket_reso": 1024, "bucket_reso_steps": 64,
    "bucket_no_upscale": False, "num_repeats": 1,
}
# our data.* key -> kohya's subset-level key
_CAPTION_KEYS = {
    "shuffle_caption": "shuffle_caption", "keep_tokens": "keep_tokens",
    "caption_dropout_rate": "caption_dropout_rate",
    "caption_tag_dropout_rate": "caption_tag_dropout_rate",
    "token_warmup_min": "token_warmup_min", "token_warmup_step": "token_warmup_step",
    "flip_aug": "flip_aug", "color_aug": "color_aug", "random_crop": "random_crop",
}
# our buckets.* key -> kohya's dataset-level key
_BUCKET_KEYS = {"min": "min_bucket_reso", "max": "max_bucket_reso", "step": "bucket_reso_steps",
                "no_upscale": "bucket_no_upscale"}
# kohya's argparse name where it differs from the dataset key
_ARGPARSE_NAMES = {"batch_size": "train_batch_size", "num_repeats": "dataset_repeats"}


# ---- shared helpers (LoRA_Easy export/import uses them too)

def full_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with what `cfg` sets."""
    out = defaults()
    for section, values in cfg.items():
        if isinstance(values, dict) and section in out:
            out[section].update(values)
    return out


def lit(value: Any) -> str:
    """A Python literal, as kohya's literal_eval reads `k=v` arguments: True, 0.01, (0.9, 0.999)."""
    if isinstance(value, list | tuple):
        return "(" + ", ".join(lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, bool | int | float):
        return repr(value)
    return repr(str(value))


def parse_value(text: str) -> Any:
    """The value side of a `k=v` argument: a Python literal, else the text itself."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_kv_list(items: Any, what: str) -> dict[str, Any]:
    """["k=v", ...] -> {k: literal v}."""
    if items is None:
        return {}
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise LorabakeError(f"{what} must be a list of \"key=value\" strings")
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise LorabakeError(f"{what}: '{item}' is not key=value")
        out[key.strip()] = parse_value(value)
    return out


def network_spec(s: TrainingSettings) -> tuple[str, dict[str, Any]]:
    """(network_module, its network arguments) for our network type; values are native."""
    n = s.network
    if n.type == "lora":
        return "networks.lora", block_network_args(n)
    if n.type == "locon":
        return "networks.lora", {"conv_dim": n.conv_dim, "conv_alpha": n.conv_alpha,
                                 **block_network_args(n)}
    if n.type in LYCORIS:
        return "lycoris.kohya", {"algo": n.type, "conv_dim": n.conv_dim,
                                 "conv_alpha": n.conv_alpha}
    if n.type == "dylora":
        return "networks.dylora", {"unit": n.dylora_unit}
    raise LorabakeError(f"network.type '{n.type}' cannot be exported")


def network_from(module: str | None, args: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Our [network] type/conv/unit keys from a network module and its arguments."""
    module = (module or "networks.lora").strip()
    out: dict[str, Any] = {}
    if module == "networks.lora":
        out["type"] = "locon" if "conv_dim" in args else "lora"
    elif module == "networks.dylora":
        out["type"] = "dylora"
        out["dylora_unit"] = int(float(args.get("unit", 4)))
    elif module == "lycoris.kohya":
        algo = str(args.get("algo", "lora")).lower()
        if algo in LYCORIS:
            out["type"] = algo
        elif algo in ("lora", "locon"):
            out["type"] = "locon"
            notes.append("LyCORIS LoCon imported as LoCon (kohya's networks.lora with conv)")
        else:
            raise LorabakeError(f"LyCORIS algo '{algo}' has no equivalent here",
                                "supported: locon, loha, lokr, ia3")
    else:
        raise LorabakeError(f"network_module '{module}' has no equivalent here",
                            "supported: networks.lora, networks.dylora, lycoris.kohya")
    if out["type"] in ("locon", *LYCORIS):
        if "conv_dim" in args:
            out["conv_dim"] = int(float(args["conv_dim"]))
        if "conv_alpha" in args:
            out["conv_alpha"] = float(args["conv_alpha"])
    if out["type"] in ("lora", "locon"):
        out.update(from_network_args(args))
    known = {"conv_dim", "conv_alpha", "algo", "unit", "dropout"}
    if out["type"] in ("lora", "locon"):
        known |= set(BLOCK_KEYS)
    extra = sorted(set(args) - known)
    if extra:
        notes.append(f"network arguments not carried: {', '.join(extra)}")
    return out


def optimizer_values(s: TrainingSettings) -> dict[str, Any]:
    """The optimizer arguments our config sets for its optimizer, natively typed."""
    o = s.optimizer
    return {key: tuple(o.betas) if key == "betas" else getattr(o, key)
            for key in OPTIMIZER_ARGS[o.type]}


def optimizer_from(kind: Any, args: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Our [optimizer] type and argument keys from an optimizer name and its arguments."""
    name = _OPTIMIZER_ALIASES.get(str(kind or "AdamW").strip().lower())
    if name is None:
        raise LorabakeError(f"optimizer_type '{kind}' has no equivalent here",
                            f"supported: {', '.join(OPTIMIZER_ARGS)}")
    out: dict[str, Any] = {"type": name}
    takes = OPTIMIZER_ARGS[name]
    for key in takes:
        v = args.get(key, OPTIMIZER_DEFAULTS[name][key])
        if key == "betas":
            if not isinstance(v, list | tuple) or len(v) != 2:
                raise LorabakeError(f"optimizer argument betas must be two numbers, not {v!r}")
            v = [float(x) for x in v]
        out[key] = v
    extra = sorted(set(args) - set(takes))
    if extra:
        notes.append(f"optimizer arguments not carried: {', '.join(extra)}")
    return out


def coerce(cfg: dict[str, Any]) -> dict[str, Any]:
    """Numbers to the schema's types (TOML and literal_eval give 16 for 16.0 and back)."""
    for st in SETTINGS:
        sec = cfg[st.section]
        v = sec.get(st.key)
        if isinstance(v, bool) or v is None:
            continue
        if st.type == "float" and isinstance(v, int):
            sec[st.key] = float(v)
        elif st.type == "int" and isinstance(v, float) and v.is_integer():
            sec[st.key] = int(v)
    return cfg


def prompts_text(prompts: list[str], steps: int) -> str:
    """kohya's prompts file: a prompt a line, its options after ` --` (`--s` = steps)."""
    return "".join(f"{p.strip()} --s {int(steps)}\n" for p in prompts if p.strip())


_STEPS_OPT = re.compile(r"^s\s+(\d+)\s*$")


def parse_prompts(text: str) -> tuple[list[str], int | None]:
    """(prompts, sampling steps) from a prompts file; `--s N` is taken out of each line, the
    other options (--n, --w, --h, --d, --l) stay with the prompt."""
    prompts: list[str] = []
    steps: int | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(" --")
        keep = [parts[0].strip()]
        for opt in parts[1:]:
            m = _STEPS_OPT.match(opt.strip())
            if m:
                steps = int(m.group(1))
            else:
                keep.append(opt.strip())
        prompts.append(" --".join(keep))
    return prompts, steps


def read_prompts(path: Any, base_dir: Path | None, notes: list[str]
                 ) -> tuple[list[str], int | None]:
    if not path:
        return [], None
    p = Path(str(path)).expanduser()
    if not p.is_absolute() and base_dir is not None and not p.exists():
        p = base_dir / p
    if p.suffix.lower() != ".txt":
        notes.append(f"sample prompts {path}: only a .txt prompts file is read; set "
                     "sampling.prompts by hand")
        return [], None
    try:
        return parse_prompts(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        notes.append(f"sample prompts {path} could not be read: set sampling.prompts by hand")
        return [], None


# ---- export

def _caption_ext(ext: str, notes: list[str]) -> str:
    if ext and not ext.startswith("."):
        notes.append(f"caption extension '{ext}' written as '.{ext}' (kohya appends it as is)")
        return "." + ext
    return ext


def _scheduler(o: Optimizer, total_steps: int | None, notes: list[str]) -> dict[str, Any]:
    sched, cycles, ratio = o.scheduler, o.scheduler_cycles, o.warmup_ratio
    warmup = 0
    if ratio > 0:
        if total_steps:
            warmup = round(total_steps * ratio)
        else:
            notes.append(f"warmup_ratio {ratio:g} needs the run's total steps: lr_warmup_steps "
                         "= 0 written (give --total-steps, or set it by hand)")
    out: dict[str, Any] = {}
    if sched == "cosine_annealing_warm_restarts":
        if total_steps and not warmup:
            out["lr_scheduler_type"] = TORCH_WARM_RESTARTS
            out["lr_scheduler_args"] = [f"T_0={max(1, math.ceil(total_steps / cycles))}"]
        else:
            why = "warmup (kohya refuses warmup steps for a custom scheduler class)" if warmup \
                else "no total step count for T_0"
            notes.append(f"cosine_annealing_warm_restarts written as kohya's "
                         f"cosine_with_restarts ({cycles} cycles, the same curve): {why}")
            out["lr_scheduler"] = "cosine_with_restarts"
    elif sched == "constant" and warmup:
        notes.append("constant with warmup written as constant_with_warmup (kohya refuses "
                     "warmup steps for constant)")
        out["lr_scheduler"] = "constant_with_warmup"
    else:
        out["lr_scheduler"] = sched
    out["lr_scheduler_num_cycles"] = cycles
    out["lr_warmup_steps"] = int(warmup)
    return out


@dataclass(frozen=True, slots=True)
class SubsetDir:
    """One trained folder as an export writes it (from the training plan)."""

    image_dir: Path
    repeats: int
    is_reg: bool
    class_token: str


def require_training_folders(subsets: list[SubsetDir], tool: str) -> None:
    if not any(not sub.is_reg for sub in subsets):
        raise LorabakeError(f"no training folders: {tool} would find no images",
                            "`lorabake config check` says why (subsets, repeat prefixes)")


def to_kohya(s: TrainingSettings, subsets: list[SubsetDir], *, total_steps: int | None = None,
             prompts_file: str | Path = PROMPTS_NAME, dataset_file: str | Path | None = None,
             notes: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config TOML, dataset TOML) for `train_network.py --config_file --dataset_config`.
    `subsets`: the trained folders (the plan's); `total_steps`: the run's optimizer steps
    (for warmup, warm restarts and max_steps); `prompts_file`: where the sample prompts will
    be (write_kohya writes it); `dataset_file`: where the dataset TOML will be, recorded as
    dataset_config; `notes` collects what could not be carried exactly."""
    notes = [] if notes is None else notes
    g, d, n, o = s.general, s.data, s.network, s.optimizer
    z, b, sv, sm, lg = s.noise, s.buckets, s.saving, s.sampling, s.logging
    require_training_folders(subsets, "kohya")

    if not g.base_model:
        notes.append("general.base_model is empty: set pretrained_model_name_or_path")
    output_dir = sv.output_dir or Path("output")
    if not output_dir.is_absolute():
        notes.append(f"output_dir '{output_dir}' is relative: kohya resolves it from the "
                     "folder you launch it in")
    model = {"pretrained_model_name_or_path": g.base_model, "clip_skip": g.clip_skip}
    if dataset_file is not None:
        model["dataset_config"] = str(dataset_file)
    training: dict[str, Any] = {
        "seed": g.seed, "mixed_precision": g.mixed_precision,
        "train_batch_size": g.batch_size, "max_train_epochs": g.epochs,
    }
    if o.gradient_accumulation_steps > 1:
        training["gradient_accumulation_steps"] = o.gradient_accumulation_steps
    if g.max_token_length != 75:  # kohya: None is 75; 75 itself is not a choice
        training["max_token_length"] = g.max_token_length
    if g.max_steps and (total_steps is None or g.max_steps <= total_steps):
        # kohya lets max_train_epochs override max_train_steps: write the one that ends first
        # (the run's steps are already cut at max_steps when that ends first, hence <=)
        del training["max_train_epochs"]
        training["max_train_steps"] = g.max_steps
    if d.prior_loss_weight != 1.0:
        training["prior_loss_weight"] = d.prior_loss_weight
    training["gradient_checkpointing"] = g.gradient_checkpointing
    training["xformers" if g.attention == "xformers" else "sdpa"] = True
    training["cache_latents"] = g.cache_latents in ("memory", "disk")
    training["cache_latents_to_disk"] = g.cache_latents == "disk"
    if o.min_snr_gamma > 0:
        training["min_snr_gamma"] = o.min_snr_gamma
    if z.offset > 0:
        training["noise_offset"] = z.offset
    if z.multires_iterations > 0:
        training["multires_noise_iterations"] = z.multires_iterations
    training["multires_noise_discount"] = z.multires_discount

    module, net_args = network_spec(s)
    network: dict[str, Any] = {"network_module": module, "network_dim": n.dim,
                               "network_alpha": n.alpha}
    if n.dropout > 0:
        network["network_dropout"] = n.dropout
    if net_args:  # raw strings: kohya hands them to the module unparsed
        network["network_args"] = [f"{k}={v}" for k, v in net_args.items()]
    if g.train == "unet":
        network["network_train_unet_only"] = True
    elif g.train == "text_encoder":
        network["network_train_text_encoder_only"] = True
    for key in ("unet_lr", "text_encoder_lr"):
        if getattr(g, key) > 0:  # ours: 0 = use the optimizer's; kohya: left out
            network[key] = getattr(g, key)

    optimizer: dict[str, Any] = {
        "optimizer_type": o.type, "learning_rate": o.learning_rate,
        "optimizer_args": [f"{k}={lit(v)}" for k, v in optimizer_values(s).items()],
        "max_grad_norm": o.max_grad_norm,
    }
    if o.scale_weight_norms > 0:
        optimizer["scale_weight_norms"] = o.scale_weight_norms
    optimizer.update(_scheduler(o, total_steps, notes))

    saving: dict[str, Any] = {"output_dir": str(output_dir)}
    if sv.output_name:
        saving["output_name"] = sv.output_name
    saving.update({"save_model_as": "safetensors", "save_precision": sv.precision,
                   "save_every_n_epochs": sv.every_n_epochs})
    if sv.keep_last > 0:
        saving["save_last_n_epochs"] = sv.keep_last
    saving["save_state"] = sv.save_state
    if sv.resume is not None:
        saving["resume"] = str(sv.resume)
    if sv.comment:
        saving["training_comment"] = sv.comment
    if not sv.tag_occurrence:
        notes.append("tag_occurrence = false has no kohya switch: kohya always stores tag "
                     "frequencies")

    sampling: dict[str, Any] = {}
    if sm.every_n_epochs > 0:
        sampling["sample_every_n_epochs"] = sm.every_n_epochs
        if not sm.prompts:
            notes.append("sampling is on but there are no prompts: kohya samples nothing")
    if any(p.strip() for p in sm.prompts):
        sampling["sample_prompts"] = str(prompts_file)
    logging: dict[str, Any] = {}
    if lg.tensorboard:
        logging = {"logging_dir": str(output_dir / "logs"), "log_with": "tensorboard"}

    config = {name: sec for name, sec in (
        ("model", model), ("training", training), ("network", network),
        ("optimizer", optimizer), ("saving", saving), ("sampling", sampling),
        ("logging", logging)) if sec}

    general: dict[str, Any] = {
        "enable_bucket": b.enable,
        "caption_extension": _caption_ext(d.caption_extension, notes),
    }
    for ours, theirs in _CAPTION_KEYS.items():
        general[theirs] = getattr(d, ours)
    if d.keep_tokens_separator:
        general["keep_tokens_separator"] = d.keep_tokens_separator
    dataset_subsets = []
    for sub in subsets:
        entry: dict[str, Any] = {"image_dir": str(sub.image_dir), "num_repeats": sub.repeats,
                                 "is_reg": sub.is_reg}
        if sub.class_token:
            entry["class_tokens"] = sub.class_token
        dataset_subsets.append(entry)
    dataset_entry: dict[str, Any] = {"resolution": b.resolution, "batch_size": g.batch_size}
    dataset_entry.update({theirs: getattr(b, ours) for ours, theirs in _BUCKET_KEYS.items()})
    dataset_entry["subsets"] = dataset_subsets
    return config, {"general": general, "datasets": [dataset_entry]}


def refuse_existing(paths: list[Path], force: bool) -> None:
    if force:
        return
    for p in paths:
        if p.exists():
            raise LorabakeError(f"{p} exists", "choose another place, or overwrite with --force")


def _header(title: str, notes: list[str]) -> str:
    lines = [f"# {title} (written by lorabake)"] + [f"# note: {n}" for n in notes]
    return "\n".join(lines) + "\n\n"


def write_kohya(s: TrainingSettings, subsets: list[SubsetDir], outdir: Path | str, *,
                total_steps: int | None = None, force: bool = False,
                notes: list[str] | None = None) -> tuple[Path, Path]:
    """OUTDIR/config.toml and OUTDIR/dataset.toml (and OUTDIR/prompts.txt with sample prompts),
    each written atomically; existing files are refused unless `force`."""
    notes = [] if notes is None else notes
    outdir = Path(outdir).expanduser().absolute()
    cfg_path, ds_path, prompts_path = (outdir / CONFIG_NAME, outdir / DATASET_NAME,
                                       outdir / PROMPTS_NAME)
    config, dataset = to_kohya(s, subsets, total_steps=total_steps, prompts_file=prompts_path,
                               dataset_file=ds_path, notes=notes)
    prompts = "sample_prompts" in config.get("sampling", {})
    refuse_existing([cfg_path, ds_path] + ([prompts_path] if prompts else []), force)
    if outdir.exists() and not outdir.is_dir():
        raise LorabakeError(f"{outdir} is not a folder")
    outdir.mkdir(parents=True, exist_ok=True)
    if prompts:
        atomic_write_text(prompts_path, prompts_text(list(s.sampling.prompts),
                                                     s.sampling.steps))
    atomic_write_text(ds_path, _header("kohya sd-scripts --dataset_config", [])
                      + tomli_w.dumps(dataset))
    atomic_write_text(cfg_path, _header("kohya sd-scripts --config_file", notes)
                      + tomli_w.dumps(config))
    return cfg_path, ds_path


# ---- import

def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """As kohya reads --config_file: tables flattened one level, their names ignored."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _resolution(value: Any, notes: list[str]) -> int:
    if isinstance(value, str):
        value = [int(x) for x in value.split(",")] if "," in value else int(value)
    if isinstance(value, list | tuple):
        w, h = (int(x) for x in value)
        if w == h:
            return w
        side = math.isqrt(w * h)
        notes.append(f"resolution {w}x{h} imported as {side} (the same area): only square "
                     "resolutions are supported here")
        return side
    return int(value)


def _scheduler_from(flat: dict[str, Any], total_steps: int | None,
                    notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cycles = flat.get("lr_scheduler_num_cycles")
    custom = flat.get("lr_scheduler_type")
    if custom:
        tail = str(custom).rsplit(".", 1)[-1]
        if tail not in ("CosineAnnealingWarmRestarts", "CosineAnnealingWarmupRestarts"):
            raise LorabakeError(f"lr_scheduler_type '{custom}' has no equivalent here",
                                "use a built-in lr_scheduler")
        out["scheduler"] = "cosine_annealing_warm_restarts"
        args = flat.get("lr_scheduler_args")
        largs = parse_kv_list(args, "lr_scheduler_args") if isinstance(args, list | str) \
            else dict(args or {})
        t0 = largs.get("T_0") or largs.get("first_cycle_steps")
        if not cycles and t0 and total_steps:
            cycles = max(1, round(total_steps / float(t0)))
        if float(largs.get("gamma", 1.0)) != 1.0:
            notes.append(f"restart decay gamma={largs['gamma']} not carried: each cycle "
                         "restarts at the full learning rate here")
    else:
        sched = str(flat.get("lr_scheduler") or "constant")
        if sched not in SCHEDULERS:
            raise LorabakeError(f"lr_scheduler '{sched}' has no equivalent here",
                                f"supported: {', '.join(SCHEDULERS)}")
        out["scheduler"] = sched
    out["scheduler_cycles"] = max(1, int(cycles or 1))
    warm = flat.get("lr_warmup_steps") or 0
    if isinstance(warm, float) and warm < 1:  # current sd-scripts: a float is a ratio
        out["warmup_ratio"] = float(warm)
    elif warm:
        if total_steps:
            out["warmup_ratio"] = round(int(warm) / total_steps, 4)
        else:
            notes.append(f"lr_warmup_steps = {warm} needs the run's total steps to become a "
                         "warmup ratio: set optimizer.warmup_ratio by hand (or give "
                         "--total-steps)")
            out["warmup_ratio"] = 0.0
    else:
        out["warmup_ratio"] = 0.0
    return out


def from_kohya(config: dict[str, Any], dataset: dict[str, Any] | None = None, *,
               total_steps: int | None = None, base_dir: Path | None = None,
               notes: list[str] | None = None) -> dict[str, Any]:
    """Our config from a kohya --config_file (and --dataset_config) as parsed TOML. What a
    file leaves out means what kohya does then (its defaults, not ours). `total_steps` turns
    warmup steps back into a ratio; `base_dir` finds a relative prompts file."""
    notes = [] if notes is None else notes
    flat = flatten(config)
    out = defaults()
    g, d, n, o = out["general"], out["data"], out["network"], out["optimizer"]
    z, b, s, sm, lg = (out[k] for k in SECTIONS[4:])

    dataset = dataset or {}
    general = dataset.get("general") or {}
    datasets = dataset.get("datasets") or []
    if not isinstance(general, dict) or not isinstance(datasets, list):
        raise LorabakeError("dataset config: [general] must be a table and [[datasets]] a "
                            "list of tables")
    first = datasets[0] if datasets else {}
    if len(datasets) > 1:
        notes.append(f"{len(datasets)} [[datasets]]: their subsets are merged, the settings "
                     "taken from the first")
    all_subsets = [(sub, ds) for ds in datasets for sub in (ds.get("subsets") or [])]
    train_subs = [sub for sub, _ in all_subsets if not sub.get("is_reg")]
    lead = train_subs[0] if train_subs else {}

    def look(key: str, *levels: dict[str, Any]) -> Any:
        for level in (*levels, general, flat):
            name = _ARGPARSE_NAMES.get(key, key) if level is flat else key
            if level.get(name) is not None:
                return level[name]
        return _DATASET_DEFAULTS[key]

    # general
    g["base_model"] = str(flat.get("pretrained_model_name_or_path") or "")
    g["clip_skip"] = int(flat.get("clip_skip") or 1)
    if flat.get("seed") is not None:
        g["seed"] = int(flat["seed"])
    else:
        notes.append(f"no seed: kohya picks a random one; seed {g['seed']} set")
    g["mixed_precision"] = str(flat.get("mixed_precision") or "no")
    g["batch_size"] = int(look("batch_size", first))
    g["max_token_length"] = int(flat.get("max_token_length") or 75)
    if flat.get("max_train_epochs"):
        g["epochs"] = int(flat["max_train_epochs"])
    elif flat.get("max_train_steps"):
        # the steps decide: epochs high enough never to end the run first
        g["max_steps"] = int(flat["max_train_steps"])
        g["epochs"] = 1000
    if flat.get("prior_loss_weight") is not None:
        d["prior_loss_weight"] = float(flat["prior_loss_weight"])
    g["gradient_checkpointing"] = bool(flat.get("gradient_checkpointing", False))
    g["attention"] = "xformers" if flat.get("xformers") else "sdpa"
    g["cache_latents"] = "disk" if flat.get("cache_latents_to_disk") else \
        "memory" if flat.get("cache_latents") else "none"
    g["train"] = "unet" if flat.get("network_train_unet_only") else \
        "text_encoder" if flat.get("network_train_text_encoder_only") else "both"
    for key in ("unet_lr", "text_encoder_lr"):
        v = flat.get(key)
        if isinstance(v, list):  # newer sd-scripts: one per text encoder
            v = v[0] if v else None
        g[key] = float(v or 0.0)

    # data
    if train_subs:
        d["caption_extension"] = str(look("caption_extension", lead, first))
        for ours, theirs in _CAPTION_KEYS.items():
            d[ours] = look(theirs, lead, first)
        d["keep_tokens_separator"] = str(look("keep_tokens_separator", lead, first) or "")
        d.update(_subsets_from(all_subsets, look, notes))
    else:
        d["caption_extension"] = str(look("caption_extension"))
        for ours, theirs in _CAPTION_KEYS.items():
            d[ours] = look(theirs)
        d["keep_tokens_separator"] = str(look("keep_tokens_separator") or "")
        d["train_dir"] = str(flat.get("train_data_dir") or "")
        d["reg_dir"] = str(flat.get("reg_data_dir") or "")
        if d["train_dir"]:
            notes.append("no dataset config: the subsets come from the folders in "
                         "train_data_dir")
        else:
            notes.append("no dataset config and no train_data_dir: no subsets (give the "
                         "dataset TOML)")

    # network
    net_args = parse_kv_list(flat.get("network_args"), "network_args")
    n.update(network_from(flat.get("network_module"), net_args, notes))
    n["dim"] = int(flat.get("network_dim") or 4)
    n["alpha"] = float(flat.get("network_alpha") or 1.0)
    n["dropout"] = float(flat.get("network_dropout") or net_args.get("dropout") or 0.0)

    # optimizer
    kind = flat.get("optimizer_type") or ("AdamW8bit" if flat.get("use_8bit_adam") else "AdamW")
    o.update(optimizer_from(kind, parse_kv_list(flat.get("optimizer_args"), "optimizer_args"),
                            notes))
    o["learning_rate"] = float(flat.get("learning_rate", 2e-6))
    o["max_grad_norm"] = float(flat.get("max_grad_norm", 1.0))
    o["gradient_accumulation_steps"] = int(flat.get("gradient_accumulation_steps") or 1)
    o.update(_scheduler_from(flat, total_steps, notes))
    o["min_snr_gamma"] = float(flat.get("min_snr_gamma") or 0.0)
    o["scale_weight_norms"] = float(flat.get("scale_weight_norms") or 0.0)

    # noise, buckets
    z["offset"] = float(flat.get("noise_offset") or 0.0)
    z["multires_iterations"] = int(flat.get("multires_noise_iterations") or 0)
    z["multires_discount"] = float(flat.get("multires_noise_discount", 0.3))
    b["enable"] = bool(look("enable_bucket", first))
    b["resolution"] = _resolution(look("resolution", first), notes)
    for ours, theirs in _BUCKET_KEYS.items():
        b[ours] = look(theirs, first)

    # saving, sampling, logging
    s["output_dir"] = str(flat.get("output_dir") or s["output_dir"])
    s["output_name"] = str(flat.get("output_name") or "last")  # kohya's own default name
    s["precision"] = str(flat.get("save_precision") or "float")
    s["every_n_epochs"] = int(flat.get("save_every_n_epochs") or g["epochs"])
    s["keep_last"] = int(flat.get("save_last_n_epochs") or 0)
    s["save_state"] = bool(flat.get("save_state", False))
    s["resume"] = str(flat.get("resume") or "")
    s["comment"] = str(flat.get("training_comment") or "")
    s["tag_occurrence"] = True  # kohya always stores them
    sm["every_n_epochs"] = int(flat.get("sample_every_n_epochs") or 0)
    if flat.get("sample_every_n_steps"):
        notes.append("sample_every_n_steps has no equivalent: set sampling.every_n_epochs")
    prompts, steps = read_prompts(flat.get("sample_prompts"), base_dir, notes)
    sm["prompts"] = prompts
    if steps:
        sm["steps"] = steps
    lg["tensorboard"] = str(flat.get("log_with") or "").lower() in ("tensorboard", "all") or \
        bool(flat.get("logging_dir") and not flat.get("log_with"))
    return coerce(out)


def _subsets_from(all_subsets: list[tuple[dict[str, Any], dict[str, Any]]], look,
                  notes: list[str]) -> dict[str, Any]:
    roots: dict[bool, set[Path]] = {False: set(), True: set()}
    subsets = []
    for sub, ds in all_subsets:
        if not sub.get("image_dir"):
            raise LorabakeError("a [[datasets.subsets]] has no image_dir",
                                "kohya requires it for every subset")
        path = Path(str(sub["image_dir"])).expanduser()
        is_reg = bool(sub.get("is_reg", False))
        roots[is_reg].add(path.parent)
        token = sub.get("class_tokens")
        parsed = parse_folder_name(path.name)
        if token is not None and str(token) != parsed.name:
            notes.append(f"{path.name}: class_tokens '{token}' not carried (the folder name "
                         "gives the class token here)")
        repeats = int(look("num_repeats", sub, ds))
        subset: dict[str, Any] = {"concept": parsed.name, "is_reg": is_reg}
        if repeats != parsed.repeats:  # kohya's number wins over the folder's prefix
            subset["repeats"] = repeats
        subsets.append(subset)
    for is_reg, found in roots.items():
        if len(found) > 1:
            what = "regularization" if is_reg else "training"
            raise LorabakeError(f"the {what} subsets live in {len(found)} different folders "
                                f"({', '.join(sorted(map(str, found)))})",
                                "a lorabake config has one training root and one "
                                "regularization root: move the concept folders together")
    return {"train_dir": str(next(iter(roots[False]))) if roots[False] else "",
            "reg_dir": str(next(iter(roots[True]))) if roots[True] else "",
            "subsets": subsets}
