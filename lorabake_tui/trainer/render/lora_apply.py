"""A LoRA-family file read into per-module weight deltas for the SD1.5 UNet and text encoder.

Covers every type lorabake writes or reads: kohya LoRA and LoCon (also LyCORIS's LoCon with
a CP `lora_mid`), LoHa, LoKr and IA3 (DyLoRA files are plain LoRAs). Module names are
kohya's: `lora_unet_<diffusers module path with _>` and `lora_te_<text model path with _>`
(`lora_te1_` accepted as the same). The formulas are the loaders' (A1111, ComfyUI), as
/work/shared/reference/lycoris-formats.md gives them:

- LoRA: `up @ down * alpha / rank` (with `lora_mid`, the three convolutions composed);
- LoHa: `(w1_a @ w1_b) * (w2_a @ w2_b) * alpha / rank`, or the CP form with `hada_t1/t2`;
- LoKr: `kron(w1, w2)`, times `alpha / rank` of the decomposed factor (1 when neither is);
- IA3: the weight's rows (or input columns when `on_input`) times the stored vector.

A file is checked whole when read: each key must belong to a module of the model with the
right parameters and shapes, else a LorabakeError names the file and the key, and nothing
in the model has been touched. The factors are kept (in float32, on the model's device);
`delta()` builds a module's full delta when it is applied, so a cached file costs the size
of the file, not of the layers it touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...core.base.errors import LorabakeError
from ...core.lora.modules import group_keys, read_modules
from ...core.lora.read import SafetensorsFile, read_safetensors
from ..kohya_format import TE_PREFIX, UNET_PREFIX, kohya_module_name

# the parameters each module type may have (any other is refused, not silently dropped)
PARAMS = {
    "lora": {"lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha"},
    "loha": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
             "alpha"},
    "lokr": {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b",
             "lokr_t2", "alpha"},
    "ia3": {"weight", "on_input"},
}
REQUIRED = {"lora": ({"lora_down.weight"}, {"lora_up.weight"}),
            "loha": ({"hada_w1_a"}, {"hada_w1_b"}, {"hada_w2_a"}, {"hada_w2_b"}),
            "lokr": ({"lokr_w1", "lokr_w1_a"}, {"lokr_w2", "lokr_w2_a"}),
            "ia3": ({"weight"}, {"on_input"})}
PAIRS = (("hada_t1", "hada_t2"), ("lokr_w1_a", "lokr_w1_b"), ("lokr_w2_a", "lokr_w2_b"))
# textual-inversion embeddings some LoRAs carry along; they change no weight
IGNORED_PREFIXES = ("bundle_emb.",)
_TE_ALIASES = ("lora_te1_",)
_SD15_HINT = "use a LoRA trained on SD1.5 (kohya or LyCORIS key names)"


def kohya_targets(unet: nn.Module | None, text_encoder: nn.Module | None
                  ) -> dict[str, nn.Module]:
    """kohya module name -> the Linear or Conv2d of the model it adapts."""
    out: dict[str, nn.Module] = {}
    for model, te in ((unet, False), (text_encoder, True)):
        if model is None:
            continue
        for name, m in model.named_modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                out[kohya_module_name(name, text_encoder=te)] = m
    return out


def _canonical(name: str) -> str:
    for alias in _TE_ALIASES:
        if name.startswith(alias):
            return TE_PREFIX + name[len(alias):]
    return name


@dataclass(slots=True)
class ModuleFactors:
    """One module's saved tensors (float32; `on_input` a bool) and its delta formula."""

    name: str  # canonical kohya name
    kind: str  # lora | loha | lokr | ia3
    t: dict[str, torch.Tensor]

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        """The module's full float32 delta for the base weight `weight` (whose values only
        IA3 uses), in `weight`'s shape."""
        d = _delta(self.kind, self.t, weight)
        return d.reshape(weight.shape)

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.t.values())


def _alpha_scale(t: Mapping[str, torch.Tensor], rank: int) -> float | torch.Tensor:
    # no alpha: the loaders take alpha = rank
    return t["alpha"] / rank if "alpha" in t else 1.0


