"""LoHa, LoKr and IA3 (the LyCORIS family): which layers they train, the layers themselves,
and their saved form in LyCORIS's kohya layout, the one A1111 and ComfyUI load.

Coverage follows LyCORIS's default ("full") preset for SD 1.5. LoHa and LoKr: in the UNet
every Linear and 1x1 conv of the transformer blocks (proj_in/out, attention q/k/v/out,
feed-forward: kohya's 192 LoRA modules), of the resnets (time_emb_proj, conv_shortcut) and
the time embedding (linear_1, linear_2), 230 modules at `dim`/`alpha`; with `conv_dim` > 0
also the 3x3 convolutions (resnet conv1/conv2, the down/up samplers, conv_in, conv_out) at
`conv_dim`/`conv_alpha` (`conv_alpha` 0: `alpha`), 282 modules. Text encoder: the attention
and MLP Linears of each layer (q/k/v/out_proj, fc1, fc2), 72 modules. IA3 (LyCORIS's IA3 for
kohya): UNet attention to_k/to_v and ff.net.2 (80 modules), text encoder k_proj/v_proj and
mlp.fc2 (36), with the vector on the input side for the two feed-forward outputs.

LoHa and LoKr are peft's layers: their parameter names, shapes and deltas are LyCORIS's
(LoHa `((w1_a @ w1_b) * (w2_a @ w2_b)) * alpha / r`; LoKr `kron(w1, w2) * alpha / r`). One
difference: when neither LoKr factor is decomposed the loaders use scale 1, so `lokr_w1` is
saved multiplied by alpha / r. The 3x3 convolutions use the plain form (`hada_w*_b` of shape
(r, in*k*k)), LyCORIS's default; LoKr factorises as squarely as possible (factor -1) and keeps
the second factor whole when the rank is at least half its size, as LyCORIS does, so a small
layer gets `lokr_w2` and a wide one `lokr_w2_a`/`lokr_w2_b`.

IA3 is our own small layer: peft's IA3 multiplies the layer's whole output, bias included,
while A1111 scales the weight alone (CLIP's k_proj/v_proj have biases), so a peft-trained
vector would not give the model the loader rebuilds. Ours computes exactly the loader's
`W * (1 + w)`; `w` starts at 0 and is saved as is (A1111's convention: the stored vector is the
delta). ComfyUI has no IA3 loader.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ADAPTER = "default"
KINDS = ("loha", "lokr", "ia3")
UNET_ATTN = (r".*attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\."
             r"(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)))")
UNET_LINEAR = r".*(resnets\.\d+\.(conv_shortcut|time_emb_proj)|time_embedding\.linear_[12])"
UNET_KXK = r".*(resnets\.\d+\.(conv1|conv2)|(down|up)samplers\.0\.conv|conv_in|conv_out)"
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
IA3_UNET = r".*transformer_blocks\.\d+\.(attn[12]\.(to_k|to_v)|ff\.net\.2)"
IA3_TE = r".*(self_attn\.(k_proj|v_proj)|mlp\.fc2)"
IA3_ON_INPUT = ("ff.net.2", "mlp.fc2")
LOKR_FACTOR = -1


class IA3Spec:
    """Which Linears of a model get an IA3 vector (the counterpart of a peft config)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def targets(self, model):
        import re

        for name, m in model.named_modules():
            if isinstance(m, nn.Linear) and re.fullmatch(self.pattern, name):
                yield name, m


class IA3Linear(nn.Module):
    """A frozen Linear whose weight is used as `W * (1 + w)`: per output row, or per input
    column when `on_input` (A1111's merge, so the trained and the loaded model agree)."""

    def __init__(self, base: nn.Linear, on_input: bool) -> None:
        super().__init__()
        self.base_layer = base
        self.on_input = on_input
        n = base.in_features if on_input else base.out_features
        self.ia3_weight = nn.Parameter(torch.zeros(n, device=base.weight.device))

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.base_layer.weight
        scale = (1 + self.ia3_weight).to(w.dtype)
        w = w * (scale if self.on_input else scale[:, None])
        return F.linear(x, w, self.base_layer.bias)


