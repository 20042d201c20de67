"""The render engine on CPU with the built-in tiny SD1.5-shaped model: LoRA files applied in
place agree with diffusers' own loader (LoRA, LoCon) and with the trainer's adapter-wrapped
model (LoHa, LoKr, IA3, DyLoRA); weight 0 and no LoRA are the base bit for bit; a seed gives
the same pixels whatever came before; bad files are refused by name and change nothing.

The LoRA files are written by lorabake's own export (network.kohya_state) from adapters
attached to the tiny model and filled with seeded random values, so every module type the
trainer saves is covered without a training run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.base.errors import LorabakeError  # noqa: E402
from lorabake_tui.trainer.base_model import BUILTIN_TINY, load_base_model  # noqa: E402
from lorabake_tui.trainer.render import lora_apply  # noqa: E402
from lorabake_tui.trainer.render.engine import RenderEngine  # noqa: E402
from lorabake_tui.trainer.render.samplers import (  # noqa: E402
    canonical_name,
    make_scheduler,
    sampler_names,
)

from .test_trainer_run import _one_thread, outputs  # noqa: E402, F401 - autouse fixture

# per type: (std of the random adapter values, conv_dim): deltas of a few percent of the
# weights, enough to move the outputs well past the tolerances
KINDS = {"lora": (0.15, 0), "locon": (0.15, 2), "loha": (0.4, 2), "lokr": (0.3, 2),
         "ia3": (0.3, 0), "dylora": (0.15, 0)}
TOL = 1e-4
pytestmark = [  # numpy 2 deprecations inside diffusers' schedulers, thousands per render
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def make_lora(path, kind: str, *, seed: int = 0):
    """A file of `kind` saved by lorabake's export from a tiny model whose adapters hold
    seeded random values; returns (path, that adapter-wrapped model)."""
    from safetensors.torch import save_file

    from lorabake_tui.trainer.network import attach, kohya_state, lora_configs, trainable

    std, conv_dim = KINDS[kind]
    model = load_base_model(BUILTIN_TINY)
    net = lora_configs(kind, 4, 2.0, conv_dim, 1.0, 0.0, unet=True, text_encoder=True,
                       dylora_unit=2)
    attach(net, model.unet, model.text_encoder)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in [*trainable(model.unet), *trainable(model.text_encoder)]:
            p.copy_(torch.randn(p.shape, generator=g) * std)
    model.unet.eval()
    model.text_encoder.eval()
    state = kohya_state(net, model.unet, model.text_encoder, torch.float32)
    save_file(state, str(path), metadata={"ss_network_module": net.module})
    return path, model


@pytest.fixture(scope="module")
def engine():
    return RenderEngine.load(BUILTIN_TINY, device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """make_lora, each (kind, seed) made once per module: (path, wrapped model)."""
    folder = tmp_path_factory.mktemp("loras")
    made = {}

    def get(kind: str, seed: int = 0):
        if (kind, seed) not in made:
            made[kind, seed] = make_lora(folder / f"{kind}-{seed}.safetensors", kind, seed=seed)
        return made[kind, seed]
    return get


def max_diff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def weights(engine) -> dict[str, torch.Tensor]:
    return {f"unet.{k}": v.clone() for k, v in engine.unet.state_dict().items()} | \
        {f"te.{k}": v.clone() for k, v in engine.text_encoder.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["lora", "locon"])
def test_lora_and_locon_match_diffusers_loader_at_half_and_full_weight(files, engine, kind):
    from diffusers import StableDiffusionPipeline

    path, _ = files(kind)
    fresh = load_base_model(BUILTIN_TINY)
    base = outputs(fresh)
    pipe = StableDiffusionPipeline(vae=fresh.vae, text_encoder=fresh.text_encoder,
                                   tokenizer=fresh.tokenizer, unet=fresh.unet,
                                   scheduler=fresh.noise_scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(path), adapter_name="file")
    for w in (0.5, 1.0):
        pipe.set_adapters(["file"], adapter_weights=[w])
        want = outputs(fresh)
        engine.set_lora(path, w)
        got = outputs(engine)
        assert max_diff(want, base) > 1e-2  # the file really changes both outputs
        assert min(float((x - y).abs().max()) for x, y in zip(want, base, strict=True)) > 1e-3
        assert max_diff(got, want) <= TOL
    engine.set_lora(None)


@pytest.mark.parametrize("kind", ["loha", "lokr", "ia3", "dylora", "locon"])
def test_each_type_matches_the_trainers_wrapped_model_and_is_linear_in_weight(files, engine,
                                                                             kind):
    path, wrapped = files(kind, 1)
    engine.set_lora(None)
    base_w = weights(engine)
    base = outputs(engine)
    want = outputs(wrapped)
    engine.set_lora(path, 1.0)
    full = weights(engine)
    assert min(float((x - y).abs().max()) for x, y in zip(want, base, strict=True)) > 1e-3
    assert max_diff(outputs(engine), want) <= TOL
    engine.set_lora(path, 0.5)
    half = weights(engine)
    touched = [k for k in base_w if not torch.equal(full[k], base_w[k])]
    assert touched
    for k in touched:  # W(0.5) - W0 = 0.5 (W(1) - W0)
        assert torch.allclose(half[k] - base_w[k], 0.5 * (full[k] - base_w[k]), atol=1e-6)
    engine.set_lora(None)
    assert same_weights(weights(engine), base_w)


def test_weight_zero_and_no_lora_are_the_base_bitwise_and_weight_one_differs(files, engine):
    (lora, _), (loha, _) = files("lora"), files("loha")
    engine.set_lora(None)
    base_w = weights(engine)
    args = {"seed": 3, "steps": 3, "width": 64, "height": 64}
    base = engine.render("mychar, smile", **args)
    engine.set_lora(lora, 1.0)
    one = engine.render("mychar, smile", **args)
    assert not (one.latents == base.latents).all()
    assert one.image.tobytes() != base.image.tobytes()
    engine.set_lora(lora, 0.0)
    assert same_weights(weights(engine), base_w)
    zero = engine.render("mychar, smile", **args)
    assert (zero.latents == base.latents).all() and zero.image.tobytes() == base.image.tobytes()
    # LoHa adapts the resnets too, LoRA only attention: the switch must restore those
    engine.set_lora(loha, 0.7)
    engine.set_lora(lora, 1.0)
    assert (engine.render("mychar, smile", **args).latents == one.latents).all()
    engine.set_lora(None)
    assert same_weights(weights(engine), base_w)
    assert engine.lora is None
    assert engine.set_lora(lora, 1.0) == engine.last_set_lora_seconds >= 0
    assert engine.lora == (lora, 1.0)
    engine.set_lora(None)


def test_the_same_seed_gives_the_same_pixels_whatever_came_before(engine):
    engine.set_lora(None)
    for sampler in ("Euler a", "DPM++ 2M SDE Karras"):
        args = {"steps": 3, "width": 64, "height": 48, "sampler": sampler}
        first = engine.render("a cat", negative="blurry", seed=5, **args)
        other = engine.render("a cat", negative="blurry", seed=6, **args)
        engine.render("a dog", seed=5, steps=2, width=64, height=64, sampler="DDIM")
        torch.manual_seed(1234)  # the global generator plays no part
        again = engine.render("a cat", negative="blurry", seed=5, **args)
        assert first.image.size == (64, 48) and first.image.mode == "RGB"
        assert first.latents.shape == (4, 6, 8) and first.latents.dtype == "float32"
        assert first.image.tobytes() == again.image.tobytes()
        assert (first.latents == again.latents).all()
        assert not (first.latents == other.latents).all()


def test_clip_skip_and_cfg_change_the_render(engine):
    engine.set_lora(None)
    args = {"seed": 2, "steps": 2, "width": 64, "height": 64}
    plain = engine.render("a cat", **args).latents
    assert not (engine.render("a cat", cfg=1.0, **args).latents == plain).all()
    skip2 = RenderEngine(engine.vae, engine.text_encoder, engine._pipe.tokenizer, engine.unet,
                         engine._scheduler_config, device=engine.device, clip_skip=2,
                         switchable=False)
    assert not (skip2.render("a cat", **args).latents == plain).all()


def test_sampler_names_map_to_schedulers_case_insensitively(engine):
    names = sampler_names()
    for required in ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "UniPC",
                     "Heun"):
        assert required in names
    assert canonical_name("  euler   A ") == "Euler a"
    assert canonical_name("dpm++ 2m karras") == "DPM++ 2M Karras"
    config = load_base_model(BUILTIN_TINY).noise_scheduler.config
    karras = make_scheduler("DPM++ 2M Karras", config)
    assert type(karras).__name__ == "DPMSolverMultistepScheduler"
    assert karras.config.use_karras_sigmas and karras.config.algorithm_type == "dpmsolver++"
    assert not make_scheduler("DPM++ 2M", config).config.use_karras_sigmas
    assert type(make_scheduler("euler a", config)).__name__ == "EulerAncestralDiscreteScheduler"
    assert make_scheduler("DDIM", config).config.timestep_spacing == "leading"
    assert make_scheduler("Euler", config).config.beta_schedule == "scaled_linear"
    with pytest.raises(LorabakeError) as err:
        make_scheduler("Euler b", config)
    assert "'Euler b'" in err.value.message and "DPM++ 2M Karras" in err.value.hint
    with pytest.raises(LorabakeError):
        engine.render("a cat", seed=1, steps=1, width=64, height=64, sampler="LMS Karras")
    engine.set_lora(None)
    for name in names:  # every one renders
        r = engine.render("a cat", seed=1, steps=2, width=32, height=32, sampler=name)
        assert r.latents.shape == (4, 4, 4) and bool((abs(r.latents) < 1e4).all()), name


def write_kohya(path, tensors: dict[str, torch.Tensor]):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


Q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"  # Linear 8 -> 8


def lora_pair(name: str, down_shape, up_shape) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"{name}.lora_down.weight": torch.randn(down_shape, generator=g),
            f"{name}.lora_up.weight": torch.randn(up_shape, generator=g),
            f"{name}.alpha": torch.tensor(1.0)}


@pytest.mark.parametrize("tensors,words", [
    (lora_pair("lora_unet_no_such_block_to_q", (2, 8), (8, 2)),
     ["lora_unet_no_such_block_to_q", "SD1.5"]),
    (lora_pair(Q, (2, 16), (8, 2)), [Q, "(8, 16)", "(8, 8)"]),
    ({**lora_pair(Q, (2, 8), (8, 2)), f"{Q}.dora_scale": torch.ones(1, 8)},
     [f"{Q}.dora_scale"]),
    ({f"{Q}.lora_down.weight": torch.ones(2, 8)}, [Q, "incomplete"]),
    (lora_pair("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", (2, 8), (8, 2)),
     ["lora_te2_", "SDXL"]),
    ({"some_tensor": torch.ones(2)}, ["some_tensor"]),
], ids=["unknown-module", "shape", "unknown-param", "incomplete", "sdxl", "loose-key"])
def test_bad_files_are_refused_by_name_and_change_nothing(tmp_path, files, engine, tensors,
                                                        words):
    good, _ = files("lora")
    engine.set_lora(good, 1.0)
    before = weights(engine)
    bad = write_kohya(tmp_path / "bad.safetensors", tensors)
    with pytest.raises(LorabakeError) as err:
        engine.set_lora(bad, 1.0)
    text = str(err.value)
    assert str(bad) in text and all(w in text for w in words), text
    assert same_weights(weights(engine), before) and engine.lora == (good, 1.0)
    engine.set_lora(None)


def test_missing_and_pickle_files_are_refused(tmp_path, engine):
    with pytest.raises(LorabakeError, match="no such file"):
        engine.set_lora(tmp_path / "gone.safetensors")
    pickled = tmp_path / "old.ckpt"
    pickled.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(LorabakeError, match="pickle"):
        engine.set_lora(pickled)


def test_switching_reads_each_file_once_and_rereads_a_changed_one(tmp_path, engine,
                                                                   monkeypatch):
    a, _ = make_lora(tmp_path / "a.safetensors", "lora", seed=1)
    b, _ = make_lora(tmp_path / "b.safetensors", "locon", seed=2)
    reads = []
    real = lora_apply.read_lora_deltas

    def counting(path, *args, **kw):
        reads.append(path.name)
        return real(path, *args, **kw)

    monkeypatch.setattr("lorabake_tui.trainer.render.engine.read_lora_deltas", counting)
    unet = engine.unet
    for path, w in ((a, 1.0), (a, 0.4), (b, 0.7), (a, 0.0), (b, 1.0), (a, 1.0)):
        engine.set_lora(path, w)
    assert reads == ["a.safetensors", "b.safetensors"]
    assert engine.unet is unet
    at_a = weights(engine)
    make_lora(a, "lora", seed=3)  # an epoch file saved again under the same name
    engine.set_lora(a, 1.0)
    assert reads[-1] == "a.safetensors" and len(reads) == 3
    assert not same_weights(weights(engine), at_a)
    engine.set_lora(None)


def test_locon_with_a_cp_middle_is_the_three_convolutions_composed():
    """`lora_mid` (LyCORIS's CP LoCon): down 1x1, mid kxk, up 1x1 applied in turn equal
    one convolution with the delta."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    down, mid = torch.randn(2, 5, 1, 1, generator=g), torch.randn(2, 2, 3, 3, generator=g)
    up = torch.randn(7, 2, 1, 1, generator=g)
    m = lora_apply.ModuleFactors("x", "lora", {"lora_down.weight": down, "lora_mid.weight": mid,
                                               "lora_up.weight": up,
                                               "alpha": torch.tensor(1.0)})
    x = torch.randn(1, 5, 6, 6, generator=g)
    steps = F.conv2d(F.conv2d(F.conv2d(x, down), mid, padding=1), up)
    delta = m.delta(torch.zeros(7, 5, 3, 3))
    assert torch.allclose(F.conv2d(x, delta, padding=1), steps * 0.5, atol=1e-5)


def test_an_engine_over_live_modules_refuses_to_switch(engine):
    live = RenderEngine.from_modules(engine.vae, engine.text_encoder, engine._pipe.tokenizer,
                                     engine.unet, engine._scheduler_config, device="cpu")
    with pytest.raises(LorabakeError, match="cannot switch"):
        live.set_lora(None)
    assert live.render("a", seed=1, steps=1, width=32, height=32).image.size == (32, 32)


def test_the_cp_forms_of_loha_and_lokr_are_the_composed_convolutions():
    """`hada_t1/t2` and `lokr_t2` (Tucker cores): each factor is a down 1x1, a kxk core and an
    up 1x1 composed, the form checked against real convolutions above."""
    g = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(shape, generator=g)

    def composed(core, b, a):  # b (r, in), a (r, out) as LyCORIS stores them
        return lora_apply.ModuleFactors("x", "lora", {
            "lora_down.weight": b[:, :, None, None], "lora_mid.weight": core,
            "lora_up.weight": a.T[:, :, None, None]}).delta(torch.zeros(a.shape[1], b.shape[1],
                                                                        3, 3))

    t = {"hada_w1_a": rand(2, 6), "hada_w1_b": rand(2, 4), "hada_t1": rand(2, 2, 3, 3),
         "hada_w2_a": rand(2, 6), "hada_w2_b": rand(2, 4), "hada_t2": rand(2, 2, 3, 3),
         "alpha": torch.tensor(1.0)}
    loha = lora_apply.ModuleFactors("x", "loha", t).delta(torch.zeros(6, 4, 3, 3))
    want = composed(t["hada_t1"], t["hada_w1_b"], t["hada_w1_a"]) * \
        composed(t["hada_t2"], t["hada_w2_b"], t["hada_w2_a"])
    assert torch.allclose(loha, want * 1.0 / 2, atol=1e-5)  # alpha / rank
    t = {"lokr_w1": rand(2, 2), "lokr_w2_a": rand(2, 3), "lokr_w2_b": rand(2, 4),
         "lokr_t2": rand(2, 2, 3, 3), "alpha": torch.tensor(4.0)}
    lokr = lora_apply.ModuleFactors("x", "lokr", t).delta(torch.zeros(6, 8, 3, 3))
    w2 = composed(t["lokr_t2"], t["lokr_w2_b"], t["lokr_w2_a"]).contiguous()
    assert torch.allclose(lokr, torch.kron(t["lokr_w1"][:, :, None, None], w2) * 4 / 2,
                          atol=1e-5)
