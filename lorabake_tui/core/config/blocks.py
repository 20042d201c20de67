"""kohya's block-wise settings for SD 1.5 (networks/lora.py): learning-rate weights per UNet
block and ranks/alphas per block, as the config writes them, checked, and as kohya reads them.

The UNet has 25 blocks in kohya's numbering: 12 down (IN00-IN11), the middle (M00) and 12 up
(OUT00-OUT11). `down_lr_weight`/`up_lr_weight` are 12 comma-separated numbers or a preset
name (cosine, sine, linear, reverse_linear, zeros) with an optional "+number" added to every
weight; `mid_lr_weight` is one number. A weight at or below `block_lr_zero_threshold` becomes
0, and a block with weight 0 gets no adapter at all (kohya leaves its modules out).
`block_dims`/`block_alphas` (and `conv_block_dims`/`conv_block_alphas` for the 3x3
convolutions of LoCon) are 25 values each. Block mode is on when any lr weight or block_dims
is set; then unset block lists take the network's dim/alpha (conv_dim/conv_alpha), as kohya does.

Which module belongs to which block is the trainer's business (trainer/blocks.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SIDE = 12  # down or up blocks
NUM_BLOCKS = 2 * SIDE + 1  # 25: down, mid, up
MID = SIDE  # kohya's index of the middle block
PRESETS = ("cosine", "sine", "linear", "reverse_linear", "zeros")
LR_KEYS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight")
LIST_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas")
# every block-wise network argument, as kohya names them
BLOCK_KEYS = (*LR_KEYS, "block_lr_zero_threshold", *LIST_KEYS)


class BlockWeightError(ValueError):
    """A weight text that is neither 12 numbers nor a preset (the message says which)."""


def preset_weights(name: str, offset: float = 0.0) -> list[float]:
    """kohya's named curves over the 12 blocks of one side, `offset` added to each."""
    last = SIDE - 1
    if name == "cosine":
        return [math.sin(math.pi * (i / last) / 2) + offset for i in reversed(range(SIDE))]
    if name == "sine":
        return [math.sin(math.pi * (i / last) / 2) + offset for i in range(SIDE)]
    if name == "linear":
        return [i / last + offset for i in range(SIDE)]
    if name == "reverse_linear":
        return [i / last + offset for i in reversed(range(SIDE))]
    if name == "zeros":
        return [offset] * SIDE
    raise BlockWeightError(f"unknown preset {name!r} (one of {', '.join(PRESETS)})")


def parse_side(text: str) -> list[float] | None:
    """12 weights from a down/up weight text; None when empty (not set). Raises
    BlockWeightError with what is wrong."""
    text = text.strip()
    if not text:
        return None
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            raise BlockWeightError(f"{bad!r} is not a number") from None
        if any(not math.isfinite(v) for v in values):
            raise BlockWeightError("the weights must be finite numbers")
        if len(values) != SIDE:
            raise BlockWeightError(f"it must hold {SIDE} numbers (found {len(values)})")
        return values
    name, plus, offset = text.partition("+")
    base = 0.0
    if plus:
        try:
            base = float(offset)
        except ValueError:
            raise BlockWeightError(f"the offset {offset.strip()!r} after + is not a number") \
                from None
        if not math.isfinite(base):
            raise BlockWeightError("the offset must be a finite number")
    if name.strip() not in PRESETS:
        if _is_float(name):
            raise BlockWeightError(f"it must hold {SIDE} numbers (found 1)")
        raise BlockWeightError(f"unknown preset {name.strip()!r} (one of {', '.join(PRESETS)})")
    return preset_weights(name.strip(), base)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def lr_weights_set(n: Any) -> bool:
    """Any lr weight given (mid counts when it is not 1, the weight it has when unset)."""
    return bool(n.down_lr_weight.strip() or n.up_lr_weight.strip()) or n.mid_lr_weight != 1.0


def block_mode(n: Any) -> bool:
    """kohya builds the network block by block when block_dims or any lr weight is set."""
    return lr_weights_set(n) or bool(n.block_dims)


