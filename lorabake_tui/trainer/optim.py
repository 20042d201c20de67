"""Optimizers and learning-rate schedules named in the config."""

from __future__ import annotations

import math

import torch

from ..core.base.errors import LorabakeError


def param_groups(unet_params, te_params, *, lr: float, unet_lr: float, te_lr: float,
                 unet_blocks: list[int] | None = None,
                 block_weights: list[float] | None = None):
    """One group per trained model, each with its own rate (0 means the optimizer's). With
    `block_weights` (kohya's 25 block LR weights) the UNet gets one group per block at its
    rate times the block's weight; `unet_blocks` gives each UNet parameter's block."""
    groups = []
    if unet_params and block_weights is not None and unet_blocks is not None:
        by_block: dict[int, list] = {}
        for p, b in zip(unet_params, unet_blocks, strict=True):
            by_block.setdefault(b, []).append(p)
        for b, params in sorted(by_block.items()):
            weight = block_weights[b] if b >= 0 else 1.0
            if weight == 0:  # kohya: a block with weight 0 does not train
                for p in params:
                    p.requires_grad_(False)
                continue
            groups.append({"params": params, "lr": (unet_lr or lr) * weight,
                           "name": f"unet_block{b}"})
    elif unet_params:
        groups.append({"params": unet_params, "lr": unet_lr or lr, "name": "unet"})
    if te_params:
        groups.append({"params": te_params, "lr": te_lr or lr, "name": "text_encoder"})
    return groups


def build_optimizer(kind: str, groups, *, lr: float, weight_decay: float, betas,
                    d_coef: float, decouple: bool, use_bias_correction: bool,
                    safeguard_warmup: bool, device: torch.device):
    betas = tuple(float(b) for b in betas)
    if kind == "AdamW":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay,
                                 fused=_fused_supported(device))
    if kind == "AdamW8bit":
        if device.type != "cuda":
            raise LorabakeError("AdamW8bit needs an NVIDIA GPU (bitsandbytes)",
                                "use optimizer.type = \"AdamW\"")
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise LorabakeError("AdamW8bit needs the bitsandbytes package",
                                "pip install bitsandbytes, or use AdamW") from None
        return bnb.optim.AdamW8bit(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    if kind == "Prodigy":
        try:
            from prodigyopt import Prodigy
        except ImportError:
            raise LorabakeError("Prodigy needs the prodigyopt package",
                                "pip install prodigyopt") from None
        return Prodigy(groups, lr=lr, betas=betas, weight_decay=weight_decay,
                       decouple=decouple, use_bias_correction=use_bias_correction,
                       safeguard_warmup=safeguard_warmup, d_coef=d_coef)
    if kind == "DAdaptAdam":
        try:
            from dadaptation import DAdaptAdam
        except ImportError:
            raise LorabakeError("DAdaptAdam needs the dadaptation package",
                                "pip install dadaptation") from None
        return DAdaptAdam(groups, lr=lr, betas=betas, weight_decay=weight_decay,
                          decouple=decouple)
    raise LorabakeError(f"unknown optimizer {kind}")


def _fused_supported(device: torch.device) -> bool | None:
    """torch's one-kernel AdamW where it has one for the device (CUDA, and the CPU since
    torch 2.4): one launch for all parameters instead of a dozen per parameter. None leaves
    torch's default (foreach on CUDA, a loop elsewhere)."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:  # a torch without the helper: its default
        return None
    return True if device.type in _get_fused_kernels_supported_devices() else None


def build_scheduler(kind: str, optimizer, *, total_steps: int, warmup_steps: int,
                    cycles: int):
    """`total_steps` counts scheduler steps (optimizer steps; under DDP accelerate steps the
    prepared scheduler once per process, so the caller multiplies by the process count)."""
    if kind == "cosine_annealing_warm_restarts":
        t0 = max(1, math.ceil(total_steps / max(1, cycles)))
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t0)
    from diffusers.optimization import get_scheduler

    if kind == "constant" and warmup_steps:
        kind = "constant_with_warmup"
    return get_scheduler(kind, optimizer, num_warmup_steps=warmup_steps,
                         num_training_steps=total_steps, num_cycles=cycles)


def current_lrs(optimizer) -> list[float]:
    """The effective rate per group: for Prodigy/DAdapt that is d * lr."""
    out = []
    for g in optimizer.param_groups:
        d = g.get("d")
        out.append(float(g["lr"]) * float(d) if d is not None else float(g["lr"]))
    return out
