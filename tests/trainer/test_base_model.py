"""Loading the base model: built-in tiny model, diffusers folder, single-file checkpoints."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.captions.clip_tokenizer import clip_tokenizer  # noqa: E402
from lorabake_tui.trainer.base_model import (  # noqa: E402
    BUILTIN_TINY,
    SD15_CONFIG_DATA,
    BaseModelError,
    load_base_model,
    sd15_config_dir,
)

from ..support.ldm_checkpoint import ldm_state_dict, write_ldm_safetensors  # noqa: E402

KOHYA_TARGETS = re.compile(r".*attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\."
                           r"(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)))")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    # module scope: it must be in place before the module-scoped model is built, so the
    # materialised config folder goes to a test cache, never ~/.cache
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="module")
def tiny():
    return load_base_model(BUILTIN_TINY)


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
    assert not attempts, f"network access attempted: {attempts}"


def _outputs(model):
    """UNet, text encoder and VAE outputs on fixed inputs."""
    gen = torch.Generator().manual_seed(0)
    ids = model.tokenizer(["a photo of a dog, 1girl"], padding="max_length", max_length=77,
                          truncation=True, return_tensors="pt").input_ids
    image = torch.randn(1, 3, 64, 128, generator=gen)
    latents = torch.randn(1, 4, 8, 16, generator=gen)
    with torch.no_grad():
        hidden = model.text_encoder(ids).last_hidden_state
        noise_pred = model.unet(latents, torch.tensor([500]), encoder_hidden_states=hidden).sample
        moments = model.vae.encode(image).latent_dist.mean
        decoded = model.vae.decode(latents).sample
    return {"te": hidden, "unet": noise_pred, "vae_enc": moments, "vae_dec": decoded}


def _assert_close(a, b, tol=1e-6):
    for key in a:
        diff = (a[key] - b[key]).abs().max().item()
        assert diff <= tol, f"{key}: max abs diff {diff}"


def _tiny_config_dir(model, dest: Path) -> Path:
    """A config-only folder like the shipped SD1.5 one, with the tiny model's configs."""
    dest.mkdir(parents=True)
    shutil.copy(SD15_CONFIG_DATA / "model_index.json", dest / "model_index.json")
    model.unet.save_config(dest / "unet")
    model.vae.save_config(dest / "vae")
    model.text_encoder.config.save_pretrained(dest / "text_encoder")
    model.noise_scheduler.save_config(dest / "scheduler")
    clip_tokenizer().write_hf_files(dest / "tokenizer")
    return dest


# --- built-in --------------------------------------------------------------------------------

