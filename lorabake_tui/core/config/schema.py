"""The training configuration: one typed definition of every setting, with its default, its
allowed values and a line of help. Files, the form, validation and exports all read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NETWORKS = ("lora", "locon", "loha", "lokr", "ia3", "dylora")
TRAINABLE_NETWORKS = ("lora", "locon")  # what our own trainer builds; the rest export to kohya
BUILTIN_PREFIX = "builtin:"
# tiny-sd15: a tiny random SD1.5-shaped model (demo, tests); sd15-random: the full SD1.5
# architecture with random weights (benchmarks)
BUILTIN_MODELS = ("builtin:tiny-sd15", "builtin:sd15-random")
OPTIMIZERS = ("AdamW", "AdamW8bit", "Prodigy", "DAdaptAdam")
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
              "polynomial", "cosine_annealing_warm_restarts")
PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("fp16", "bf16", "float")


@dataclass(frozen=True, slots=True)
class Setting:
    section: str
    key: str
    type: str  # str | int | float | bool | path | list
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    supported: bool = True  # False: in the schema, but the trainer cannot do it yet

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _s(section, key, type_, default, help_, **kw) -> Setting:
    return Setting(section, key, type_, default, help_, **kw)


SETTINGS: tuple[Setting, ...] = (
    # general
    _s("general", "base_model", "path", "", "The SD 1.5 checkpoint to train on (.safetensors, "
       "a diffusers folder, or builtin:tiny-sd15 for a quick demo)."),
    _s("general", "clip_skip", "int", 2, "Text-encoder layer to stop at: 2 for anime models, "
       "1 for photo models.", min=1, max=12),
    _s("general", "seed", "int", 42, "Random seed: the same seed repeats a run.", min=0),
    _s("general", "mixed_precision", "str", "bf16", "Compute precision; bf16 avoids the NaN "
       "losses fp16 can give.", choices=PRECISIONS),
    _s("general", "batch_size", "int", 2, "Images per step (per bucket).", min=1, max=64),
    _s("general", "max_token_length", "int", 225, "Caption tokens read: 75, 150 or 225.",
       choices=(75, 150, 225)),
    _s("general", "epochs", "int", 8, "Passes over the dataset (the guide: 8).", min=1,
       max=1000),
    _s("general", "max_steps", "int", 0, "Stop after this many steps (0: the epochs decide).",
       min=0),
    _s("general", "gradient_checkpointing", "bool", False, "Trade speed for memory."),
    _s("general", "attention", "str", "sdpa", "Attention kernel.", choices=("sdpa", "xformers")),
    _s("general", "cache_latents", "str", "disk", "Encode images once: in memory, on disk, or "
       "not at all.", choices=("none", "memory", "disk")),
    _s("general", "train", "str", "both", "Train the UNet, the text encoder, or both.",
       choices=("unet", "text_encoder", "both")),
    _s("general", "unet_lr", "float", 1e-4, "UNet learning rate (0: use the optimizer's).",
       min=0),
    _s("general", "text_encoder_lr", "float", 5e-5, "Text-encoder learning rate (0: use the "
       "optimizer's).", min=0),
    # data
    _s("data", "train_dir", "path", "", "Training root holding the N_name concept folders."),
    _s("data", "reg_dir", "path", "", "Regularization root (optional)."),
    _s("data", "prior_loss_weight", "float", 1.0, "Loss weight of regularization images.",
       min=0, max=10),
    _s("data", "caption_extension", "str", ".txt", "Caption file extension (kohya's own "
       "default is .caption)."),
    _s("data", "shuffle_caption", "bool", True, "Shuffle tags after the kept ones each step."),
    _s("data", "keep_tokens", "int", 1, "Tags at the front never shuffled (the trigger).",
       min=0, max=32),
    _s("data", "keep_tokens_separator", "str", "", "Text before this marker is kept fixed "
       "(wins over keep_tokens), e.g. |||."),
    _s("data", "caption_dropout_rate", "float", 0.0, "Chance of training an image with an empty "
       "caption.", min=0, max=1),
    _s("data", "caption_tag_dropout_rate", "float", 0.0, "Chance of dropping each shuffled tag.",
       min=0, max=1),
    _s("data", "token_warmup_min", "int", 1, "Tags shown at the start of token warmup.", min=1),
    _s("data", "token_warmup_step", "int", 0, "Steps over which all tags come in (0: off).",
       min=0),
    _s("data", "flip_aug", "bool", False, "Mirror images at random (not for asymmetric "
       "characters)."),
    _s("data", "color_aug", "bool", False, "Jitter hue at random (needs latents not cached)."),
    _s("data", "random_crop", "bool", False, "Crop at random instead of the centre (needs "
       "latents not cached)."),
    # network
    _s("network", "type", "str", "lora", "LoRA, LoCon (also convolutions), LoHa, LoKr, IA3 or "
       "DyLoRA.", choices=NETWORKS),
    _s("network", "dim", "int", 32, "Rank: capacity of the network (the guide: 32).", min=1,
       max=256),
    _s("network", "alpha", "float", 16, "Scale: the update is multiplied by alpha / dim.",
       min=0),
    _s("network", "conv_dim", "int", 0, "Rank of the convolution layers (LoCon/LoHa/LoKr).",
       min=0, max=256),
    _s("network", "conv_alpha", "float", 0, "Alpha of the convolution layers.", min=0),
    _s("network", "dropout", "float", 0.0, "Dropout on the network's outputs.", min=0, max=1),
    _s("network", "dylora_unit", "int", 4, "DyLoRA: ranks trained together.", min=1),
    # optimizer
    _s("optimizer", "type", "str", "AdamW", "The optimizer.", choices=OPTIMIZERS),
    _s("optimizer", "learning_rate", "float", 1e-4, "Learning rate (Prodigy and DAdaptAdam: "
       "1).", min=0),
    _s("optimizer", "weight_decay", "float", 0.01, "Weight decay.", min=0, max=1),
    _s("optimizer", "betas", "list", [0.9, 0.999], "Adam betas (two numbers)."),
    _s("optimizer", "max_grad_norm", "float", 1.0, "Clip gradients to this norm (0: off).",
       min=0),
    _s("optimizer", "d_coef", "float", 2.0, "Prodigy: step-size multiplier.", min=0),
    _s("optimizer", "decouple", "bool", True, "Prodigy/DAdapt: AdamW-style weight decay."),
    _s("optimizer", "use_bias_correction", "bool", True, "Prodigy: bias correction."),
    _s("optimizer", "safeguard_warmup", "bool", True, "Prodigy: safe estimate during warmup."),
    _s("optimizer", "scheduler", "str", "cosine_with_restarts", "How the learning rate changes "
       "over the run.", choices=SCHEDULERS),
    _s("optimizer", "scheduler_cycles", "int", 1, "Restarts for cosine with restarts.", min=1),
    _s("optimizer", "warmup_ratio", "float", 0.0, "Share of the steps spent warming up.",
       min=0, max=0.5),
    _s("optimizer", "min_snr_gamma", "float", 0, "Min-SNR weighting gamma (5 is common; 0: "
       "off).", min=0, max=20),
    _s("optimizer", "scale_weight_norms", "float", 0, "Max norm of each layer's update (1 is "
       "common; 0: off). Never with Prodigy.", min=0),
    # noise
    _s("noise", "offset", "float", 0.0, "Noise offset: darker darks, brighter lights.", min=0,
       max=1),
    _s("noise", "multires_iterations", "int", 0, "Pyramid noise levels (6-10; 0: off).", min=0,
       max=16),
    _s("noise", "multires_discount", "float", 0.3, "Pyramid noise discount per level.", min=0,
       max=1),
    # buckets
    _s("buckets", "enable", "bool", True, "Aspect-ratio buckets (kohya's default is off)."),
    _s("buckets", "resolution", "int", 512, "Training resolution.", min=64, max=2048),
    _s("buckets", "min", "int", 256, "Smallest bucket side.", min=64),
    _s("buckets", "max", "int", 1024, "Largest bucket side.", min=64),
    _s("buckets", "step", "int", 64, "Bucket side step (a multiple of 64 for SD 1.5).",
       min=8),
    _s("buckets", "no_upscale", "bool", False, "Never enlarge images to fill a bucket."),
    # saving
    _s("saving", "output_dir", "path", "output", "Where LoRA files are written."),
    _s("saving", "output_name", "str", "", "File name of the LoRA (no extension)."),
    _s("saving", "precision", "str", "fp16", "Precision of the saved weights.",
       choices=SAVE_PRECISIONS),
    _s("saving", "every_n_epochs", "int", 1, "Save a LoRA every N epochs.", min=1),
    _s("saving", "keep_last", "int", 0, "Keep only the last N epoch files (0: all).", min=0),
    _s("saving", "save_state", "bool", False, "Save optimizer state to resume later."),
    _s("saving", "state_every_n_steps", "int", 0, "Also save state every N steps (0: only with "
       "the epoch saves and on stop).", min=0),
    _s("saving", "resume", "path", "", "A saved state to resume from."),
    _s("saving", "comment", "str", "", "Trigger words and notes, stored in the file."),
    _s("saving", "tag_occurrence", "bool", True, "Store tag frequencies in the file."),
    # sampling
    _s("sampling", "every_n_epochs", "int", 0, "Sample images every N epochs (0: off; it "
       "slows training).", min=0),
    _s("sampling", "prompts", "list", [], "Prompts to sample."),
    _s("sampling", "steps", "int", 28, "Sampling steps.", min=1, max=150),
    # logging
    _s("logging", "tensorboard", "bool", False, "Also write TensorBoard logs (JSONL always)."),
)

SECTIONS = ("general", "data", "network", "optimizer", "noise", "buckets", "saving",
            "sampling", "logging")
BY_NAME = {s.name: s for s in SETTINGS}
# [[data.subsets]] entries: per concept folder
SUBSET_KEYS = {"folder": "str", "repeats": "int", "is_reg": "bool"}


def defaults() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for st in SETTINGS:
        out[st.section][st.key] = list(st.default) if isinstance(st.default, list) \
            else st.default
    out["data"]["subsets"] = []
    return out