def _cp(core: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """LyCORIS's Tucker form: core (r, r, k, k), b (r, in), a (r, out) -> (out, in, k, k)."""
    # contiguous: einsum may hand back a permuted view, which kron cannot take
    return torch.einsum("i j k l, j r, i p -> p r k l", core, b.flatten(1),
                        a.flatten(1)).contiguous()


def _delta(kind: str, t: Mapping[str, torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    if kind == "lora":
        down, up = t["lora_down.weight"], t["lora_up.weight"]
        rank = down.shape[0]
        if "lora_mid.weight" in t:  # down (1x1), mid (kxk), up (1x1), composed
            d = torch.einsum("o a, a b k l, b i -> o i k l", up.flatten(1),
                             t["lora_mid.weight"], down.flatten(1))
        else:
            d = (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], *down.shape[1:])
        return d * _alpha_scale(t, rank)
    if kind == "loha":
        rank = t["hada_w1_b"].shape[0]
        if "hada_t1" in t:
            w1 = _cp(t["hada_t1"], t["hada_w1_b"], t["hada_w1_a"])
            w2 = _cp(t["hada_t2"], t["hada_w2_b"], t["hada_w2_a"])
        else:
            w1 = t["hada_w1_a"] @ t["hada_w1_b"]
            w2 = t["hada_w2_a"] @ t["hada_w2_b"]
        return w1 * w2 * _alpha_scale(t, rank)
    if kind == "lokr":
        w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
        if "lokr_w2" in t:
            w2 = t["lokr_w2"]
        elif "lokr_t2" in t:
            w2 = _cp(t["lokr_t2"], t["lokr_w2_b"], t["lokr_w2_a"])
        else:
            w2 = t["lokr_w2_a"] @ t["lokr_w2_b"]
        if w2.dim() == 4:
            w1 = w1[:, :, None, None]
        scale: float | torch.Tensor = 1.0  # neither factor decomposed: alpha is not used
        for b in ("lokr_w1_b", "lokr_w2_b"):
            if b in t:
                scale = _alpha_scale(t, t[b].shape[0])
                break
        return torch.kron(w1, w2) * scale
    if kind == "ia3":
        v = t["weight"]
        if bool(t["on_input"]):
            v = v.reshape(1, -1, *([1] * (weight.dim() - 2)))
        else:
            v = v.reshape(-1, *([1] * (weight.dim() - 1)))
        return weight.float() * v
    raise AssertionError(kind)


@dataclass(slots=True)
class LoraDeltas:
    """A whole file: canonical kohya module name -> its factors."""

    path: Path
    modules: dict[str, ModuleFactors]

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.modules.values())


def read_lora_deltas(path: Path, targets: Mapping[str, nn.Module], *,
                     device: torch.device | str = "cpu") -> LoraDeltas:
    """Read and check `path` against the model's modules (`kohya_targets`)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    header = read_safetensors(path)  # LorabakeError for pickles, truncation, non-safetensors
    kinds = {m.name: m.kind for m in read_modules(header)}
    groups = group_keys(header)
    loose = [k for k in header.tensors if "." not in k and not k.startswith(IGNORED_PREFIXES)]
    if loose:
        raise LorabakeError(f"{path}: tensor {loose[0]} is not a LoRA module's key",
                            _SD15_HINT)
    plan: dict[str, tuple[str, str, dict[str, str]]] = {}
    for raw_name, params in groups.items():
        if any(k.startswith(IGNORED_PREFIXES) for k in params.values()):
            continue
        name = _canonical(raw_name)
        kind = kinds.get(raw_name, "unknown")
        _check_module(header, raw_name, name, kind, params, targets)
        plan[name] = (raw_name, kind, params)
    if not plan:
        raise LorabakeError(f"{path} holds no LoRA modules", _SD15_HINT)
    modules: dict[str, ModuleFactors] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name, (_, kind, params) in plan.items():
                t = {}
                for p, key in params.items():
                    v = fh.get_tensor(key)
                    t[p] = v.to(device) if p == "on_input" else v.to(device, torch.float32)
                modules[name] = ModuleFactors(name, kind, t)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise LorabakeError(f"cannot read {path}: {str(e).splitlines()[0][:200]}",
                            "the file is corrupt: copy or download it again") from e
    return LoraDeltas(path, modules)


def _check_module(header: SafetensorsFile, raw_name: str, name: str, kind: str,
                  params: dict[str, str], targets: Mapping[str, nn.Module]) -> None:
    """Refuse a module the model lacks, an unknown or incomplete parameter set, or factors
    whose delta does not fit the layer: computed on the meta device, from the shapes alone."""
    path = header.path
    first = next(iter(params.values()))
    if not name.startswith((UNET_PREFIX, TE_PREFIX)):
        hint = ("this is an SDXL LoRA: lorabake renders SD1.5" if name.startswith("lora_te2_")
                else _SD15_HINT)
        raise LorabakeError(f"{path}: key {first} is not a kohya UNet or text-encoder module",
                            hint)
    known = set().union(*PARAMS.values())
    if kind == "unknown" and set(params) <= known:
        raise LorabakeError(f"{path}: module {raw_name} is incomplete (it has only "
                            f"{', '.join(sorted(params))})",
                            "the file is incomplete: save or download it again")
    if kind == "unknown" or set(params) - PARAMS[kind]:
        odd = sorted(set(params) - PARAMS.get(kind, set())) or sorted(params)
        raise LorabakeError(f"{path}: key {raw_name}.{odd[0]} is not a parameter lorabake "
                            "can apply (LoRA, LoCon, LoHa, LoKr and IA3 are)",
                            "use a LoRA, LoCon, LoHa, LoKr or IA3 file")
    for need in REQUIRED[kind]:
        if not need & set(params):
            raise LorabakeError(f"{path}: module {raw_name} has no {sorted(need)[0]}",
                                "the file is incomplete: save or download it again")
    for a, b in PAIRS:
        if (a in params) != (b in params):
            missing = b if a in params else a
            raise LorabakeError(f"{path}: module {raw_name} has no {missing}",
                                "the file is incomplete: save or download it again")
    layer = targets.get(name)
    if layer is None:
        raise LorabakeError(f"{path}: key {first} names no layer of the SD1.5 model",
                            _SD15_HINT)
    weight = layer.weight
    t = {p: torch.empty(header.tensors[key].shape, device="meta") for p, key in params.items()}
    if kind == "ia3":
        on_input = bool(header.array(params["on_input"]).reshape(-1)[0])
        n = weight.shape[1] if on_input else weight.shape[0]
        if t["weight"].numel() != n:
            raise LorabakeError(f"{path}: key {params['weight']} has {t['weight'].numel()} "
                                f"values, the layer needs {n}", _SD15_HINT)
        return
    try:
        shape = _delta(kind, t, torch.empty(weight.shape, device="meta")).shape
    except RuntimeError as e:
        raise LorabakeError(f"{path}: the tensors of module {raw_name} do not fit together "
                            f"({str(e).splitlines()[0][:120]})",
                            "the file is damaged or not a LoRA lorabake knows") from e
    if shape.numel() != weight.numel() or shape[0] != weight.shape[0]:
        raise LorabakeError(f"{path}: module {raw_name} gives a {tuple(shape)} delta, the "
                            f"layer's weight is {tuple(weight.shape)}", _SD15_HINT)

