"""Loading the SD1.5 base model to train on, fully offline.

Three sources: a built-in tiny random model (tests, demos, CPU smoke runs), a diffusers folder,
and the single-file .safetensors checkpoints people actually download. Single files are
converted with configs shipped in the package, so diffusers never goes looking for them on the
Hub. Pickle checkpoints (.ckpt, .pt, .pth, .bin) are refused with `config check`'s words
(core/config/checkpoints.py): loading one can run any code in it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import secrets
import shutil
import warnings
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.captions.clip_tokenizer import BPE_FILE, MODEL_MAX_LENGTH, clip_tokenizer
from lorabake_tui.core.config.checkpoints import DIFFUSERS_WEIGHTS, pickle_in, pickle_refusal
from lorabake_tui.trainer.metadata import file_sha256, legacy_hash

BUILTIN_PREFIX = "builtin:"
BUILTIN_RANDOM_SD15 = "builtin:sd15-random"
BUILTIN_TINY = "builtin:tiny-sd15"
# bump when the tiny model's architecture or seed changes: cached latents key on it
BUILTIN_TINY_VERSION = "builtin-tiny-sd15-v1"
_BUILTIN_SEED = 1_515_515

SD15_CONFIG_DATA = Path(__file__).resolve().parent.parent / "data" / "sd15_config"
# bump when the materialised folder's layout changes (the data itself is hashed in)
_CONFIG_FORMAT = "1"

# kohya / diffusers' train_text_to_image settings for SD1.5
SD15_NOISE_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "steps_offset": 1,  # SD 1.5's own value; samplers built from this config need it
}

TINY_UNET = {
    "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (8, 16, 32, 32), "norm_num_groups": 8,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "cross_attention_dim": 32, "attention_head_dim": 8,
}
TINY_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
    "block_out_channels": (32,) * 4, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32, "sample_size": 64,
    "scaling_factor": 0.18215,
}
TINY_TEXT_ENCODER = {
    "vocab_size": 49408, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 12,
    "num_attention_heads": 4, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
}

_UNET = "model.diffusion_model."
_VAE = "first_stage_model."
_TE = "cond_stage_model.transformer."


class BaseModelError(LorabakeError):
    """The base model can't be used: missing, unreadable, or not SD1.5."""


@dataclass
class BaseModel:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    noise_scheduler: DDPMScheduler
    name: str  # for ss_sd_model_name
    sha256: str | None  # the checkpoint file's sha256: ss_new_sd_model_hash
    legacy_hash: str | None  # ss_sd_model_hash
    vae_id: str  # changes exactly when the VAE weights change: keys cached latents


def load_base_model(spec: str, *, dtype: torch.dtype = torch.float32,
                    base_dir: Path | None = None, config_dir: Path | None = None) -> BaseModel:
    """`builtin:tiny-sd15`, a diffusers folder, or a single-file .safetensors."""
    spec = str(spec).strip()
    if spec.startswith(BUILTIN_PREFIX):
        if spec == BUILTIN_RANDOM_SD15:
            return _builtin_random_sd15(dtype)
        if spec != BUILTIN_TINY:
            raise BaseModelError(f"unknown built-in base model {spec!r}",
                                 f"set general.base_model to {BUILTIN_TINY} or to a checkpoint "
                                 "path")
        return _builtin_tiny(dtype)
    if not spec:
        raise BaseModelError("no base model given",
                             "set general.base_model to an SD1.5 .safetensors file")
    path = Path(spec).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if (pickled := pickle_in(path)) is not None:  # by name even when missing, as the check
        raise BaseModelError(*pickle_refusal(pickled))
    if not path.exists():
        raise BaseModelError(f"base model {path} does not exist",
                             "check general.base_model: the path is resolved against the "
                             "project folder")
    if path.is_dir():
        return _from_diffusers_folder(path, dtype)
    cfg = Path(config_dir) if config_dir is not None else sd15_config_dir()
    return _from_single_file(path, dtype, cfg)


# --- built-in tiny model ---------------------------------------------------------------------

def _builtin_tiny(dtype: torch.dtype) -> BaseModel:
    # its own seed, and the caller's RNG state left exactly as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_BUILTIN_SEED)
        unet = UNet2DConditionModel(**TINY_UNET)
        vae = AutoencoderKL(**TINY_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT_ENCODER))
    with _quiet_cast():
        for m in (unet, vae, text_encoder):
            m.to(dtype).eval()
    return BaseModel(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=shipped_tokenizer(),
                     noise_scheduler=DDPMScheduler(**SD15_NOISE_SCHEDULER), name=BUILTIN_TINY,
                     sha256=None, legacy_hash=None, vae_id=_builtin_vae_id(dtype))


