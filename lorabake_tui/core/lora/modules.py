"""The modules of a kohya-named LoRA file (`lora_unet_...`, `lora_te_...`): which network
type each module's keys are, its rank, alpha, and whether it adapts a spatial convolution.

"conv" means a convolution with a kernel above 1x1 (what LoCon's conv_dim sets); a 1x1
convolution (SD1.5's proj_in/proj_out, conv_shortcut) counts as linear, as kohya gives it
network_dim. Where the shapes cannot tell (LoHa and LoKr store a conv kernel flattened), the
module's name does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from .read import SafetensorsFile

UNET_PREFIXES = ("lora_unet_",)
TE_PREFIXES = ("lora_te_", "lora_te1_", "lora_te2_")
# SD1.5's 3x3 convolutions by kohya name: resnet conv1/conv2, down/upsampler conv, conv_in/out
_CONV_NAME = re.compile(r"(_conv[12]|samplers_\d+_conv|_conv_in|_conv_out)$")


@dataclass(slots=True)
class Module:
    name: str
    kind: str  # lora | loha | lokr | ia3 | unknown
    part: str  # unet | text_encoder | other
    conv: bool
    rank: int | None  # None: IA3, or LoKr with both factors full
    alpha: float | None
    on_input: bool | None = None  # IA3 only


def group_keys(f: SafetensorsFile) -> dict[str, dict[str, str]]:
    """module name -> {parameter suffix: full key}, for keys shaped `module.param`."""
    groups: dict[str, dict[str, str]] = defaultdict(dict)
    for key in f.tensors:
        module, dot, param = key.partition(".")
        if dot:
            groups[module][param] = key
    return dict(groups)


def _part(name: str) -> str:
    if name.startswith(UNET_PREFIXES):
        return "unet"
    if name.startswith(TE_PREFIXES):
        return "text_encoder"
    return "other"


def _kind(params: dict[str, str]) -> str:
    if "lora_down.weight" in params and "lora_up.weight" in params:
        return "lora"
    if "hada_w1_a" in params:
        return "loha"
    if any(p.startswith("lokr_w1") for p in params):
        return "lokr"
    if "weight" in params and "on_input" in params:
        return "ia3"
    return "unknown"


def read_modules(f: SafetensorsFile) -> list[Module]:
    out = []
    for name, params in group_keys(f).items():
        kind = _kind(params)
        if kind == "unknown" and _part(name) == "other":
            continue  # not a module of a kohya-named network (a stray or embedded tensor)
        out.append(_module(f, name, kind, params))
    return out


def _shape(f: SafetensorsFile, params: dict[str, str], param: str) -> tuple[int, ...] | None:
    key = params.get(param)
    return f.tensors[key].shape if key is not None else None


def _module(f: SafetensorsFile, name: str, kind: str, params: dict[str, str]) -> Module:
    def shape(p: str):
        return _shape(f, params, p)

    by_name = bool(_CONV_NAME.search(name))
    rank: int | None = None
    conv = by_name
    if kind == "lora":
        down = shape("lora_down.weight")
        rank = down[0] if down else None
        # the shapes say it: a (rank, in, k, k) down with k > 1
        conv = bool(down) and len(down) == 4 and down[2] * down[3] > 1
    elif kind == "loha":
        b = shape("hada_w1_b")
        rank = b[0] if b else None
        conv = "hada_t1" in params or by_name
    elif kind == "lokr":
        for p in ("lokr_w1_b", "lokr_w2_b"):
            if (s := shape(p)) is not None:
                rank = s[0]
                break
        w2 = shape("lokr_w2")
        conv = "lokr_t2" in params or (w2 is not None and len(w2) == 4 and w2[2] * w2[3] > 1) \
            or by_name
    elif kind == "ia3":
        conv = False
    alpha = None
    if "alpha" in params and f.tensors[params["alpha"]].nbytes <= 8:
        alpha = float(f.array(params["alpha"]).reshape(-1)[0])
    on_input = None
    if kind == "ia3":
        on_input = bool(f.array(params["on_input"]).reshape(-1)[0])
    return Module(name, kind, _part(name), conv, rank, alpha, on_input)
