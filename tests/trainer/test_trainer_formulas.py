"""The training formulas against kohya-compat section 7, computed by hand."""

import math

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.trainer.formulas import (  # noqa: E402
    max_norm_,
    min_snr_weight,
    offset_noise,
    pyramid_noise,
)


def test_min_snr_weight_is_min_snr_gamma_over_snr():
    ac = torch.tensor([0.99, 0.9, 0.5, 0.1, 0.01])
    t = torch.tensor([0, 1, 2, 3, 4])
    w = min_snr_weight(ac, t, 5.0)
    for a, got in zip(ac.tolist(), w.tolist(), strict=True):
        snr = a / (1 - a)
        assert got == pytest.approx(min(snr, 5.0) / snr, rel=1e-5)
    # v-prediction divides by snr + 1
    wv = min_snr_weight(ac, t, 5.0, v_prediction=True)
    for a, got in zip(ac.tolist(), wv.tolist(), strict=True):
        snr = a / (1 - a)
        assert got == pytest.approx(min(snr, 5.0) / (snr + 1), rel=1e-5)
    assert w[3] == pytest.approx(1.0) and w[0] < 0.06  # low noise steps are damped


def test_noise_offset_adds_one_value_per_sample_and_channel():
    noise = torch.zeros(3, 4, 8, 8)
    g = torch.Generator().manual_seed(1)
    out = offset_noise(noise, 0.1, generator=g)
    expect = 0.1 * torch.randn((3, 4, 1, 1), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, expect.expand(3, 4, 8, 8))


def test_multires_noise_matches_the_pyramid_formula():
    base = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    out = pyramid_noise(base, 6, 0.3, generator=torch.Generator().manual_seed(5))
    # by hand, with the same draws in the same order
    g = torch.Generator().manual_seed(5)
    ref = base.clone()
    for i in range(6):
        r = float(torch.rand((), generator=g)) * 2 + 2
        size = max(1, int(16 / r**i))
        coarse = torch.randn((2, 4, size, size), generator=g)
        ref = ref + torch.nn.functional.interpolate(coarse, size=(16, 16),
                                                    mode="bilinear") * 0.3**i
        if size == 1:
            break
    ref = ref / ref.std()
    assert torch.allclose(out, ref)
    assert out.std().item() == pytest.approx(1.0, rel=1e-5)


def test_max_norm_scales_only_modules_over_the_limit():
    torch.manual_seed(0)
    big_up, big_down = torch.randn(8, 4) * 3, torch.randn(4, 8) * 3
    small_up, small_down = torch.randn(8, 4) * 0.01, torch.randn(4, 8) * 0.01
    conv_up, conv_down = torch.randn(6, 4, 1, 1), torch.randn(4, 3, 3, 3)
    before = (big_up.clone(), big_down.clone(), small_up.clone())
    scale = 0.5
    scaled, _ = max_norm_([(big_up, big_down, scale), (small_up, small_down, scale),
                           (conv_up, conv_down, scale)], 1.0)
    norm = torch.linalg.matrix_norm(big_up @ big_down * scale).item()
    assert norm == pytest.approx(1.0, rel=1e-4)
    # up and down shrink by the same factor sqrt(ratio)
    f = big_up[0, 0] / before[0][0, 0]
    assert big_down[0, 0] / before[1][0, 0] == pytest.approx(f.item(), rel=1e-5)
    assert torch.equal(small_up, before[2])  # under max/2 -> ratio 1, untouched
    conv = conv_up.reshape(6, 4) @ conv_down.reshape(4, 27) * scale
    assert torch.linalg.matrix_norm(conv).item() == pytest.approx(1.0, rel=1e-4)
    assert scaled == 2
    assert math.isfinite(_)


def lrs(kind, total=20, warmup=0, cycles=1):
    from lorabake_tui.trainer.optim import build_scheduler

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(kind, opt, total_steps=total, warmup_steps=warmup, cycles=cycles)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedulers_follow_their_shapes():
    assert set(lrs("constant")) == {1.0}
    warm = lrs("constant", warmup=5)  # constant with warmup steps becomes the warmup variant
    assert warm[0] == 0.0 and warm[4] == pytest.approx(0.8) and set(warm[5:]) == {1.0}
    lin = lrs("linear")
    assert lin[0] == 1.0 and lin[10] == pytest.approx(0.5)
    cos = lrs("cosine")
    assert cos[10] == pytest.approx(0.5) and cos[19] < 0.01
    restarts = lrs("cosine_with_restarts", cycles=2)
    assert restarts[9] < 0.05 and restarts[10] == pytest.approx(1.0)  # back up at the restart
    warm_restarts = lrs("cosine_annealing_warm_restarts", cycles=4)  # T_0 = 5 steps
    assert warm_restarts[5] == 1.0 and warm_restarts[4] < 0.2
    poly = lrs("polynomial")
    assert poly[0] == 1.0 and poly[-1] < 0.1
