"""Synthetic LoRA-family .safetensors files in the key formats A1111/ComfyUI load (kohya
names; LyCORIS's hada_*/lokr_*/IA3 keys), written with numpy and a header built here, so
tests do not need torch or the safetensors package."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

ATTN = ["lora_unet_down_blocks_0_attentions_0_proj_in",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k",
        "lora_unet_up_blocks_1_attentions_2_transformer_blocks_0_ff_net_2"]
TE = ["lora_te_text_model_encoder_layers_0_self_attn_q_proj",
      "lora_te_text_model_encoder_layers_11_mlp_fc2"]
CONV = ["lora_unet_down_blocks_0_resnets_0_conv1", "lora_unet_up_blocks_0_upsamplers_0_conv"]
IN, OUT = 8, 6
DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("?"): "BOOL"}
TAGS = {"10_mychar": {"mychar": 12, "1girl": 12, "red hair": 9, "smile": 4, "sky": 1},
        "3_outfit": {"mychar": 5, "dress": 5}}


def write(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None,
          *, raw: dict[str, tuple[str, list[int], bytes]] | None = None) -> Path:
    """`raw`: tensors given as (dtype, shape, bytes), e.g. bf16."""
    header: dict = {"__metadata__": metadata} if metadata is not None else {}
    blobs, pos = [], 0
    items = [(k, DTYPES[v.dtype], list(v.shape), v.tobytes()) for k, v in tensors.items()]
    items += [(k, d, s, b) for k, (d, s, b) in (raw or {}).items()]
    for name, dtype, shape, data in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + len(data)]}
        blobs.append(data)
        pos += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def rng(seed=0):
    return np.random.default_rng(seed)


def kohya_meta(module: str, dim, alpha, args: dict | None = None, **extra) -> dict[str, str]:
    meta = {"ss_network_module": module, "ss_network_dim": str(dim),
            "ss_network_alpha": str(alpha), "ss_training_comment": "trigger: mychar",
            "ss_sd_model_name": "anything-v5.safetensors", "ss_sd_model_hash": "1a2b3c4d",
            "ss_new_sd_model_hash": "ab" * 32, "ss_resolution": "(512, 512)",
            "ss_steps": "1200", "ss_epoch": "8", "ss_num_epochs": "10",
            "ss_base_model_version": "sd_v1", "ss_output_name": "mychar",
            "ss_tag_frequency": json.dumps(TAGS)}
    if args is not None:
        meta["ss_network_args"] = json.dumps(args)
    meta.update(extra)
    return meta


def lora_tensors(dim=4, alpha=2.0, conv_dim=0, conv_alpha=1.0, seed=0, dtype="<f4"):
    """kohya LoRA keys (LoCon when conv_dim): down (r, in[, k, k]), up (out, r[, 1, 1])."""
    r, out = rng(seed), {}
    for m in ATTN + TE:
        # SD1.5's proj_in is a 1x1 convolution: its LoRA is 4-D and takes the linear dim
        k = (1, 1) if m.endswith("proj_in") else ()
        out[f"{m}.lora_down.weight"] = r.standard_normal((dim, IN, *k)).astype(dtype)
        out[f"{m}.lora_up.weight"] = r.standard_normal((OUT, dim, *k)).astype(dtype)
        out[f"{m}.alpha"] = np.array(alpha, dtype)
    if conv_dim:
        for m in CONV:
            out[f"{m}.lora_down.weight"] = r.standard_normal((conv_dim, IN, 3, 3)).astype(dtype)
            out[f"{m}.lora_up.weight"] = r.standard_normal((OUT, conv_dim, 1, 1)).astype(dtype)
            out[f"{m}.alpha"] = np.array(conv_alpha, dtype)
    return out


def loha_tensors(dim=4, alpha=2.0, conv_dim=2, conv_alpha=1.0):
    r, out = rng(1), {}
    for m in ATTN + TE:
        for w in ("w1", "w2"):
            out[f"{m}.hada_{w}_a"] = r.standard_normal((OUT, dim)).astype("<f4")
            out[f"{m}.hada_{w}_b"] = r.standard_normal((dim, IN)).astype("<f4")
        out[f"{m}.alpha"] = np.array(alpha, "<f4")
    # one conv without CP (kernel flattened into w_b), one with the CP/Tucker form
    plain, cp = CONV
    for w in ("w1", "w2"):
        out[f"{plain}.hada_{w}_a"] = r.standard_normal((OUT, conv_dim)).astype("<f4")
        out[f"{plain}.hada_{w}_b"] = r.standard_normal((conv_dim, IN * 9)).astype("<f4")
        out[f"{cp}.hada_{w}_a"] = r.standard_normal((conv_dim, OUT)).astype("<f4")
        out[f"{cp}.hada_{w}_b"] = r.standard_normal((conv_dim, IN)).astype("<f4")
    out[f"{cp}.hada_t1"] = r.standard_normal((conv_dim, conv_dim, 3, 3)).astype("<f4")
    out[f"{cp}.hada_t2"] = r.standard_normal((conv_dim, conv_dim, 3, 3)).astype("<f4")
    for m in CONV:
        out[f"{m}.alpha"] = np.array(conv_alpha, "<f4")
    return out


def lokr_tensors(dim=4, alpha=2.0):
    """Both factor forms: attention modules w1 full with w2 = w2_a @ w2_b; text encoder
    w1 = w1_a @ w1_b with w2 full; the conv module with a 4-D full w2."""
    r, out = rng(2), {}
    for m in ATTN:
        out[f"{m}.lokr_w1"] = r.standard_normal((2, 2)).astype("<f4")
        out[f"{m}.lokr_w2_a"] = r.standard_normal((3, dim)).astype("<f4")
        out[f"{m}.lokr_w2_b"] = r.standard_normal((dim, 4)).astype("<f4")
        out[f"{m}.alpha"] = np.array(alpha, "<f4")
    for m in TE:
        out[f"{m}.lokr_w1_a"] = r.standard_normal((2, dim)).astype("<f4")
        out[f"{m}.lokr_w1_b"] = r.standard_normal((dim, 2)).astype("<f4")
        out[f"{m}.lokr_w2"] = r.standard_normal((3, 4)).astype("<f4")
        out[f"{m}.alpha"] = np.array(alpha, "<f4")
    m = CONV[0]
    out[f"{m}.lokr_w1"] = r.standard_normal((2, 2)).astype("<f4")
    out[f"{m}.lokr_w2"] = r.standard_normal((3, 4, 3, 3)).astype("<f4")
    out[f"{m}.alpha"] = np.array(alpha, "<f4")
    return out


def ia3_tensors():
    r, out = rng(3), {}
    for m in ATTN + TE:
        on_input = m.endswith(("ff_net_2", "mlp_fc2"))
        out[f"{m}.weight"] = r.standard_normal(IN if on_input else OUT).astype("<f4")
        out[f"{m}.on_input"] = np.array(on_input)
    return out


def lycoris_meta(algo: str, dim, alpha, **args) -> dict[str, str]:
    return kohya_meta("lycoris.kohya", dim, alpha,
                      {"algo": algo, **{k: str(v) for k, v in args.items()}})


def make_all(folder: Path) -> dict[str, Path]:
    """One file of each type, with kohya/LyCORIS metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "lora": write(folder / "lora.safetensors", lora_tensors(),
                      kohya_meta("networks.lora", 4, 2.0)),
        "locon": write(folder / "locon.safetensors", lora_tensors(conv_dim=2),
                       kohya_meta("networks.lora", 4, 2.0,
                                  {"conv_dim": "2", "conv_alpha": "1.0"})),
        "loha": write(folder / "loha.safetensors", loha_tensors(),
                      lycoris_meta("loha", 4, 2.0, conv_dim=2, conv_alpha=1.0)),
        "lokr": write(folder / "lokr.safetensors", lokr_tensors(),
                      lycoris_meta("lokr", 4, 2.0, factor=-1)),
        "ia3": write(folder / "ia3.safetensors", ia3_tensors(),
                     lycoris_meta("ia3", 1, 1)),
        "dylora": write(folder / "dylora.safetensors", lora_tensors(dim=16, alpha=8.0),
                        kohya_meta("networks.dylora", 16, 8.0, {"unit": "4"})),
    }
