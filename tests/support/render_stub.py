"""A stand-in for trainer/render/engine.RenderEngine in tests of the grid and probe runs'
bookkeeping (files, manifests, events, stops): each image is one flat colour derived from
what was asked (prompt, seed, LoRA file, weight), so tests can tell cells apart without torch.
The real engine has its own tests (tests/trainer/test_render*.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class StubResult:
    image: Image.Image
    latents: np.ndarray


class StubEngine:
    def __init__(self, *, same_latents_for: str | None = None) -> None:
        self.lora: tuple[str, float] | None = None
        self.calls: list[tuple] = []
        self.switches = 0
        self.same_latents_for = same_latents_for  # a prompt drawn alike at every seed

    def set_lora(self, path: Path | None, weight: float = 1.0) -> None:
        self.switches += 1
        self.lora = None if path is None or weight == 0 else (str(path), weight)

    def render(self, prompt: str, *, seed: int, width: int, height: int, **kw) -> StubResult:
        self.calls.append((prompt, seed, self.lora))
        key = f"{prompt}|{seed}|{self.lora}".encode()
        rgb = tuple(hashlib.sha256(key).digest()[:3])
        if prompt == self.same_latents_for:
            key = prompt.encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
        latents = rng.standard_normal((4, height // 8, width // 8)).astype(np.float32)
        return StubResult(Image.new("RGB", (width, height), rgb), latents)