def _builtin_random_sd15(dtype: torch.dtype) -> BaseModel:
    """SD1.5's full architecture with random weights (from the shipped configs): for speed
    and memory benchmarks on a GPU without downloading a checkpoint. It learns nothing."""
    cfg = sd15_config_dir()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(_BUILTIN_SEED)
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
    with _quiet_cast():
        for m in (unet, vae, text_encoder):
            m.to(dtype).eval()
    return BaseModel(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=shipped_tokenizer(),
                     noise_scheduler=DDPMScheduler(**SD15_NOISE_SCHEDULER),
                     name=BUILTIN_RANDOM_SD15, sha256=None, legacy_hash=None,
                     vae_id=f"{BUILTIN_RANDOM_SD15}-v1-{str(dtype).removeprefix('torch.')}")


def _builtin_vae_id(dtype: torch.dtype) -> str:
    # latents from a half-precision VAE differ, so they must not share a cache
    suffix = "" if dtype == torch.float32 else "-" + str(dtype).removeprefix("torch.")
    return BUILTIN_TINY_VERSION + suffix


# --- tokenizer and config folder ----------------------------------------------------------

def _load_tokenizer(folder: Path) -> CLIPTokenizer:
    with warnings.catch_warnings():
        # tokenizers deprecates building BPE from vocab/merges files; harmless here
        warnings.simplefilter("ignore", DeprecationWarning)
        return CLIPTokenizer.from_pretrained(folder, model_max_length=MODEL_MAX_LENGTH,
                                             local_files_only=True)


def shipped_tokenizer() -> CLIPTokenizer:
    """transformers' CLIPTokenizer built from the BPE data in the package."""
    return _load_tokenizer(sd15_config_dir() / "tokenizer")


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lorabake"


def _data_version() -> str:
    h = hashlib.sha256(_CONFIG_FORMAT.encode())
    for f in sorted(p for p in SD15_CONFIG_DATA.rglob("*") if p.is_file()):
        h.update(f.relative_to(SD15_CONFIG_DATA).as_posix().encode())
        h.update(f.read_bytes())
    h.update(BPE_FILE.read_bytes())
    return h.hexdigest()[:12]


def _config_complete(folder: Path) -> bool:
    needed = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json")
    tokenizer = any((folder / "tokenizer" / n).is_file() for n in ("vocab.json", "tokenizer.json"))
    return tokenizer and all((folder / n).is_file() for n in needed)


def sd15_config_dir() -> Path:
    """SD1.5's diffusers configs plus tokenizer files, materialised once in the user cache.

    Built in a temp folder and renamed into place, so concurrent trainers never see half of it.
    """
    root = _cache_root()
    final = root / f"sd15-config-{_data_version()}"
    if _config_complete(final):
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        # not mkdtemp: its 0700 would stay on the renamed folder; this one gets the umask's mode
        tmp = root / f".sd15-config-{secrets.token_hex(8)}"
        tmp.mkdir()
    except OSError as e:
        raise BaseModelError(f"cannot write the model config cache {root}: {e.strerror}",
                             "make it writable or point XDG_CACHE_HOME somewhere writable") from e
    try:
        # copyfile, not copytree: the package's own modes (read-only where it is installed
        # so) must not follow into the cache
        for src in sorted(SD15_CONFIG_DATA.rglob("*")):
            dst = tmp / src.relative_to(SD15_CONFIG_DATA)
            if src.is_dir():
                dst.mkdir(exist_ok=True)
            else:
                shutil.copyfile(src, dst)
        clip_tokenizer().write_hf_files(tmp / "tokenizer")
        try:
            os.rename(tmp, final)
        except OSError:
            # another process won the race; its copy is identical
            if not _config_complete(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- diffusers folder -----------------------------------------------------------------------

def _variant(sub: Path) -> str | None:
    """diffusers wants variant="fp16" when a folder only has *.fp16.* weights (safetensors
    only: pickled weights are never loaded)."""
    names = {p.name for p in sub.glob("*.safetensors")} if sub.is_dir() else set()
    plain = any(".fp16." not in n for n in names)
    fp16 = any(".fp16." in n for n in names)
    return "fp16" if fp16 and not plain else None


def _from_diffusers_folder(folder: Path, dtype: torch.dtype) -> BaseModel:
    if not (folder / "model_index.json").is_file():
        raise BaseModelError(f"{folder} is a folder but not a diffusers model "
                             "(no model_index.json)",
                             "point general.base_model at the diffusers folder itself or at a "
                             ".safetensors checkpoint")
    for sub in DIFFUSERS_WEIGHTS:
        if not (folder / sub).is_dir():
            raise BaseModelError(f"diffusers model {folder} has no {sub}/ subfolder",
                                 "use a complete SD1.5 diffusers folder")
    _check_folder_kind(folder)
    # use_safetensors: a folder with both never falls back to its pickled copies
    try:
        unet = UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", local_files_only=True, torch_dtype=dtype,
            variant=_variant(folder / "unet"), use_safetensors=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True,
                                            torch_dtype=dtype, variant=_variant(folder / "vae"),
                                            use_safetensors=True)
        text_encoder = CLIPTextModel.from_pretrained(
            folder, subfolder="text_encoder", local_files_only=True, dtype=dtype,
            variant=_variant(folder / "text_encoder"), use_safetensors=True)
        tok_dir = folder / "tokenizer"
        tokenizer = _load_tokenizer(tok_dir) if tok_dir.is_dir() else shipped_tokenizer()
        noise_scheduler = _noise_scheduler(folder)
    except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as e:
        raise BaseModelError(f"cannot load the diffusers model {folder}: {_first_line(e)}",
                             "check the folder is a complete SD1.5 diffusers model") from e
    _check_sd15(folder, unet, text_encoder)
    for m in (unet, vae, text_encoder):
        m.eval()
    return BaseModel(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                     noise_scheduler=noise_scheduler, name=folder.name, sha256=None,
                     legacy_hash=None, vae_id=_tensor_id(vae.state_dict()))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_folder_kind(folder: Path) -> None:
    """Refuse SDXL and SD2 folders from their configs, before loading gigabytes."""
    index = _read_json(folder / "model_index.json")
    if "text_encoder_2" in index or "XL" in str(index.get("_class_name", "")):
        raise BaseModelError(f"{folder} is an SDXL model, not SD1.5",
                             "lorabake trains SD1.5 LoRAs: pick an SD1.5 base model")
    unet = _read_json(folder / "unet" / "config.json")
    if unet.get("use_linear_projection") or unet.get("cross_attention_dim") == 1024:
        raise BaseModelError(f"{folder} is an SD2.x model, not SD1.5",
                             "lorabake trains SD1.5 LoRAs: pick an SD1.5 base model")


