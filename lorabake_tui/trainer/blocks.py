"""Which SD 1.5 UNet module belongs to which of kohya's 25 blocks, and what that means for the
adapters: per-block ranks and alphas as peft patterns, and per-block learning rates.

kohya numbers the blocks from the module's place in the diffusers UNet (networks/lora.py,
get_block_index): in `down_blocks.i`, resnet or attention j is block 1 + 3i + j and the
downsampler is 1 + 3i + 2 (block 0, IN00, is conv_in: no adapter); the middle block is 12;
in `up_blocks.i`, resnet or attention j (and the upsampler, with j = 2) is 13 + 3i + j.
The settings themselves (lr weight presets, block lists, block mode) are read in
core/config/blocks.py.
"""

from __future__ import annotations

import re

from ..core.config.blocks import MID, NUM_BLOCKS, BlockLayout, block_layout

_UPDOWN = re.compile(r"(?:^|\.)(up|down)_blocks\.(\d+)\.(resnets|attentions|upsamplers|"
                     r"downsamplers)\.(\d+)\.")
_MID = re.compile(r"(?:^|\.)mid_block\.")
_CONV3X3 = r"(?:.*\.)?(?:conv1|conv2|conv)"  # resnet convs and the samplers' conv
# blocks without a transformer: plain LoRA has nothing there (only LoCon's resnets/samplers)
NO_ATTENTION = frozenset({3, 6, 9, 10, 11, 13, 14, 15})


def block_index(module: str) -> int:
    """kohya's block (0-24) of a UNet module or parameter name; -1 outside the blocks."""
    m = _UPDOWN.search(module)
    if m:
        side, i, kind, j = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        idx = 3 * i + (2 if kind.endswith("samplers") else j)
        return 1 + idx if side == "down" else MID + 1 + idx
    return MID if _MID.search(module) else -1


def block_scope(b: int) -> str | None:
    """A regex for the module paths of block `b` (None: IN00, which holds no adapter)."""
    if b == MID:
        return r"mid_block"
    if 1 <= b < MID:
        i, j = divmod(b - 1, 3)
        return rf"down_blocks\.{i}\.downsamplers\.0" if j == 2 else \
            rf"down_blocks\.{i}\.(?:resnets|attentions)\.{j}"
    if MID < b < NUM_BLOCKS:
        i, j = divmod(b - MID - 1, 3)
        return rf"up_blocks\.{i}\.(?:(?:resnets|attentions)\.2|upsamplers\.0)" if j == 2 \
            else rf"up_blocks\.{i}\.(?:resnets|attentions)\.{j}"
    return None


def peft_patterns(layout: BlockLayout) -> tuple[dict[str, int], dict[str, float], str | None]:
    """(rank_pattern, alpha_pattern, exclude_modules) for peft's LoraConfig: per block, the
    3x3 convolutions first (peft takes the first key that matches), then everything else;
    modules of a rank-0 block are excluded (kohya creates none)."""
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    exclude: list[str] = []
    conv = layout.conv_dims is not None and layout.conv_alphas is not None
    for b in range(NUM_BLOCKS):  # the convolutions' keys
        scope = block_scope(b)
        if scope is None or not conv:
            continue
        key = rf"{scope}\.{_CONV3X3}"
        if layout.conv_dims[b]:
            ranks[key], alphas[key] = layout.conv_dims[b], layout.conv_alphas[b]
        else:
            exclude.append(key)
    for b in range(NUM_BLOCKS):  # then the linear and 1x1 modules
        scope = block_scope(b)
        if scope is None or (not conv and b in NO_ATTENTION):  # a key matching nothing
            continue  # makes peft warn
        key = rf"{scope}\..*"
        if layout.dims[b]:
            ranks[key], alphas[key] = layout.dims[b], layout.alphas[b]
        else:  # everything of the block but its convolutions when those train
            exclude.append(rf"{scope}\.(?!{_CONV3X3}$).*" if conv and layout.conv_dims[b]
                           else key)
    pattern = "|".join(f"(?:.*\\.)?(?:{e})" for e in exclude) if exclude else None
    return ranks, alphas, pattern


def layout_for(n) -> BlockLayout | None:
    """The per-block ranks of the [network] settings as this trainer builds them (LoCon's
    convolutions: conv_dim/conv_alpha, or dim/alpha when those are 0), None outside block
    mode."""
    locon = n.type == "locon"
    return block_layout(n, conv_dim=(n.conv_dim or n.dim) if locon else None,
                        conv_alpha=(n.conv_alpha or n.alpha) if locon else None)