def lr_weights(n: Any) -> list[float] | None:
    """The 25 learning-rate multipliers after the zero threshold, or None when no weight is
    set (every block trains at the UNet's rate). `n`: the [network] settings, checked."""
    if not lr_weights_set(n):
        return None
    down = parse_side(n.down_lr_weight) or [1.0] * SIDE
    up = parse_side(n.up_lr_weight) or [1.0] * SIDE
    threshold = n.block_lr_zero_threshold
    return [w if w > threshold else 0.0 for w in [*down, n.mid_lr_weight, *up]]


@dataclass(frozen=True, slots=True)
class BlockLayout:
    """Rank and alpha per block (25 each) for linear/1x1 modules, and for 3x3 convolutions
    when the network has them (None: no conv adapters). Rank 0: the block has no adapter."""

    dims: tuple[int, ...]
    alphas: tuple[float, ...]
    conv_dims: tuple[int, ...] | None
    conv_alphas: tuple[float, ...] | None


def block_layout(n: Any, *, conv_dim: int | None, conv_alpha: float | None
                 ) -> BlockLayout | None:
    """Per-block ranks as kohya's create_network makes them, or None outside block mode.
    `conv_dim`/`conv_alpha`: the network's 3x3 rank and alpha (None: no conv adapters)."""
    if not block_mode(n):
        return None
    dims = list(n.block_dims) or [n.dim] * NUM_BLOCKS
    alphas = [float(a) for a in n.block_alphas] or [float(n.alpha)] * NUM_BLOCKS
    conv_dims: list[int] | None = None
    conv_alphas: list[float] | None = None
    if n.conv_block_dims:
        conv_dims = list(n.conv_block_dims)
        conv_alphas = [float(a) for a in n.conv_block_alphas] or \
            [float(conv_alpha if conv_alpha is not None else 1.0)] * NUM_BLOCKS
    elif conv_dim:
        conv_dims = [conv_dim] * NUM_BLOCKS
        conv_alphas = [float(conv_alpha or 0.0)] * NUM_BLOCKS
    weights = lr_weights(n)
    if weights is not None:  # a block that does not learn gets no adapter
        for i, w in enumerate(weights):
            if w == 0:
                dims[i] = 0
                if conv_dims is not None:
                    conv_dims[i] = 0
    return BlockLayout(tuple(dims), tuple(alphas),
                       tuple(conv_dims) if conv_dims is not None else None,
                       tuple(conv_alphas) if conv_alphas is not None else None)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def network_args(n: Any) -> dict[str, str]:
    """The block-wise settings that are set, as kohya's `network_args` values (strings it
    splits on commas itself)."""
    out: dict[str, str] = {}
    for key in ("down_lr_weight", "up_lr_weight"):
        text = getattr(n, key).strip()
        if text:
            out[key] = ",".join(p.strip() for p in text.split(",")) if "," in text \
                else text.replace(" ", "")
    if n.mid_lr_weight != 1.0:
        out["mid_lr_weight"] = _num(n.mid_lr_weight)
    if n.block_lr_zero_threshold:
        out["block_lr_zero_threshold"] = _num(n.block_lr_zero_threshold)
    for key in LIST_KEYS:
        values = getattr(n, key)
        if values:
            out[key] = ",".join(_num(v) for v in values)
    return out


def from_network_args(args: dict[str, Any]) -> dict[str, Any]:
    """Our [network] block keys from kohya network arguments (literal_eval'd values:
    "1,0,1" arrives as a tuple, "sine+0.5" as text, "0.5" as a number)."""
    out: dict[str, Any] = {}

    def items(v: Any) -> list[Any]:
        if isinstance(v, list | tuple):
            return list(v)
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return [v]

    for key in ("down_lr_weight", "up_lr_weight"):
        if key in args:
            v = args[key]
            out[key] = ",".join(_num(float(x)) for x in items(v)) \
                if isinstance(v, list | tuple | int | float) else str(v).strip()
    if "mid_lr_weight" in args:
        out["mid_lr_weight"] = float(items(args["mid_lr_weight"])[0])
    if "block_lr_zero_threshold" in args:
        out["block_lr_zero_threshold"] = float(args["block_lr_zero_threshold"])
    for key in LIST_KEYS:
        if key in args:
            cast = int if "dims" in key else float
            out[key] = [cast(float(x)) for x in items(args[key])]
    return out
