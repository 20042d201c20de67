"""DyLoRA with kohya's semantics (`networks.dylora`): a LoRA of rank `dim` on kohya's LoRA
modules (192 UNet, 72 text-encoder), trained so that any multiple of `unit` can be cut from
it afterwards.

Each training forward of a layer draws `b` in [0, dim) rounded down to a multiple of `unit`
(from torch's generator, which the loop reseeds every step, so a resumed run draws the same);
all `dim` ranks take part, only the ranks [b, b + unit) are trainable in that step, and the
update is scaled by `alpha / dim * sqrt(dim / (b + unit))`. The ranks live in blocks of
`unit` rows, one parameter each, and the blocks not drawn get no gradient at all, so the
optimizer leaves them alone (no momentum, no weight decay), as kohya's per-rank
`requires_grad` does. Outside training (sampling, the saved file) the layer is a plain
LoRA: scale `alpha / dim`, which is what the file, an ordinary kohya LoRA at full `dim` with
`ss_network_module = "networks.dylora"`, gives in every loader. Several processes (DDP) are
not supported with DyLoRA: the trainable parameters change from step to step.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

UNET = (r".*attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\."
        r"(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)))")
TE = r".*(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"


class DyLoRASpec:
    """Which layers get a DyLoRA, and its dim, alpha and unit."""

    def __init__(self, pattern: str, dim: int, alpha: float, unit: int) -> None:
        if dim % unit:
            raise ValueError(f"DyLoRA dim {dim} is not a multiple of unit {unit}")
        self.pattern, self.dim, self.alpha, self.unit = pattern, dim, alpha, unit

    def targets(self, model):
        for name, m in model.named_modules():
            if isinstance(m, nn.Linear | nn.Conv2d) and re.fullmatch(self.pattern, name):
                yield name, m


class DyLoRALayer(nn.Module):
    """A frozen Linear or 1x1 Conv2d plus a DyLoRA of rank `dim` in blocks of `unit` ranks."""

    def __init__(self, base: nn.Module, dim: int, alpha: float, unit: int) -> None:
        super().__init__()
        if isinstance(base, nn.Conv2d) and base.kernel_size != (1, 1):
            raise ValueError("DyLoRA here covers Linear and 1x1 convolutions only")
        self.base_layer = base
        self.dim, self.unit = dim, unit
        self.alpha = float(alpha or dim)  # kohya: alpha 0 means alpha = dim
        conv = isinstance(base, nn.Conv2d)
        n_in = base.in_channels if conv else base.in_features
        n_out = base.out_channels if conv else base.out_features
        dev = base.weight.device
        self.lora_dy_down = nn.ParameterList(
            [nn.Parameter(torch.empty(unit, n_in, device=dev)) for _ in range(dim // unit)])
        self.lora_dy_up = nn.ParameterList(
            [nn.Parameter(torch.zeros(n_out, unit, device=dev)) for _ in range(dim // unit)])
        for p in self.lora_dy_down:
            nn.init.kaiming_uniform_(p, a=math.sqrt(5))  # the same bound as kohya's per rank

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    def down(self) -> torch.Tensor:
        return torch.cat(tuple(self.lora_dy_down), dim=0)

    def up(self) -> torch.Tensor:
        return torch.cat(tuple(self.lora_dy_up), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        scale = self.alpha / self.dim
        if self.training:
            b = int(torch.randint(0, self.dim, (1,)).item())
            b -= b % self.unit
            k = b // self.unit
            for i, (d, u) in enumerate(zip(self.lora_dy_down, self.lora_dy_up, strict=True)):
                d.requires_grad_(i == k)
                u.requires_grad_(i == k)
            scale *= math.sqrt(self.dim / (b + self.unit))
        down, up = self.down(), self.up()
        dtype = x.dtype
        if isinstance(self.base_layer, nn.Conv2d):
            h = F.conv2d(x, down.to(dtype)[:, :, None, None])
            h = F.conv2d(h, up.to(dtype)[:, :, None, None])
        else:
            h = F.linear(F.linear(x, down.to(dtype)), up.to(dtype))
        return out + h * scale


def attach(spec: DyLoRASpec, model) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from ..core.base.errors import LorabakeError

        raise LorabakeError("DyLoRA trains on one process only (its trainable ranks change "
                            "every step, which DDP cannot follow)",
                            "run it without accelerate's --multi_gpu, or pick lora")
    for name, base in list(spec.targets(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, DyLoRALayer(base, spec.dim, spec.alpha, spec.unit))


def layers(model):
    for name, m in model.named_modules():
        if isinstance(m, DyLoRALayer):
            yield name, m


def state(model) -> dict[str, torch.Tensor]:
    """Resume state: each layer's full down/up matrices."""
    out = {}
    for name, m in layers(model):
        out[f"{name}.lora_down"] = m.down().detach()
        out[f"{name}.lora_up"] = m.up().detach()
    return out


def load_state(model, saved: dict[str, torch.Tensor]) -> None:
    own = dict(layers(model))
    names = {k.rsplit(".", 1)[0] for k in saved}
    if names != set(own):
        odd = sorted(names ^ set(own))
        raise ValueError(f"saved DyLoRA state does not fit the model: {odd[:3]}")
    with torch.no_grad():
        for name, m in own.items():
            downs = saved[f"{name}.lora_down"].split(m.unit, dim=0)
            ups = saved[f"{name}.lora_up"].split(m.unit, dim=1)
            for p, t in zip(m.lora_dy_down, downs, strict=True):
                p.copy_(t)
            for p, t in zip(m.lora_dy_up, ups, strict=True):
                p.copy_(t)


def to_kohya(model, *, text_encoder: bool, dtype=None) -> dict[str, torch.Tensor]:
    """An ordinary kohya LoRA at full dim: lora_down (dim, in), lora_up (out, dim), alpha."""
    from .kohya_format import kohya_module_name

    out: dict[str, torch.Tensor] = {}
    for name, m in layers(model):
        kname = kohya_module_name(name, text_encoder=text_encoder)
        down, up = m.down().detach().cpu(), m.up().detach().cpu()
        if isinstance(m.base_layer, nn.Conv2d):
            down, up = down[:, :, None, None], up[:, :, None, None]
        for key, t in (("lora_down.weight", down), ("lora_up.weight", up),
                       ("alpha", torch.tensor(m.alpha))):
            t = t.contiguous()
            out[f"{kname}.{key}"] = t.to(dtype) if dtype is not None else t
    return out