def configs(kind: str, dim: int, alpha: float, conv_dim: int, conv_alpha: float, *,
            unet: bool, text_encoder: bool):
    """(unet config, text-encoder config, ss_network_args) for a LyCORIS network."""
    if kind == "ia3":
        return (IA3Spec(IA3_UNET) if unet else None,
                IA3Spec(IA3_TE) if text_encoder else None, {"algo": "ia3"})
    from peft import LoHaConfig, LoKrConfig

    cls = LoHaConfig if kind == "loha" else LoKrConfig
    extra = {"decompose_both": False, "decompose_factor": LOKR_FACTOR} if kind == "lokr" else {}
    targets = f"({UNET_ATTN}|{UNET_LINEAR})"
    patterns = {}
    calpha = conv_alpha or alpha
    if conv_dim:
        targets = f"({UNET_ATTN}|{UNET_LINEAR}|{UNET_KXK})"
        patterns = {"rank_pattern": {UNET_KXK: conv_dim}, "alpha_pattern": {UNET_KXK: calpha}}
    unet_cfg = te_cfg = None
    if unet:
        unet_cfg = cls(r=dim, alpha=alpha, target_modules=targets, init_weights=True,
                       **patterns, **extra)
    if text_encoder:
        te_cfg = cls(r=dim, alpha=alpha, target_modules=TE_TARGETS, init_weights=True, **extra)
    args = {"algo": kind, "preset": "full", "conv_dim": str(conv_dim),
            "conv_alpha": str(float(calpha) if conv_dim else float(conv_alpha))}
    if kind == "lokr":
        args["factor"] = str(LOKR_FACTOR)
    return unet_cfg, te_cfg, args


def attach_ia3(spec: IA3Spec, model) -> None:
    """Swap each target Linear for an IA3Linear around it (the base weights stay frozen)."""
    for name, linear in list(spec.targets(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        on_input = name.endswith(IA3_ON_INPUT)
        setattr(parent, child, IA3Linear(linear, on_input))


def ia3_layers(model):
    for name, m in model.named_modules():
        if isinstance(m, IA3Linear):
            yield name, m


def ia3_state(model) -> dict[str, torch.Tensor]:
    return {f"{name}.ia3_weight": m.ia3_weight for name, m in ia3_layers(model)}


def load_ia3_state(model, state: dict[str, torch.Tensor]) -> None:
    own = dict(ia3_layers(model))
    names = {k.removesuffix(".ia3_weight") for k in state}
    if names != set(own):
        odd = sorted(names ^ set(own))
        raise ValueError(f"saved IA3 state does not fit the model: {odd[:3]}")
    with torch.no_grad():
        for name, m in own.items():
            m.ia3_weight.copy_(state[f"{name}.ia3_weight"])


def lycoris_layers(model):
    """(name, layer) for each peft LoHa/LoKr layer carrying our adapter."""
    from peft.tuners.lycoris_utils import LycorisLayer

    for name, m in model.named_modules():
        if isinstance(m, LycorisLayer) and ADAPTER in m.r:
            yield name, m


def _value(m, attr: str) -> torch.Tensor | None:
    d = getattr(m, attr, None)
    return d[ADAPTER] if d is not None and ADAPTER in d else None


def module_tensors(m) -> dict[str, torch.Tensor]:
    """The LyCORIS keys of one LoHa/LoKr/IA3 layer, with the loaders' scale conventions."""
    if isinstance(m, IA3Linear):
        return {"weight": m.ia3_weight.detach(),
                "on_input": torch.tensor(m.on_input, dtype=torch.bool)}
    r, alpha = m.r[ADAPTER], float(m.alpha[ADAPTER])
    out: dict[str, torch.Tensor] = {}
    for key in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
                "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b",
                "lokr_t2"):
        t = _value(m, key)
        if t is not None:
            out[key] = t.detach()
    if "lokr_w1" in out and "lokr_w2" in out:
        # neither factor decomposed: the loaders ignore alpha, so the scale goes in w1
        out["lokr_w1"] = out["lokr_w1"] * (alpha / r)
    out["alpha"] = torch.tensor(alpha)
    return out


def to_lycoris(model, *, text_encoder: bool, dtype=None) -> dict[str, torch.Tensor]:
    """A model's LoHa/LoKr/IA3 layers under kohya module names (`lora_unet_...`,
    `lora_te_text_model_...`); `on_input` stays a bool, the rest takes `dtype`."""
    from .kohya_format import kohya_module_name

    out: dict[str, torch.Tensor] = {}
    for name, m in [*lycoris_layers(model), *ia3_layers(model)]:
        kname = kohya_module_name(name, text_encoder=text_encoder)
        for key, t in module_tensors(m).items():
            t = t.to("cpu").contiguous()
            if dtype is not None and t.dtype != torch.bool:
                t = t.to(dtype)
            out[f"{kname}.{key}"] = t
    return out
