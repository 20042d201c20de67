"""How the UNet's tensors are laid out and which convolution kernels run on CPU: one rule for
every CPU run of the trainer.

Two levers, each measured on the side-by-side config's training steps (bench/README.md,
"The UNet on CPU"):
- channels-last activations and weights (faster with or without the second lever; the
  transformer blocks' reshapes between image and token layout are then views);
- PyTorch's default CPU convolution (oneDNN) lays the weight out again on every call. For a
  large weight over a small feature map that costs more than the arithmetic: SD 1.5's
  1280-2560-channel 3x3 convolutions at 4x4 to 8x8 (the lowest levels of a 128 px image)
  ran forward + backward 2-4x slower than PyTorch's im2col + GEMM kernel, and about even at
  16x16. Those go through the GEMM kernel, which works on channels-last tensors as they are.
Both depend on shapes only, so a run and its resume pick the same kernels. Off the CPU,
nothing changes. The render engine keeps the plain layout: a whole 512 px UNet forward was
1-7 % slower with this rule.
"""

from __future__ import annotations

import types

import torch

# a convolution uses the GEMM kernel on CPU when its weight has at least this many elements
# and its input at most this many positions (batch x height x width)
GEMM_MIN_WEIGHT = 8_000_000
GEMM_MAX_POSITIONS = 256

_gemm_conv = getattr(torch.ops.aten, "thnn_conv2d", None)


def gemm_fits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dim() == 4 and weight.numel() >= GEMM_MIN_WEIGHT
            and x.shape[0] * x.shape[2] * x.shape[3] <= GEMM_MAX_POSITIONS)


def _forward(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if gemm_fits(x, self.weight):
        return _gemm_conv(x, self.weight, self.kernel_size, self.bias, self.stride,
                          self.padding)
    return self._conv_forward(x, self.weight, self.bias)


def tune_for_cpu(unet: torch.nn.Module) -> int:
    """Lay `unet` out channels-last and give each plain convolution that the GEMM kernel can
    run (no groups, no dilation, zero padding by numbers) the choice above; returns how many
    got it. Call it before adapters are attached: they call the convolutions they wrap."""
    unet.to(memory_format=torch.channels_last)
    if _gemm_conv is None:
        return 0
    n = 0
    for m in unet.modules():
        if (type(m) is torch.nn.Conv2d and m.groups == 1 and m.dilation == (1, 1)
                and m.padding_mode == "zeros" and isinstance(m.padding, tuple)
                and m.weight.numel() >= GEMM_MIN_WEIGHT):
            m.forward = types.MethodType(_forward, m)
            n += 1
    return n
