"""VAE latents, computed once per image (and once more mirrored with flip_aug), kept in
memory or on disk. A disk entry's name is a hash of everything that shapes it (the file's
path, size and mtime, its bucket and resize, the VAE), so a changed image, bucket,
resolution or VAE simply misses the cache instead of training on stale latents."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from ..core.atomic import atomic_write_bytes
from ..core.errors import LorabakeError
from .data import Sample, load_pixels

CACHE_VERSION = "1"


def cache_key(sample: Sample, vae_id: str, flip: bool) -> str:
    st = sample.path.stat()
    raw = "|".join(map(str, (CACHE_VERSION, sample.path.resolve(), st.st_size, st.st_mtime_ns,
                             sample.bucket, sample.resized, vae_id, int(flip))))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@torch.no_grad()
def encode_pixels(vae, pixels: torch.Tensor, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Unscaled latents (a sample of the VAE's distribution), fp32."""
    x = pixels.to(vae.device, dtype=vae.dtype)
    return vae.encode(x).latent_dist.sample(generator=generator).float()


def _sample_generator(key: str, device) -> torch.Generator:
    # one fixed draw per image, so a cache rebuilt later (or on resume) holds the same values
    return torch.Generator(device=device).manual_seed(int(key[:15], 16))


class LatentCache:
    def __init__(self, vae, vae_id: str, mode: str, cache_dir: Path | None) -> None:
        self.vae, self.vae_id, self.mode = vae, vae_id, mode
        self.dir = cache_dir
        self.memory: dict[tuple[int, bool], torch.Tensor] = {}
        self.hits = self.misses = 0

    def _disk_path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / key[:2] / f"{key}.pt"

    def _compute(self, sample: Sample, flip: bool, key: str) -> torch.Tensor:
        pixels = torch.from_numpy(load_pixels(sample, flip=flip)).unsqueeze(0)
        latent = encode_pixels(self.vae, pixels, _sample_generator(key, self.vae.device))[0]
        if not torch.isfinite(latent).all():
            raise LorabakeError(f"{sample.path}: the VAE gave NaN/inf latents",
                                "check the image; with fp16 try bf16 or a fixed VAE")
        return latent.cpu()

    def get(self, index: int, sample: Sample, flip: bool) -> torch.Tensor:
        mem = self.memory.get((index, flip))
        if mem is not None:
            return mem
        key = cache_key(sample, self.vae_id, flip)
        latent = None
        if self.mode == "disk":
            path = self._disk_path(key)
            try:
                latent = torch.load(path, weights_only=True)
                self.hits += 1
            except (OSError, EOFError, RuntimeError):
                latent = None  # missing or damaged: recompute
        if latent is None:
            latent = self._compute(sample, flip, key)
            self.misses += 1
            if self.mode == "disk":
                self._store(self._disk_path(key), latent)
        self.memory[(index, flip)] = latent
        return latent

    def _store(self, path: Path, latent: torch.Tensor) -> None:
        import io

        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(latent.contiguous(), buf)
        atomic_write_bytes(path, buf.getvalue())

    def fill(self, samples: list[Sample], flips: tuple[bool, ...],
             progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> None:
        total = len(samples) * len(flips)
        done = 0
        for i, s in enumerate(samples):
            for flip in flips:
                self.get(i, s, flip)
                done += 1
                if progress:
                    progress(done, total)
            if should_stop and should_stop():
                return


def cache_dir_for(train_dir: Path) -> Path:
    return Path(train_dir) / ".lorabake" / "latents"


def disk_usage(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.pt")) if path.is_dir() else 0


