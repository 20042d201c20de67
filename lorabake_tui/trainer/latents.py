"""VAE latents, computed once per image (and once more mirrored with flip_aug), kept in
memory or on disk. A disk entry's name is a hash of everything that shapes it (the file's
path, size and mtime, its bucket and resize, the VAE), so a changed image, bucket,
resolution or VAE simply misses the cache instead of training on stale latents."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..core.base.atomic import atomic_write_bytes
from ..core.base.errors import LorabakeError
from .data import Sample, load_pixels

# "2": latents of the stored pixels (EXIF orientation ignored, as kohya); "1" ones were made
# from upright pixels and must not be reused
CACHE_VERSION = "2"


def cache_key(sample: Sample, vae_id: str, flip: bool) -> str:
    st = sample.path.stat()
    raw = "|".join(map(str, (CACHE_VERSION, sample.path.resolve(), st.st_size, st.st_mtime_ns,
                             sample.bucket, sample.resized, vae_id, int(flip))))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@torch.no_grad()
def encode_pixels(vae, pixels: torch.Tensor,
                  generator: torch.Generator | list[torch.Generator] | None = None
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
            latent = self._load(key)
            if latent is not None:
                self.hits += 1
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
             should_stop: Callable[[], bool] | None = None, *, batch: int = 4) -> None:
        """Cache every (image, flip): disk hits first, then the misses encoded `batch` at a
        time within each bucket, the next batch's images decoded in threads meanwhile."""
        total = len(samples) * len(flips)
        done = 0
        todo: dict[tuple[int, int], list[tuple[int, bool, str]]] = {}
        for i, s in enumerate(samples):
            for flip in flips:
                if (i, flip) in self.memory:
                    done += 1
                    continue
                key = cache_key(s, self.vae_id, flip)
                latent = self._load(key) if self.mode == "disk" else None
                if latent is not None:
                    self.memory[(i, flip)] = latent
                    self.hits += 1
                    done += 1
                else:
                    todo.setdefault(s.bucket, []).append((i, flip, key))
        if progress and done:
            progress(done, total)
        chunks = [items[k:k + batch] for _, items in sorted(todo.items())
                  for k in range(0, len(items), batch)]
        if not chunks:
            return

        def pixels(chunk):
            return [load_pixels(samples[i], flip=f) for i, f, _ in chunk]

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            ahead = pool.submit(pixels, chunks[0])
            for n, chunk in enumerate(chunks):
                decoded = ahead.result()
                if n + 1 < len(chunks):
                    ahead = pool.submit(pixels, chunks[n + 1])
                x = torch.from_numpy(np.stack(decoded))
                gens = [_sample_generator(key, self.vae.device) for _, _, key in chunk]
                latents = encode_pixels(self.vae, x, gens).cpu()
                for (i, flip, key), latent in zip(chunk, latents, strict=True):
                    if not torch.isfinite(latent).all():
                        raise LorabakeError(f"{samples[i].path}: the VAE gave NaN/inf latents",
                                            "check the image; with fp16 try bf16")
                    latent = latent.clone()  # its own storage, not a view of the batch
                    self.memory[(i, flip)] = latent
                    self.misses += 1
                    if self.mode == "disk":
                        self._store(self._disk_path(key), latent)
                done += len(chunk)
                if progress:
                    progress(done, total)
                if should_stop and should_stop():
                    return

    def _load(self, key: str) -> torch.Tensor | None:
        try:
            return torch.load(self._disk_path(key), weights_only=True)
        except (OSError, EOFError, RuntimeError):
            return None  # missing or damaged: recompute


def disk_usage(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.pt")) if path.is_dir() else 0


