"""The loss and noise formulas of kohya-compat section 7, as small tensor functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def snr(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return a / (1 - a)


def min_snr_weight(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, *,
                   v_prediction: bool = False) -> torch.Tensor:
    """Per-sample loss weight min(snr, gamma) / snr (epsilon) or / (snr + 1) (v-prediction)."""
    s = snr(alphas_cumprod, timesteps)
    clipped = torch.clamp(s, max=gamma)
    return clipped / (s + 1) if v_prediction else clipped / s


def offset_noise(noise: torch.Tensor, offset: float, generator=None) -> torch.Tensor:
    """noise + offset * N(0, 1) per sample and channel: lets the model shift overall
    brightness (darker darks, brighter lights)."""
    b, c = noise.shape[:2]
    extra = torch.randn((b, c, 1, 1), generator=generator, device=noise.device,
                        dtype=noise.dtype)
    return noise + offset * extra


def pyramid_noise(noise: torch.Tensor, iterations: int, discount: float,
                  generator=None) -> torch.Tensor:
    """Multires noise: add ever coarser upsampled noise (scale r ~ U(2, 4) per level, weight
    discount**i), stop at a 1-pixel level, renormalise to unit std."""
    b, c, h, w = noise.shape
    out = noise.clone()
    for i in range(iterations):
        r = float(torch.rand((), generator=generator)) * 2 + 2
        hn, wn = max(1, int(h / r**i)), max(1, int(w / r**i))
        coarse = torch.randn((b, c, hn, wn), generator=generator, device=noise.device,
                             dtype=noise.dtype)
        out = out + F.interpolate(coarse, size=(h, w), mode="bilinear") * discount**i
        if hn == 1 or wn == 1:
            break
    return out / out.std()


@torch.no_grad()
def max_norm_(pairs, max_norm: float) -> tuple[int, float]:
    """Scale weight norms: for each (up, down, scale) module, dW = up @ down * scale; if its
    Frobenius norm exceeds max_norm, shrink up and down by sqrt(ratio) each. Returns (modules
    scaled, mean norm) for the log. Conv weights are flattened to matrices."""
    scaled, total, n = 0, 0.0, 0
    for up, down, scale in pairs:
        u = up.reshape(up.shape[0], -1).float()
        d = down.reshape(down.shape[0], -1).float()
        norm = torch.linalg.matrix_norm(u @ d * scale)
        norm_v = float(norm)
        total += norm_v
        n += 1
        clamped = max(norm_v, max_norm / 2)
        ratio = min(clamped, max_norm) / clamped
        if ratio != 1:
            f = ratio ** 0.5
            up.mul_(f)
            down.mul_(f)
            scaled += 1
    return scaled, (total / n if n else 0.0)
