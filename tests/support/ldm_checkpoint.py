"""Test helper: write diffusers SD1.5 components as an original-LDM single-file checkpoint.

The key layout is the one A1111/civitai files use (model.diffusion_model.*,
first_stage_model.*, cond_stage_model.transformer.*), so the single-file loader can be tested
without downloading a real model.
"""

from __future__ import annotations

from pathlib import Path

import torch

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_head(key: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    return key


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    cfg = unet.config
    per = cfg.layers_per_block + 1  # LDM counts the down/up-sampler as one more block
    out = {}
    for key, value in unet.state_dict().items():
        parts = key.split(".")
        head = parts[0]
        if head == "time_embedding":
            new = {"linear_1": "time_embed.0", "linear_2": "time_embed.2"}[parts[1]]
            new = ".".join([new, *parts[2:]])
        elif head == "conv_in":
            new = "input_blocks.0.0." + ".".join(parts[1:])
        elif head == "conv_norm_out":
            new = "out.0." + ".".join(parts[1:])
        elif head == "conv_out":
            new = "out.2." + ".".join(parts[1:])
        elif head == "down_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                new = f"input_blocks.{i * per + j + 1}.0.{_rename_head(rest, _RESNET)}"
            elif kind == "attentions":
                new = f"input_blocks.{i * per + j + 1}.1.{rest}"
            else:  # downsamplers.0.conv
                new = f"input_blocks.{(i + 1) * per}.0.op.{rest.removeprefix('conv.')}"
        elif head == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if kind == "resnets":
                new = f"middle_block.{2 * j}.{_rename_head(rest, _RESNET)}"
            else:
                new = f"middle_block.1.{rest}"
        elif head == "up_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                new = f"output_blocks.{i * per + j}.0.{_rename_head(rest, _RESNET)}"
            elif kind == "attentions":
                new = f"output_blocks.{i * per + j}.1.{rest}"
            else:  # upsamplers.0.conv: after the attention when the block has one
                slot = 2 if hasattr(unet.up_blocks[i], "attentions") else 1
                new = f"output_blocks.{i * per + per - 1}.{slot}.{rest}"
        else:
            raise KeyError(key)
        out["model.diffusion_model." + new] = value
    return out


def _vae_part(parts: list[str], n_blocks: int) -> str:
    side, kind = parts[0], parts[1]
    rest = parts[2:]
    if kind == "conv_norm_out":
        return ".".join([side, "norm_out", *rest])
    if kind in ("down_blocks", "up_blocks"):
        i, sub = int(rest[0]), rest[1]
        name = "down" if kind == "down_blocks" else "up"
        idx = i if kind == "down_blocks" else n_blocks - 1 - i  # LDM's decoder counts upward
        if sub == "resnets":
            tail = ".".join(rest[3:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.{name}.{idx}.block.{rest[2]}.{tail}"
        sampler = "downsample" if sub == "downsamplers" else "upsample"
        return f"{side}.{name}.{idx}.{sampler}.{'.'.join(rest[3:])}"
    if kind == "mid_block":
        sub, j = rest[0], int(rest[1])
        tail = ".".join(rest[2:])
        if sub == "resnets":
            return f"{side}.mid.block_{j + 1}.{tail}"
        return f"{side}.mid.attn_1.{_rename_head(tail, _VAE_ATTN)}"
    return ".".join(parts)


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    n_blocks = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        parts = key.split(".")
        new = key if parts[0] in ("quant_conv", "post_quant_conv") else _vae_part(parts, n_blocks)
        # the original mid-block attention uses 1x1 convs where diffusers has linears
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def text_encoder_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = value
    # real SD1.5 files carry this buffer (transformers no longer saves it)
    n = text_encoder.config.max_position_embeddings
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(n)[None]
    return out


def ldm_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    sd = {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_encoder_to_ldm(text_encoder)}
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


def write_ldm_safetensors(path: Path, unet, vae, text_encoder) -> Path:
    from safetensors.torch import save_file

    save_file(ldm_state_dict(unet, vae, text_encoder), str(path))
    return path
