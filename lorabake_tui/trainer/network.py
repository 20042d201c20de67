"""The trained network: peft adapters on kohya's module set, and their export.

LoRA covers the 192 UNet modules kohya trains in SD 1.5 (attention projections, feed-forward
and the transformer blocks' proj_in/proj_out) and the 72 text-encoder modules; LoCon adds the
resnet convolutions, shortcut and time embedding, and the down/up samplers (278 UNet modules),
the 3x3 convolutions with their own conv_dim/conv_alpha. LoHa, LoKr and IA3 (their layers,
coverage and saved form): lycoris.py; DyLoRA: dylora.py. Scale weight norms applies to LoRA
and LoCon only (`norm_pairs` yields nothing for the others; `config check` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import dylora, lycoris
from .kohya_format import AdapterScale, to_kohya

ADAPTER = "default"
UNET_ATTN = (r".*attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\."
             r"(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)))")
UNET_CONV = (r".*(resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)"
             r"|(down|up)samplers\.0\.conv)")
CONV3X3 = r".*(conv1|conv2|samplers\.0\.conv)"
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
# parameter names of the trained tensors, whatever the network type
ADAPTER_PARAMS = ("lora_", "hada_", "lokr_", "ia3_weight")


def is_adapter_param(name: str) -> bool:
    return any(marker in name for marker in ADAPTER_PARAMS)


@dataclass(slots=True)
class Network:
    kind: str  # lora | locon | loha | lokr | ia3 | dylora
    # peft config (IA3: lycoris.IA3Spec, DyLoRA: dylora.DyLoRASpec); None: UNet not trained
    unet_config: object | None
    te_config: object | None
    lycoris_args: dict | None = None

    @property
    def module(self) -> str:
        """ss_network_module: kohya's own for LoRA/LoCon, LyCORIS's for the rest."""
        if self.kind == "dylora":
            return "networks.dylora"
        return "lycoris.kohya" if self.kind in lycoris.KINDS else "networks.lora"

    def args(self) -> dict:
        """ss_network_args, as kohya (networks.lora) or LyCORIS (lycoris.kohya) writes them."""
        if self.lycoris_args is not None:
            return dict(self.lycoris_args)
        if self.kind == "locon" and self.unet_config is not None:
            cfg = self.unet_config
            conv, alpha = cfg.rank_pattern[CONV3X3], cfg.alpha_pattern[CONV3X3]
            return {"conv_dim": str(conv), "conv_alpha": str(alpha)}
        return {}


def lora_configs(kind: str, dim: int, alpha: float, conv_dim: int, conv_alpha: float,
                 dropout: float, *, unet: bool, text_encoder: bool, dylora_unit: int = 4,
                 blocks=None):
    """`blocks`: kohya's per-block ranks for LoRA/LoCon (a BlockLayout), or None."""
    from peft import LoraConfig

    from .blocks import peft_patterns

    if kind == "dylora":
        return Network(kind, dylora.DyLoRASpec(dylora.UNET, dim, alpha, dylora_unit)
                       if unet else None,
                       dylora.DyLoRASpec(dylora.TE, dim, alpha, dylora_unit)
                       if text_encoder else None, {"unit": str(dylora_unit)})
    if kind in lycoris.KINDS:
        # LyCORIS's modules have no dropout of this kind (it warns and ignores it too)
        u, t, args = lycoris.configs(kind, dim, alpha, conv_dim, conv_alpha, unet=unet,
                                     text_encoder=text_encoder)
        return Network(kind, u, t, args)
    ranks, alphas, exclude = peft_patterns(blocks) if blocks is not None else ({}, {}, None)
    if kind not in ("lora", "locon"):
        raise ValueError(f"network {kind} is not built by this trainer")
    unet_cfg = te_cfg = None
    if unet:
        if kind == "locon":
            cdim = conv_dim or dim
            calpha = conv_alpha or alpha
            unet_cfg = LoraConfig(r=dim, lora_alpha=alpha, lora_dropout=dropout,
                                  target_modules=f"({UNET_ATTN}|{UNET_CONV})",
                                  rank_pattern={**ranks, CONV3X3: cdim},
                                  alpha_pattern={**alphas, CONV3X3: calpha},
                                  exclude_modules=exclude, init_lora_weights=True)
        else:
            unet_cfg = LoraConfig(r=dim, lora_alpha=alpha, lora_dropout=dropout,
                                  target_modules=UNET_ATTN, rank_pattern=ranks,
                                  alpha_pattern=alphas, exclude_modules=exclude,
                                  init_lora_weights=True)
    if text_encoder:
        te_cfg = LoraConfig(r=dim, lora_alpha=alpha, lora_dropout=dropout,
                            target_modules=TE_TARGETS, init_lora_weights=True)
    return Network(kind, unet_cfg, te_cfg)