def _noise_scheduler(folder: Path) -> DDPMScheduler:
    """The folder's betas and prediction type (v-prediction models), else SD1.5's."""
    if (folder / "scheduler" / "scheduler_config.json").is_file():
        return DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True,
                                             clip_sample=False)
    return DDPMScheduler(**SD15_NOISE_SCHEDULER)


# --- single-file checkpoints ----------------------------------------------------------------

def _from_single_file(path: Path, dtype: torch.dtype, cfg: Path) -> BaseModel:
    if not _config_complete(cfg):
        raise BaseModelError(f"model config folder {cfg} is incomplete",
                             "it needs model_index.json, unet/, vae/, text_encoder/ and "
                             "tokenizer/; delete it to have it rebuilt")
    state = _read_checkpoint(path)
    common = {"config": str(cfg), "local_files_only": True, "torch_dtype": dtype}
    unet = _convert(path, "UNet", lambda: UNet2DConditionModel.from_single_file(
        state, subfolder="unet", **common))
    vae = _convert(path, "VAE", lambda: AutoencoderKL.from_single_file(
        state, subfolder="vae", **common))
    text_encoder = _text_encoder_from_ldm(path, state, cfg, dtype)
    state.clear()  # free the raw tensors before hashing the file
    _check_sd15(path, unet, text_encoder)
    return BaseModel(unet=unet, vae=vae, text_encoder=text_encoder,
                     tokenizer=_load_tokenizer(cfg / "tokenizer"),
                     noise_scheduler=_noise_scheduler(cfg), name=path.name,
                     sha256=file_sha256(path), legacy_hash=legacy_hash(path),
                     vae_id=_tensor_id(vae.state_dict()))


def _convert(path: Path, what: str, load):
    """Run one diffusers from_single_file conversion, turning its errors into sentences."""
    try:
        with _quiet_cast():
            model = load()
    except (OSError, ValueError, RuntimeError, KeyError, IndexError) as e:
        # weights absent from the file stay on the meta device and fail when moved
        if "meta tensor" in str(e):
            raise BaseModelError(f"{path} is missing {what} weights",
                                 "the file is incomplete: download it again") from e
        raise BaseModelError(f"{path}: the {what} does not fit the SD1.5 layout "
                             f"({_first_line(e)})",
                             "use an SD1.5 checkpoint (SDXL, SD2 and inpainting models are not "
                             "supported)") from e
    if any(p.is_meta for p in model.parameters()):
        raise BaseModelError(f"{path} is missing {what} weights",
                             "the file is incomplete: download it again")
    return model


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    suffix = path.suffix.lower()
    wanted = (_UNET, _VAE, _TE)
    if suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                keys = list(fh.keys())
                _check_keys(path, keys)
                # only what we use: EMA copies and extras would double the memory
                return {k: fh.get_tensor(k) for k in keys if k.startswith(wanted)}
        except (SafetensorError, OSError, ValueError) as e:
            raise BaseModelError(f"{path} is not a readable .safetensors file "
                                 f"({_first_line(e)})",
                                 "the file is corrupt or truncated: download it again") from e
    raise BaseModelError(f"{path} is not a checkpoint lorabake can read",
                         "use a .safetensors SD1.5 checkpoint or a diffusers folder")