def test_builtin_is_deterministic_and_leaves_the_rng_alone(tiny):
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    again = load_base_model(BUILTIN_TINY)
    assert torch.equal(torch.get_rng_state(), before)
    for a, b in ((tiny.unet, again.unet), (tiny.vae, again.vae),
                 (tiny.text_encoder, again.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert again.vae_id == tiny.vae_id
    assert (again.name, again.sha256, again.legacy_hash) == (BUILTIN_TINY, None, None)


def test_builtin_has_sd15_layout(tiny):
    targets = [n for n, _ in tiny.unet.named_modules() if KOHYA_TARGETS.fullmatch(n)]
    assert len(targets) == 192
    assert tiny.text_encoder.config.vocab_size == 49408
    assert tiny.tokenizer.model_max_length == 77
    assert tiny.tokenizer.pad_token_id == 49407
    for text in ("a photo of a dog", "1girl, hatsune_miku, (smile:1.2)", "Café 🐶 &amp;"):
        core = clip_tokenizer()
        assert tiny.tokenizer(text).input_ids == [core.bos_id, *core.encode(text), core.eos_id]
    sched = tiny.noise_scheduler.config
    assert (sched.num_train_timesteps, sched.beta_schedule, sched.beta_start, sched.beta_end,
            sched.prediction_type, sched.clip_sample) == (1000, "scaled_linear", 0.00085, 0.012,
                                                          "epsilon", False)


def test_builtin_works_at_any_multiple_of_64(tiny):
    hidden = torch.zeros(1, 77, 32)
    with torch.no_grad():
        for h, w in ((64, 64), (192, 128)):
            latents = tiny.vae.encode(torch.zeros(1, 3, h, w)).latent_dist.mean
            assert latents.shape == (1, 4, h // 8, w // 8)
            out = tiny.unet(latents, torch.tensor([1]), encoder_hidden_states=hidden).sample
            assert out.shape == latents.shape


def test_builtin_dtype():
    half = load_base_model(BUILTIN_TINY, dtype=torch.bfloat16)
    assert {p.dtype for p in half.unet.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in half.text_encoder.parameters()} == {torch.bfloat16}


# --- diffusers folder ------------------------------------------------------------------------

def test_diffusers_folder_round_trip(tiny, tmp_path, no_network):
    folder = tmp_path / "my-model"
    folder.mkdir()
    shutil.copy(SD15_CONFIG_DATA / "model_index.json", folder / "model_index.json")
    tiny.unet.save_pretrained(folder / "unet")
    tiny.vae.save_pretrained(folder / "vae")
    tiny.text_encoder.save_pretrained(folder / "text_encoder")
    tiny.tokenizer.save_pretrained(folder / "tokenizer")
    tiny.noise_scheduler.save_pretrained(folder / "scheduler")
    loaded = load_base_model("my-model", base_dir=tmp_path)
    assert loaded.name == "my-model"
    assert loaded.sha256 is None and loaded.legacy_hash is None
    assert loaded.vae_id.startswith("vae-")
    for a, b in ((tiny.unet, loaded.unet), (tiny.vae, loaded.vae),
                 (tiny.text_encoder, loaded.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    _assert_close(_outputs(tiny), _outputs(loaded))
    assert loaded.noise_scheduler.config.prediction_type == "epsilon"


# --- single file -----------------------------------------------------------------------------

def test_single_file_safetensors(tiny, tmp_path, no_network):
    cfg = _tiny_config_dir(tiny, tmp_path / "cfg")
    ckpt = write_ldm_safetensors(tmp_path / "tiny.safetensors", tiny.unet, tiny.vae,
                                 tiny.text_encoder)
    loaded = load_base_model("tiny.safetensors", base_dir=tmp_path, config_dir=cfg)
    want = _outputs(tiny)
    _assert_close(want, _outputs(loaded))
    data = ckpt.read_bytes()
    assert loaded.name == "tiny.safetensors"
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()
    assert loaded.legacy_hash == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]

    again = load_base_model(str(ckpt), config_dir=cfg)
    assert again.vae_id == loaded.vae_id  # same VAE weights, same id

    with torch.no_grad():
        again.vae.decoder.conv_out.bias.add_(1)
    write_ldm_safetensors(tmp_path / "other.safetensors", tiny.unet, again.vae,
                          tiny.text_encoder)
    other = load_base_model(str(tmp_path / "other.safetensors"), config_dir=cfg)
    assert other.vae_id != loaded.vae_id


@pytest.mark.parametrize(("drop", "what"), [
    ("model.diffusion_model.out.2.weight", "UNet"),
    ("first_stage_model.decoder.conv_out.bias", "VAE"),
    ("cond_stage_model.transformer.text_model.final_layer_norm.weight", "text encoder"),
])
def test_single_file_with_missing_weights(tiny, tmp_path, drop, what):
    from safetensors.torch import save_file

    cfg = _tiny_config_dir(tiny, tmp_path / "cfg")
    state = ldm_state_dict(tiny.unet, tiny.vae, tiny.text_encoder)
    del state[drop]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(BaseModelError, match=f"missing {what} weights") as err:
        load_base_model(str(tmp_path / "cut.safetensors"), config_dir=cfg)
    assert str(tmp_path / "cut.safetensors") in err.value.message
    assert "download it again" in err.value.hint or "full SD1.5" in err.value.hint


def test_single_file_uses_the_shipped_sd15_config_offline(tiny, tmp_path, no_network):
    # no config_dir: the shipped SD1.5 configs are materialised and used, without the Hub;
    # the tiny weights then do not fit SD1.5's shapes, which must be a clear error
    ckpt = write_ldm_safetensors(tmp_path / "tiny.safetensors", tiny.unet, tiny.vae,
                                 tiny.text_encoder)
    with pytest.raises(BaseModelError, match="UNet does not fit the SD1.5 layout") as err:
        load_base_model(str(ckpt))
    assert str(ckpt) in err.value.message


# --- the shipped SD1.5 configs ---------------------------------------------------------------

def test_shipped_sd15_configs_have_sd15_sizes():
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(SD15_CONFIG_DATA, subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIG_DATA,
                                                                  subfolder="vae"))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(SD15_CONFIG_DATA / "text_encoder"))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert sum(p.numel() for p in te.parameters()) == 123_060_480
    assert len([n for n, _ in unet.named_modules() if KOHYA_TARGETS.fullmatch(n)]) == 192
    sched = json.loads((SD15_CONFIG_DATA / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["beta_start"], sched["beta_end"], sched["beta_schedule"]) == (
        0.00085, 0.012, "scaled_linear")


def test_config_dir_is_materialised_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = sd15_config_dir()
    assert first.parent == tmp_path / "lorabake"
    assert (first / "tokenizer" / "vocab.json").is_file()
    assert (first / "unet" / "config.json").is_file()
    assert sd15_config_dir() == first
    # no temp folders left behind
    assert [p.name for p in first.parent.iterdir()] == [first.name]


# --- errors ----------------------------------------------------------------------------------

def _sdxl_like(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding"
               ".weight": torch.zeros(2, 2),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}, str(path))
    return path


def _random_bytes(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 64)
    return path


def _truncated(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"model.diffusion_model.x": torch.zeros(1000)}, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    return path


def _vae_only(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"encoder.conv_in.weight": torch.zeros(2)}, str(path))
    return path


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: p / "missing.safetensors", "does not exist"),
    (lambda p: _random_bytes(p / "junk.safetensors"), "not a readable"),
    (lambda p: _truncated(p / "cut.safetensors"), "not a readable"),
    (lambda p: _sdxl_like(p / "xl.safetensors"), "SDXL"),
    (lambda p: _vae_only(p / "vae.safetensors"), "not an SD1.5 checkpoint"),
    (lambda p: _random_bytes(p / "model.gguf"), "not a checkpoint"),
])
def test_bad_files_name_the_file_and_the_fix(tmp_path, make, needle, no_network):
    path = make(tmp_path)
    with pytest.raises(BaseModelError) as err:
        load_base_model(str(path))
    assert str(path) in str(err.value)
    assert needle in err.value.message
    assert err.value.hint


def test_folder_without_model_index(tmp_path):
    with pytest.raises(BaseModelError, match="model_index.json") as err:
        load_base_model(str(tmp_path))
    assert str(tmp_path) in err.value.message


@pytest.mark.parametrize(("index", "unet", "needle"), [
    ({"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["transformers", "x"]}, {},
     "SDXL"),
    ({"_class_name": "StableDiffusionPipeline"}, {"use_linear_projection": True}, "SD2"),
])
def test_sdxl_and_sd2_folders_are_refused_from_their_configs(tmp_path, index, unet, needle):
    for sub in ("unet", "vae", "text_encoder"):
        (tmp_path / sub).mkdir()
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    (tmp_path / "unet" / "config.json").write_text(json.dumps(unet))
    with pytest.raises(BaseModelError, match=needle) as err:
        load_base_model(str(tmp_path))
    assert str(tmp_path) in err.value.message


def test_unknown_builtin():
    with pytest.raises(BaseModelError) as err:
        load_base_model("builtin:nope")
    assert "builtin:nope" in err.value.message
    assert BUILTIN_TINY in err.value.hint
