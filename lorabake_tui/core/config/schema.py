"""The training configuration, written once: one frozen dataclass per TOML section whose
fields carry each setting's default, kind, allowed values and a line of help.

Everything else is derived from these classes: the flat table `SETTINGS` that the form, the
validator, the diff and the exports walk, `defaults()` (the file's shape), and the typed
`TrainingSettings` that `validate.read_settings` builds once a file has been checked. The
trainer, the exports, the check and the UI summary read attributes of that object
(`s.general.batch_size`), never strings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETWORKS = ("lora", "locon", "loha", "lokr", "ia3", "dylora")
# what our own trainer builds; the rest export to kohya
TRAINABLE_NETWORKS = ("lora", "locon", "loha", "lokr", "ia3", "dylora")
BUILTIN_PREFIX = "builtin:"
# tiny-sd15: a tiny random SD1.5-shaped model (demo, tests); sd15-random: the full SD1.5
# architecture with random weights (benchmarks)
BUILTIN_MODELS = ("builtin:tiny-sd15", "builtin:sd15-random")
OPTIMIZERS = ("AdamW", "AdamW8bit", "Prodigy", "DAdaptAdam")
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
              "polynomial", "cosine_annealing_warm_restarts")
PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("fp16", "bf16", "float")
KINDS = ("str", "path", "int", "float", "bool", "list")
MAX_STEPS = 100_000_000  # an upper bound for step counts: far beyond any real run
MAX_SEED = 2**32 - 1


def _setting(default: Any, help_: str, *, kind: str | None = None, choices: tuple = (),
             min: float | None = None, max: float | None = None, item: str | None = None,
             length: int | None = None, required: bool = False, supported: bool = True,
             path_as_text: bool = False, optional: bool = False,
             export_only: bool = False):
    """A dataclass field with the setting's schema in its metadata. `default` is the value
    as the file writes it; the field's own default is its typed form (a path setting: a
    Path, or None when empty, unless `path_as_text`). `optional`: a new config file leaves
    it out while it has its default (kohya's rarer arguments; the form still lists it).
    `export_only`: kept for the kohya export, lorabake's own trainer ignores it (`config
    check` says so when it is set)."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
    meta = {"help": help_, "kind": kind, "choices": choices, "min": min, "max": max,
            "item": item, "length": length, "required": required, "supported": supported,
            "file_default": default, "optional": optional, "export_only": export_only}
    typed = default
    if kind == "path" and not path_as_text:
        typed = Path(default) if default else None
    return field(default=typed, metadata=meta)  # tuples are immutable: safe to share


@dataclass(frozen=True, slots=True)
class General:
    base_model: str = _setting(
        "", "The SD 1.5 checkpoint to train on (.safetensors, a diffusers folder, or "
        "builtin:tiny-sd15 for a quick demo).", kind="path", required=True,
        path_as_text=True)
    clip_skip: int = _setting(2, "Text-encoder layer to stop at: 2 for anime models, 1 for "
                              "photo models.", min=1, max=12)
    seed: int = _setting(42, "Random seed: the same seed repeats a run.", min=0, max=MAX_SEED)
    mixed_precision: str = _setting("bf16", "Compute precision; bf16 avoids the NaN losses "
                                    "fp16 can give.", choices=PRECISIONS)
    batch_size: int = _setting(2, "Images per step (per bucket).", min=1, max=64)
    max_token_length: int = _setting(225, "Caption tokens read: 75, 150 or 225.",
                                     choices=(75, 150, 225))
    epochs: int = _setting(8, "Passes over the dataset (the guide: 8).", min=1, max=1000)
    max_steps: int = _setting(0, "Stop after this many steps (0: the epochs decide).", min=0,
                              max=MAX_STEPS)
    gradient_checkpointing: bool = _setting(False, "Trade speed for memory.")
    attention: str = _setting("sdpa", "Attention kernel.", choices=("sdpa", "xformers"))
    cache_latents: str = _setting("disk", "Encode images once: in memory, on disk, or not at "
                                  "all.", choices=("none", "memory", "disk"))
    train: str = _setting("both", "Train the UNet, the text encoder, or both.",
                          choices=("unet", "text_encoder", "both"))
    unet_lr: float = _setting(1e-4, "UNet learning rate (0: use the optimizer's).", min=0,
                              max=10)
    text_encoder_lr: float = _setting(5e-5, "Text-encoder learning rate (0: use the "
                                      "optimizer's).", min=0, max=10)


@dataclass(frozen=True, slots=True)
class Subset:
    """One [[data.subsets]] table: a concept chosen for training, found by its name (the
    folder name after the `N_` prefix), so renaming `10_mira` to `12_mira` (balance, undo)
    never breaks the config. `repeats` overrides the folder's prefix when set."""

    concept: str
    is_reg: bool = False
    repeats: int | None = None
    index: int = 0  # its place in the file: findings name it data.subsets[index]

    @property
    def key(self) -> str:
        return f"data.subsets[{self.index}]"


# the keys a [[data.subsets]] table may hold; `folder` is the older form (a whole folder
# name such as "10_mira"), read as the concept it names
SUBSET_KEYS = {"concept": "str", "folder": "str", "is_reg": "bool", "repeats": "int"}
MAX_REPEATS = 10_000


@dataclass(frozen=True, slots=True)
class Data:
    train_dir: Path | None = _setting(
        "", "Training root holding the N_name concept folders.", kind="path", required=True)
    reg_dir: Path | None = _setting("", "Regularization root (optional).", kind="path")
    prior_loss_weight: float = _setting(1.0, "Loss weight of regularization images.", min=0,
                                        max=10)
    caption_extension: str = _setting(".txt", "Caption file extension (kohya's own default "
                                      "is .caption).", required=True)
    shuffle_caption: bool = _setting(True, "Shuffle tags after the kept ones each step.")
    keep_tokens: int = _setting(1, "Tags at the front never shuffled (the trigger).", min=0,
                                max=32)
    keep_tokens_separator: str = _setting("", "Text before this marker is kept fixed (wins "
                                          "over keep_tokens), e.g. |||.")
    caption_dropout_rate: float = _setting(0.0, "Chance of training an image with an empty "
                                           "caption.", min=0, max=1)
    caption_tag_dropout_rate: float = _setting(0.0, "Chance of dropping each shuffled tag.",
                                               min=0, max=1)
    token_warmup_min: int = _setting(1, "Tags shown at the start of token warmup.", min=1,
                                     max=1000)
    token_warmup_step: int = _setting(0, "Steps over which all tags come in (0: off).",
                                      min=0, max=MAX_STEPS)
    flip_aug: bool = _setting(False, "Mirror images at random (not for asymmetric "
                              "characters).")
    color_aug: bool = _setting(False, "Jitter hue at random (needs latents not cached).")
    random_crop: bool = _setting(False, "Crop at random instead of the centre (needs latents "
                                 "not cached).")
    # not a setting of the table: [[data.subsets]] has its own checks (SUBSET_KEYS)
    subsets: tuple[Subset, ...] = field(default=(), metadata={"subsets": True})


@dataclass(frozen=True, slots=True)
class Network:
    type: str = _setting("lora", "LoRA, LoCon (also convolutions), LoHa, LoKr, IA3 or DyLoRA.",
                         choices=NETWORKS)
    dim: int = _setting(32, "Rank: capacity of the network (the guide: 32).", min=1, max=256)
    alpha: float = _setting(16.0, "Scale: the update is multiplied by alpha / dim.", min=0,
                            max=1024)
    conv_dim: int = _setting(0, "Rank of the convolution layers (LoCon/LoHa/LoKr).", min=0,
                             max=256)
    conv_alpha: float = _setting(0.0, "Alpha of the convolution layers.", min=0, max=1024)
    dropout: float = _setting(0.0, "Dropout on the network's outputs.", min=0, max=1)
    dylora_unit: int = _setting(4, "DyLoRA: ranks trained together.", min=1, max=256)
    # kohya's block-wise arguments (core/config/blocks.py): LoRA and LoCon only
    down_lr_weight: str = _setting(
        "", "Block LR weights of the 12 down blocks IN00-IN11: 12 numbers (\"0,0,1,...\") or "
        "cosine, sine, linear, reverse_linear, zeros, with +N added (\"sine+0.5\"); empty: "
        "all 1.", optional=True)
    mid_lr_weight: float = _setting(1.0, "Block LR weight of the middle block M00.", min=0,
                                    max=100, optional=True)
    up_lr_weight: str = _setting(
        "", "Block LR weights of the 12 up blocks OUT00-OUT11, as down_lr_weight.",
        optional=True)
    block_lr_zero_threshold: float = _setting(
        0.0, "A block LR weight at or below this becomes 0: the block gets no adapter.",
        min=0, max=100, optional=True)
    block_dims: tuple[int, ...] = _setting(
        (), "Rank per UNet block: 25 numbers IN00-IN11, M00, OUT00-OUT11 (0: no adapter; "
        "empty: network.dim).", kind="list", item="int", min=0, max=256, optional=True)
    block_alphas: tuple[float, ...] = _setting(
        (), "Alpha per UNet block: 25 numbers (empty: network.alpha).", kind="list",
        item="float", min=0, max=1024, optional=True)
    conv_block_dims: tuple[int, ...] = _setting(
        (), "LoCon: rank of the 3x3 convolutions per UNet block, 25 numbers (empty: "
        "conv_dim).", kind="list", item="int", min=0, max=256, optional=True)
    conv_block_alphas: tuple[float, ...] = _setting(
        (), "LoCon: alpha of the 3x3 convolutions per UNet block, 25 numbers (empty: "
        "conv_alpha).", kind="list", item="float", min=0, max=1024, optional=True)


@dataclass(frozen=True, slots=True)
class Optimizer:
    type: str = _setting("AdamW", "The optimizer.", choices=OPTIMIZERS)
    learning_rate: float = _setting(1e-4, "Learning rate (Prodigy and DAdaptAdam: 1).", min=0,
                                    max=10)
    weight_decay: float = _setting(0.01, "Weight decay.", min=0, max=1)
    betas: tuple[float, float] = _setting((0.9, 0.999), "Adam betas (two numbers from 0 to "
                                          "below 1).", kind="list", item="float", length=2,
                                          min=0, max=0.99999)
    max_grad_norm: float = _setting(1.0, "Clip gradients to this norm (0: off).", min=0,
                                    max=1000)
    gradient_accumulation_steps: int = _setting(
        1, "Batches added up before each optimizer step: general.batch_size x this is the "
        "effective batch; steps and the LR schedule count optimizer steps.", min=1, max=1024,
        optional=True)
    d_coef: float = _setting(2.0, "Prodigy: step-size multiplier.", min=0, max=100)
    decouple: bool = _setting(True, "Prodigy/DAdapt: AdamW-style weight decay.")
    use_bias_correction: bool = _setting(True, "Prodigy: bias correction.")
    safeguard_warmup: bool = _setting(True, "Prodigy: safe estimate during warmup.")
    scheduler: str = _setting("cosine_with_restarts", "How the learning rate changes over the "
                              "run.", choices=SCHEDULERS)
    scheduler_cycles: int = _setting(1, "Restarts for cosine with restarts.", min=1, max=1000)
    warmup_ratio: float = _setting(0.0, "Share of the steps spent warming up.", min=0,
                                   max=0.5)
    min_snr_gamma: float = _setting(0.0, "Min-SNR weighting gamma (5 is common; 0: off).",
                                    min=0, max=20)
    scale_weight_norms: float = _setting(0.0, "Max norm of each layer's update (1 is common; "
                                         "0: off). Never with Prodigy.", min=0, max=100)


@dataclass(frozen=True, slots=True)
class Noise:
    offset: float = _setting(0.0, "Noise offset: darker darks, brighter lights.", min=0, max=1)
    multires_iterations: int = _setting(0, "Pyramid noise levels (6-10; 0: off).", min=0,
                                        max=16)
    multires_discount: float = _setting(0.3, "Pyramid noise discount per level.", min=0,
                                        max=1)


@dataclass(frozen=True, slots=True)
class Buckets:
    enable: bool = _setting(True, "Aspect-ratio buckets (kohya's default is off).")
    resolution: int = _setting(512, "Training resolution.", min=64, max=2048)
    min: int = _setting(256, "Smallest bucket side.", min=64, max=4096)
    max: int = _setting(1024, "Largest bucket side.", min=64, max=4096)
    step: int = _setting(64, "Bucket side step (a multiple of 64 for SD 1.5).", min=8,
                         max=1024)
    no_upscale: bool = _setting(False, "Never enlarge images to fill a bucket.")


@dataclass(frozen=True, slots=True)
class Saving:
    output_dir: Path | None = _setting("output", "Where LoRA files are written.", kind="path")
    output_name: str = _setting("", "File name of the LoRA (no extension).", required=True)
    precision: str = _setting("fp16", "Precision of the saved weights.",
                              choices=SAVE_PRECISIONS)
    every_n_epochs: int = _setting(1, "Save a LoRA every N epochs.", min=1, max=1000)
    keep_last: int = _setting(0, "Keep only the last N epoch files (0: all).", min=0, max=1000)
    save_state: bool = _setting(False, "Save optimizer state to resume later.")
    state_every_n_steps: int = _setting(0, "Also save state every N steps (0: only with the "
                                        "epoch saves and on stop).", min=0, max=MAX_STEPS)
    resume: Path | None = _setting("", "A saved state to resume from.", kind="path")
    comment: str = _setting("", "Trigger words and notes, stored in the file.")
    tag_occurrence: bool = _setting(True, "Store tag frequencies in the file.")


@dataclass(frozen=True, slots=True)
class Sampling:
    every_n_epochs: int = _setting(0, "Sample images every N epochs (0: off; it slows "
                                   "training).", min=0, max=1000)
    prompts: tuple[str, ...] = _setting((), "Prompts to sample.", kind="list", item="str")
    steps: int = _setting(28, "Sampling steps.", min=1, max=150)


@dataclass(frozen=True, slots=True)
class Logging:
    tensorboard: bool = _setting(False, "Also write TensorBoard logs (JSONL always).")


SECTION_CLASSES: dict[str, type] = {
    "general": General, "data": Data, "network": Network, "optimizer": Optimizer,
    "noise": Noise, "buckets": Buckets, "saving": Saving, "sampling": Sampling,
    "logging": Logging,
}
SECTIONS = tuple(SECTION_CLASSES)


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    """A whole checked config. Path settings are absolute (read against the config file's
    folder) or None when empty; `base_model` is a builtin name or an absolute path."""

    general: General = field(default_factory=General)
    data: Data = field(default_factory=Data)
    network: Network = field(default_factory=Network)
    optimizer: Optimizer = field(default_factory=Optimizer)
    noise: Noise = field(default_factory=Noise)
    buckets: Buckets = field(default_factory=Buckets)
    saving: Saving = field(default_factory=Saving)
    sampling: Sampling = field(default_factory=Sampling)
    logging: Logging = field(default_factory=Logging)
    source: str = "config"  # the file (or text) it was read from, for messages
    base_dir: Path | None = None  # relative paths in the file were read against this
    # settings whose value in the file was wrong: the default stands in (see the findings)
    invalid: frozenset[str] = frozenset()

    def replace(self, section: str, **values: Any) -> TrainingSettings:
        """A copy with some settings of one section changed (what-if overrides)."""
        sec = dataclasses.replace(getattr(self, section), **values)
        return dataclasses.replace(self, **{section: sec})


# ---- the flat table, derived -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    section: str
    key: str
    type: str  # one of KINDS
    default: Any  # as written in the file (lists for list settings, "" for empty paths)
    help: str
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    item: str | None = None  # list settings: the kind of each element
    length: int | None = None  # list settings with a fixed length
    required: bool = False  # an empty value is an error
    supported: bool = True  # False: in the schema, but the trainer cannot do it yet
    optional: bool = False  # new config files leave it out while it has its default
    export_only: bool = False  # True: for the kohya export; lorabake's trainer ignores it

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _table() -> tuple[Setting, ...]:
    out = []
    for section, cls in SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            m = f.metadata
            if "kind" not in m:
                continue
            default = m["file_default"]
            default = list(default) if isinstance(default, tuple) else default
            out.append(Setting(section, f.name, m["kind"], default, m["help"], m["choices"],
                               m["min"], m["max"], m["item"], m["length"], m["required"],
                               m["supported"], m["optional"], m["export_only"]))
    return tuple(out)


SETTINGS: tuple[Setting, ...] = _table()
BY_NAME = {s.name: s for s in SETTINGS}


def defaults() -> dict[str, dict[str, Any]]:
    """Every setting at its default, in the file's shape (sections -> keys)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for st in SETTINGS:
        out[st.section][st.key] = list(st.default) if isinstance(st.default, list) \
            else st.default
    out["data"]["subsets"] = []
    return out