def _check_keys(path: Path, keys: Iterable[str]) -> None:
    keys = list(keys)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("conditioner."):
        raise BaseModelError(f"{path} is an SDXL checkpoint, not SD1.5",
                             "lorabake trains SD1.5 LoRAs: pick an SD1.5 base model")
    if has("cond_stage_model.model."):
        raise BaseModelError(f"{path} is an SD2.x checkpoint, not SD1.5",
                             "lorabake trains SD1.5 LoRAs: pick an SD1.5 base model")
    if has("lora_unet_") or has("lora_te_") or any(".lora_" in k for k in keys):
        raise BaseModelError(f"{path} is a LoRA, not a base model",
                             "set general.base_model to the SD1.5 checkpoint it was trained on")
    if not has(_UNET):
        raise BaseModelError(f"{path} is not an SD1.5 checkpoint (no model.diffusion_model. "
                             "weights; it may be a VAE, embedding or other model)",
                             "set general.base_model to a full SD1.5 checkpoint")
    if not has(_TE):
        raise BaseModelError(f"{path} has no CLIP text encoder weights",
                             "use a full SD1.5 checkpoint (text encoder included)")
    if not has(_VAE):
        raise BaseModelError(f"{path} has no VAE weights",
                             "use a full SD1.5 checkpoint (VAE included)")


def _text_encoder_from_ldm(path: Path, state: Mapping[str, torch.Tensor], cfg: Path,
                           dtype: torch.dtype) -> CLIPTextModel:
    from accelerate import init_empty_weights

    config = CLIPTextConfig.from_pretrained(cfg / "text_encoder", local_files_only=True)
    with init_empty_weights():
        model = CLIPTextModel(config)
    expected = model.state_dict()
    # checkpoints may or may not have the text_model. level; the model may or may not want it
    wrapped = any(k.startswith("text_model.") for k in expected)
    weights = {}
    for k, v in state.items():
        # position_ids: merged checkpoints often carry drifted float copies; keep the model's
        if not k.startswith(_TE) or k.endswith("position_ids"):
            continue
        k = k[len(_TE):].removeprefix("text_model.")
        weights["text_model." + k if wrapped else k] = v.to(dtype) if v.is_floating_point() else v
    weights = {k: v for k, v in weights.items() if k in expected}
    missing = [k for k, t in expected.items() if k not in weights and t.is_meta]
    if missing:
        raise BaseModelError(f"{path} is missing text encoder weights ({missing[0]}, ...)",
                             "the file is incomplete or not SD1.5: use a full SD1.5 checkpoint")
    for k, v in weights.items():
        if v.shape != expected[k].shape:
            raise BaseModelError(f"{path}: text encoder weight {k} has shape {tuple(v.shape)}, "
                                 f"SD1.5 has {tuple(expected[k].shape)}",
                                 "use an SD1.5 checkpoint")
    model.load_state_dict(weights, strict=False, assign=True)
    return model.to(dtype).eval()


def _check_sd15(source: Path, unet: UNet2DConditionModel, text_encoder: CLIPTextModel) -> None:
    if unet.config.in_channels != 4:
        raise BaseModelError(f"{source} is an inpainting or other special UNet "
                             f"({unet.config.in_channels} input channels)",
                             "use a normal (txt2img) SD1.5 checkpoint")
    if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
        raise BaseModelError(f"{source}: the UNet and text encoder do not fit together",
                             "use an SD1.5 checkpoint")


# --- helpers --------------------------------------------------------------------------------

def _tensor_id(state: Mapping[str, torch.Tensor]) -> str:
    """A content hash of weights (dtype included: latents from a fp16 VAE differ)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy())
    return "vae-" + h.hexdigest()[:16]


@contextmanager
def _quiet_cast():
    """diffusers warns about fp32-only modules on every dtype cast, even when there are none."""
    log = logging.getLogger("diffusers.models.modeling_utils")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _first_line(e: BaseException) -> str:
    """The first sentence of a library error; the rest is usually advice for developers."""
    text = (str(e).strip() or type(e).__name__).splitlines()[0]
    return text.split(". ")[0][:300]


__all__ = ["BUILTIN_TINY", "BaseModel", "BaseModelError", "load_base_model", "sd15_config_dir",
           "shipped_tokenizer"]
