"""The render engine: one loaded SD1.5 model, LoRA files switched in and out of its weights,
and deterministic txt2img renders with A1111's sampler names.

`RenderEngine.load` loads a base model once with the trainer's own offline loader; after
that `set_lora(path, weight)` makes the UNet and text encoder `W0 + weight * delta` for the
layers the file adapts, in place: the original weights of every layer ever touched are kept
(so weight 0 or no LoRA is the base model bit for bit), and the last few files stay read
(lora_apply.py keeps their factors). Switching a weight or a file therefore reads no model
and rebuilds no pipeline.

`RenderEngine.from_modules` wraps live modules (training's, possibly adapter-wrapped) for
preview samples; it never changes their weights.

Each render draws its initial latents and any ancestral noise from a CPU generator seeded
with the render's seed and uses a fresh scheduler, so a seed gives the same pixels on the
same machine whatever was rendered before.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...core.base.errors import LorabakeError
from .lora_apply import LoraDeltas, kohya_targets, read_lora_deltas
from .samplers import DEFAULT_SAMPLER, canonical_name, make_scheduler

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
LORA_CACHE_FILES = 4


@dataclass(slots=True)
class RenderResult:
    image: object  # PIL.Image.Image, RGB
    latents: np.ndarray  # float32 (4, height / 8, width / 8): the final latents, not decoded
    seed: int
    seconds: float


def resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise LorabakeError(f"unknown device {device!r}", "use cpu, cuda or cuda:N") from e


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """"auto": float32 on a CPU, bf16 on a GPU that has it, else fp16."""
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise LorabakeError(f"unknown precision {dtype!r}",
                            f"use auto or one of: {', '.join(DTYPES)}")
    return DTYPES[dtype]


class RenderEngine:
    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler_config, *,
                 device: torch.device, clip_skip: int = 1, switchable: bool) -> None:
        from diffusers import StableDiffusionPipeline

        if clip_skip < 1:
            raise LorabakeError(f"clip skip {clip_skip} is below 1",
                                "use 1 (the last layer) or 2 (anime models)")
        self.device = torch.device(device)
        self.clip_skip = clip_skip
        self.vae, self.text_encoder, self.unet = vae, text_encoder, unet
        self._scheduler_config = dict(scheduler_config)
        self._pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=make_scheduler(DEFAULT_SAMPLER, self._scheduler_config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        self._pipe.set_progress_bar_config(disable=True)
        self._switchable = switchable
        self._targets = kohya_targets(unet, text_encoder) if switchable else {}
        self._originals: dict[str, torch.Tensor] = {}  # kohya name -> base weight
        self._applied: set[str] = set()  # layers now holding a delta
        self._cache: OrderedDict[tuple, LoraDeltas] = OrderedDict()
        self.lora: tuple[Path, float] | None = None  # what the weights hold now
        self.load_seconds = 0.0
        self.last_set_lora_seconds = 0.0

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def load(cls, base: str, *, device: str | None = None, dtype: str = "auto",
             clip_skip: int = 1) -> RenderEngine:
        """Load `base` (builtin:tiny-sd15, builtin:sd15-random, a single .safetensors file or
        a diffusers folder) once, onto `device` (None: the GPU if there is one)."""
        from ..base_model import load_base_model

        start = time.perf_counter()
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        model = load_base_model(base, dtype=torch_dtype)
        for m in (model.unet, model.vae, model.text_encoder):
            m.to(dev).eval().requires_grad_(False)
        engine = cls(model.vae, model.text_encoder, model.tokenizer, model.unet,
                     model.noise_scheduler.config, device=dev, clip_skip=clip_skip,
                     switchable=True)
        engine.load_seconds = time.perf_counter() - start
        return engine

    @classmethod
    def from_modules(cls, vae, text_encoder, tokenizer, unet, scheduler_config, *,
                     device, clip_skip: int = 1) -> RenderEngine:
        """An engine over live modules (training's samples): set_lora is refused."""
        return cls(vae, text_encoder, tokenizer, unet, scheduler_config,
                   device=torch.device(device), clip_skip=clip_skip, switchable=False)

    # --- LoRA switching -------------------------------------------------------------------

    def set_lora(self, path: Path | None, weight: float = 1.0) -> float:
        """Make the model base + `weight` x the file's deltas (None or weight 0: the base
        weights exactly). Returns the seconds it took (also `last_set_lora_seconds`)."""
        if not self._switchable:
            raise LorabakeError("this render engine draws training's own model and cannot "
                                "switch LoRA files", "load a render engine from the base model")
        start = time.perf_counter()
        deltas = self._deltas(Path(path)) if path is not None else None  # may raise: no change
        with torch.no_grad():
            if deltas is None or weight == 0:
                self._restore(self._applied)
                self._applied = set()
            else:
                self._restore(self._applied - deltas.modules.keys())
                for name, factors in deltas.modules.items():
                    layer = self._targets[name]
                    base = self._originals.get(name)
                    if base is None:
                        base = self._originals[name] = layer.weight.detach().clone()
                    w0 = base.float()  # the sum in float32 whatever the model's dtype
                    layer.weight.copy_(torch.add(w0, factors.delta(w0), alpha=float(weight)))
                self._applied = set(deltas.modules)
        self.lora = None if deltas is None or weight == 0 else (deltas.path, float(weight))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_set_lora_seconds = time.perf_counter() - start
        return self.last_set_lora_seconds

    def _restore(self, names) -> None:
        for name in names:
            self._targets[name].weight.copy_(self._originals[name])

    def _deltas(self, path: Path) -> LoraDeltas:
        """The file's factors, from the cache while the file is unchanged."""
        try:
            st = path.stat()
        except OSError as e:
            raise LorabakeError(f"{path}: no such file" if not path.exists()
                                else f"cannot read {path}: {e.strerror}",
                                "pass a LoRA .safetensors file") from e
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        deltas = read_lora_deltas(path, self._targets, device=self.device)
        self._cache[key] = deltas
        while len(self._cache) > LORA_CACHE_FILES:
            self._cache.popitem(last=False)
        return deltas

    # --- rendering ------------------------------------------------------------------------

    def render(self, prompt: str, *, negative: str = "", seed: int, steps: int = 20,
               cfg: float = 7.0, width: int = 512, height: int = 512,
               sampler: str = DEFAULT_SAMPLER) -> RenderResult:
        _check_size(width, height, steps)
        start = time.perf_counter()
        self._pipe.scheduler = make_scheduler(canonical_name(sampler), self._scheduler_config)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.no_grad():
            latents = self._pipe(
                prompt, negative_prompt=negative, width=width, height=height,
                num_inference_steps=steps, guidance_scale=cfg, generator=generator,
                clip_skip=self.clip_skip - 1 if self.clip_skip > 1 else None,
                output_type="latent").images
            image = self._decode(latents)
        return RenderResult(image=image, latents=latents[0].float().cpu().numpy(), seed=int(seed),
                            seconds=time.perf_counter() - start)

    def _decode(self, latents: torch.Tensor):
        vae = self.vae
        scaled = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor
        pixels = vae.decode(scaled, return_dict=False)[0]
        return self._pipe.image_processor.postprocess(pixels, output_type="pil")[0].convert("RGB")


def _check_size(width: int, height: int, steps: int) -> None:
    for what, value in (("width", width), ("height", height)):
        if value < 8 or value % 8:
            raise LorabakeError(f"render {what} {value} is not a positive multiple of 8",
                                "use a size such as 512 or 768")
    if steps < 1:
        raise LorabakeError(f"render steps {steps} is below 1", "use 20 to 30 steps")


__all__ = ["DTYPES", "RenderEngine", "RenderResult", "resolve_device", "resolve_dtype"]
