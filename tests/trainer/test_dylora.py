"""DyLoRA trained by lorabake with kohya's semantics: per layer and step a random unit-sized
slice of the ranks is trained, the update scaled by alpha/dim * sqrt(dim / (b + unit)); the
file is an ordinary kohya LoRA at full dim that diffusers loads to the trained model."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.run import exit_codes  # noqa: E402
from lorabake_tui.trainer.__main__ import main as train_main  # noqa: E402

from ..support.train_fixtures import make_dataset, write_config  # noqa: E402
from .test_trainer_run import (  # noqa: E402
    _one_thread,  # noqa: F401 - autouse: one torch thread, no test hooks set
    assert_reproduces,
    outputs,
    read_lora,
    trained_model,
)


def test_one_layer_trains_one_unit_slice_with_kohyas_scale():
    from lorabake_tui.trainer.dylora import DyLoRALayer

    torch.manual_seed(0)
    base = torch.nn.Linear(6, 5)
    layer = DyLoRALayer(base, dim=8, alpha=4, unit=2)
    with torch.no_grad():
        for p in layer.lora_dy_up:
            p.normal_()
    x = torch.randn(3, 6)
    down, up = layer.down().detach(), layer.up().detach()
    # eval: a plain LoRA at full rank, scale alpha / dim
    layer.eval()
    want = base(x) + (x @ down.T @ up.T) * 4 / 8
    assert torch.allclose(layer(x), want, atol=1e-6)
    # training: all ranks, scale alpha/dim * sqrt(dim / (b + unit)), only block b/unit learns
    layer.train()
    opt = torch.optim.AdamW(list(layer.lora_dy_down) + list(layer.lora_dy_up), lr=0.1,
                            weight_decay=0.1)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        b = int(torch.randint(0, 8, (1,)).item())
        b -= b % 2
        torch.manual_seed(seed)
        before = [p.detach().clone() for p in (*layer.lora_dy_down, *layer.lora_dy_up)]
        down, up = layer.down().detach(), layer.up().detach()
        out = layer(x)
        want = base(x) + (x @ down.T @ up.T) * 4 / 8 * math.sqrt(8 / (b + 2))
        assert torch.allclose(out, want, atol=1e-6)
        out.sum().backward()
        opt.step()
        after = [p.detach() for p in (*layer.lora_dy_down, *layer.lora_dy_up)]
        changed = {i % 4 for i, (p, q) in enumerate(zip(before, after, strict=True))
                   if not torch.equal(p, q)}
        assert changed == {b // 2}  # the others get no gradient: no momentum, no decay
        opt.zero_grad(set_to_none=True)
        seen.add(b)
    assert seen == {0, 2, 4, 6}


def test_dylora_run_writes_a_full_dim_kohya_lora_that_diffusers_loads_exactly(tmp_path):
    from diffusers import StableDiffusionPipeline

    from lorabake_tui.trainer.base_model import load_base_model

    make_dataset(tmp_path, images=2)
    cfg = write_config(tmp_path, general__max_steps=3, saving__save_state=True,
                       network__type="dylora", network__dim=8, network__alpha=4,
                       network__dylora_unit=2, general__unet_lr=5e-2,
                       general__text_encoder_lr=5e-2)
    run_dir = tmp_path / "out" / "r"
    assert train_main([str(cfg), "--run-dir", str(run_dir)]) == exit_codes.DONE
    tensors, meta = read_lora(run_dir / "tiny.safetensors")
    assert meta["ss_network_module"] == "networks.dylora"
    assert json.loads(meta["ss_network_args"]) == {"unit": "2"}
    alphas = [k for k in tensors if k.endswith(".alpha")]
    assert sum(k.startswith("lora_unet_") for k in alphas) == 192
    assert sum(k.startswith("lora_te_text_model_") for k in alphas) == 72
    assert all(float(tensors[k]) == 4.0 for k in alphas)
    down = tensors["lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"]
    assert down.shape[0] == 8
    trained = trained_model(run_dir, run_dir / "config.toml")
    trained.unet.eval()
    trained.text_encoder.eval()
    fresh = load_base_model("builtin:tiny-sd15")
    base = outputs(fresh)
    pipe = StableDiffusionPipeline(vae=fresh.vae, text_encoder=fresh.text_encoder,
                                   tokenizer=fresh.tokenizer, unet=fresh.unet,
                                   scheduler=fresh.noise_scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(run_dir / "tiny.safetensors"))
    assert_reproduces(trained, fresh, base)
