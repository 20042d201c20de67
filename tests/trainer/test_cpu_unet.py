"""The UNet on CPU: channels-last, and a large convolution over a small map through the GEMM
kernel: the same numbers as the default kernel, by shapes only, and what a CPU run trains."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.trainer import cpu_unet  # noqa: E402
from lorabake_tui.trainer.loop import Trainer  # noqa: E402
from lorabake_tui.trainer.run_config import load_run_config  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402

CL = torch.channels_last


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # 1024 x 1024 x 3 x 3 = 9.4M weights: large; 64 x 64 x 3 x 3: small
        self.big = torch.nn.Conv2d(1024, 1024, 3, padding=1)
        self.small = torch.nn.Conv2d(1024, 64, 3, padding=1)
        self.dilated = torch.nn.Conv2d(1024, 1024, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.small(self.big(x))


@pytest.fixture
def gemm_calls(monkeypatch) -> list[tuple]:
    real, calls = cpu_unet._gemm_conv, []

    def spy(x, w, *args):
        calls.append((tuple(x.shape), tuple(w.shape)))
        return real(x, w, *args)

    monkeypatch.setattr(cpu_unet, "_gemm_conv", spy)
    return calls


def test_a_large_convolution_over_a_small_map_takes_the_gemm_kernel(gemm_calls):
    torch.manual_seed(0)
    net = Net()
    plain = Net()
    plain.load_state_dict(net.state_dict())
    assert cpu_unet.tune_for_cpu(net) == 1  # `big` only: not the dilated one nor the small one
    assert net.big.weight.is_contiguous(memory_format=CL)
    for side, gemm in ((4, True), (16, True), (17, False)):  # 256 positions at most
        gemm_calls.clear()
        x = torch.randn(1, 1024, side, side)
        xa = x.contiguous(memory_format=CL).requires_grad_()
        xb = x.clone().requires_grad_()
        ya, yb = net(xa), plain(xb)
        ya.square().sum().backward()
        yb.square().sum().backward()
        assert gemm_calls == ([((1, 1024, side, side), (1024, 1024, 3, 3))] if gemm else [])
        assert torch.allclose(ya, yb, atol=1e-5, rtol=1e-4), side
        assert torch.allclose(xa.grad, xb.grad, atol=1e-4, rtol=1e-4), side
    gemm_calls.clear()
    net(torch.randn(2, 1024, 12, 12))  # 288 positions: the default kernel
    assert gemm_calls == []


def test_the_rule_is_by_shape_and_by_device():
    w = torch.empty(1280, 2560, 3, 3)
    assert cpu_unet.gemm_fits(torch.empty(1, 2560, 8, 8), w)
    assert cpu_unet.gemm_fits(torch.empty(4, 2560, 8, 8), w)
    assert not cpu_unet.gemm_fits(torch.empty(4, 2560, 16, 16), w)
    assert not cpu_unet.gemm_fits(torch.empty(1, 320, 8, 8), torch.empty(320, 320, 3, 3))
    assert not cpu_unet.gemm_fits(torch.empty(1, 2560, 8, 8, device="meta"), w)


def test_a_cpu_run_trains_a_channels_last_unet(tmp_path, monkeypatch):
    seen = {}
    real = cpu_unet.tune_for_cpu

    def tune(unet):
        seen["n"] = real(unet)
        seen["conv_in"] = unet.conv_in.weight.is_contiguous(memory_format=CL)
        return seen["n"]

    monkeypatch.setattr("lorabake_tui.trainer.loop.tune_for_cpu", tune)
    make_dataset(tmp_path, images=1, repeats=1)
    cfg = load_run_config(write_config(tmp_path, general__max_steps=1, general__batch_size=1))
    assert Trainer(cfg, tmp_path / "run").run().code == 0
    assert seen == {"n": 0, "conv_in": True}  # the tiny model has no large convolution