def attach(network: Network, unet, text_encoder) -> None:
    """Inject the adapters in place (the frozen weights stay as they are)."""
    from peft import inject_adapter_in_model

    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    for config, model in ((network.unet_config, unet), (network.te_config, text_encoder)):
        if isinstance(config, lycoris.IA3Spec):
            lycoris.attach_ia3(config, model)
        elif isinstance(config, dylora.DyLoRASpec):
            dylora.attach(config, model)
        elif config is not None:
            inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    for model in (unet, text_encoder):
        for name, p in model.named_parameters():
            if is_adapter_param(name):
                p.requires_grad_(True)
                p.data = p.data.float()  # trained in fp32 even when the base is fp16/bf16


def trainable(model) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if is_adapter_param(n)]


def lora_modules(model):
    """(name, module) for each LoRA module carrying our adapter (LyCORIS layers are not)."""
    for name, m in model.named_modules():
        if hasattr(m, "lora_A") and ADAPTER in getattr(m, "lora_A", {}):
            yield name, m


def norm_pairs(*models):
    """(up, down, scale) per adapted module, for scale weight norms."""
    for model in models:
        if model is None:
            continue
        for _, m in lora_modules(model):
            yield m.lora_B[ADAPTER].weight, m.lora_A[ADAPTER].weight, m.scaling[ADAPTER]


def adapter_state(model) -> dict[str, torch.Tensor]:
    """The trained tensors (resume state): peft's state dict, or ours for IA3."""
    from peft import get_peft_model_state_dict

    if any(True for _ in lycoris.ia3_layers(model)):
        return lycoris.ia3_state(model)
    if any(True for _ in dylora.layers(model)):
        return dylora.state(model)
    return get_peft_model_state_dict(model, adapter_name=ADAPTER)


def load_adapter_state(model, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    if any(True for _ in lycoris.ia3_layers(model)):
        lycoris.load_ia3_state(model, state)
        return
    if any(True for _ in dylora.layers(model)):
        dylora.load_state(model, state)
        return
    result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"saved adapter does not fit the model: {unexpected[:3]}")


def kohya_state(network: Network, unet, text_encoder, dtype) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if network.kind == "dylora":
        for config, model, te in ((network.unet_config, unet, False),
                                  (network.te_config, text_encoder, True)):
            if config is not None:
                out.update(dylora.to_kohya(model, text_encoder=te, dtype=dtype))
        return out
    if network.kind in lycoris.KINDS:
        if network.unet_config is not None:
            out.update(lycoris.to_lycoris(unet, text_encoder=False, dtype=dtype))
        if network.te_config is not None:
            out.update(lycoris.to_lycoris(text_encoder, text_encoder=True, dtype=dtype))
        return out
    if network.unet_config is not None:
        out.update(to_kohya(adapter_state(unet), AdapterScale.from_peft(network.unet_config),
                            text_encoder=False, dtype=dtype))
    if network.te_config is not None:
        out.update(to_kohya(adapter_state(text_encoder),
                            AdapterScale.from_peft(network.te_config), text_encoder=True,
                            dtype=dtype))
    return out
