"""peft LoRA weights -> the kohya / A1111 / ComfyUI key layout.

diffusers' own converter writes alpha = rank (wrong strength whenever alpha != dim), uses
`lora_te1_` and loses `text_model_` with newer transformers; this one writes each module's
own alpha and always the canonical `lora_te_text_model_...` names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

UNET_PREFIX = "lora_unet_"
TE_PREFIX = "lora_te_"
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True, slots=True)
class AdapterScale:
    """What peft's LoraConfig says about a module's rank and alpha."""

    r: int
    alpha: float
    rank_pattern: Mapping[str, int] = field(default_factory=dict)
    alpha_pattern: Mapping[str, float] = field(default_factory=dict)
    use_rslora: bool = False

    @classmethod
    def from_peft(cls, config) -> AdapterScale:
        return cls(config.r, config.lora_alpha, dict(config.rank_pattern or {}),
                   dict(config.alpha_pattern or {}), bool(getattr(config, "use_rslora", False)))

    def _pattern(self, patterns: Mapping, module: str):
        # peft's rule: a key matches the whole name or a dotted suffix of it
        for key, value in patterns.items():
            if re.fullmatch(rf"(.*\.)?(?:{key})", module):
                return value
        return None

    def kohya_alpha(self, module: str, rank: int) -> float:
        """The alpha kohya needs for the same scale: alpha / rank (rsLoRA: alpha / sqrt r)."""
        alpha = self._pattern(self.alpha_pattern, module)
        alpha = self.alpha if alpha is None else alpha
        return alpha * math.sqrt(rank) if self.use_rslora else float(alpha)


def kohya_module_name(module: str, *, text_encoder: bool) -> str:
    if text_encoder:
        # transformers >= 5.6 flattened CLIPTextModel: its names lost `text_model.`
        if not module.startswith("text_model."):
            module = "text_model." + module
        return TE_PREFIX + module.replace(".", "_")
    return UNET_PREFIX + module.replace(".", "_")


def to_kohya(state: Mapping[str, object], scale: AdapterScale, *, text_encoder: bool,
             dtype=None) -> dict[str, object]:
    """kohya keys for one model's peft LoRA state dict (`get_peft_model_state_dict`):
    `<name>.lora_down.weight`, `<name>.lora_up.weight` and `<name>.alpha` per module."""
    import torch

    out: dict[str, object] = {}
    for key, tensor in state.items():
        m = _LORA_KEY.match(key)
        if m is None:
            raise ValueError(f"not a LoRA weight: {key}")
        module = m.group("module").removeprefix("base_model.model.")
        name = kohya_module_name(module, text_encoder=text_encoder)
        part = "lora_down" if m.group("part") == "A" else "lora_up"
        t = tensor.detach().to("cpu").contiguous()
        out[f"{name}.{part}.weight"] = t.to(dtype) if dtype is not None else t
        if part == "lora_down":
            rank = t.shape[0]
            out[f"{name}.alpha"] = torch.tensor(scale.kohya_alpha(module, rank),
                                                dtype=dtype or torch.float32)
    return out


def module_count(kohya_state: Mapping[str, object], prefix: str) -> int:
    return sum(1 for k in kohya_state if k.startswith(prefix) and k.endswith(".alpha"))
