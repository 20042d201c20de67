"""The trainer's output formats: kohya LoRA keys with per-module alpha on a real SD1.5-shaped
tiny model, header metadata and hashes (the events.jsonl stream: tests/core/run)."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.trainer.data import load_train_data  # noqa: E402
from lorabake_tui.trainer.kohya_format import (  # noqa: E402
    TE_PREFIX,
    UNET_PREFIX,
    AdapterScale,
    kohya_module_name,
    module_count,
    to_kohya,
)
from lorabake_tui.trainer.metadata import (  # noqa: E402
    RunFacts,
    add_file_hashes,
    file_sha256,
    legacy_hash,
    safetensors_data_sha256,
    stringify,
    training_metadata,
)

from ..support.helpers import make_concept  # noqa: E402
from ..support.plans import plan_of  # noqa: E402

ATTN = (r".*attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\."
        r"(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)))")
CONV = r".*(resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)|(down|up)samplers\.0\.conv)"


@pytest.fixture
def tiny():
    """SD1.5's block layout at toy width, built at test time (never a saved fixture)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(8, 16, 32, 32), norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32, attention_head_dim=8)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=37,
                                      num_hidden_layers=12, num_attention_heads=4,
                                      max_position_embeddings=77, hidden_act="quick_gelu"))
    return unet, te


def lora_state(model, config):
    from peft import get_peft_model_state_dict, inject_adapter_in_model

    model = inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    return get_peft_model_state_dict(model)


def test_lora_covers_kohyas_192_unet_and_72_te_modules(tiny):
    from peft import LoraConfig

    unet, te = tiny
    cfg = LoraConfig(r=4, lora_alpha=2, target_modules=ATTN)
    ku = to_kohya(lora_state(unet, cfg), AdapterScale.from_peft(cfg), text_encoder=False)
    tcfg = LoraConfig(r=4, lora_alpha=2, target_modules=["q_proj", "k_proj", "v_proj",
                                                         "out_proj", "fc1", "fc2"])
    kt = to_kohya(lora_state(te, tcfg), AdapterScale.from_peft(tcfg), text_encoder=True)
    assert module_count(ku, UNET_PREFIX) == 192
    assert module_count(kt, TE_PREFIX) == 72
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down" \
           ".weight" in ku
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight" in kt
    alpha = ku["lora_unet_down_blocks_0_attentions_0_proj_in.alpha"]
    assert alpha.item() == 2.0  # the module's own alpha, not the rank


def test_locon_has_278_unet_modules_with_their_own_conv_alpha(tiny):
    from peft import LoraConfig

    unet, _ = tiny
    pattern = r".*(conv1|conv2|samplers\.0\.conv)"
    cfg = LoraConfig(r=8, lora_alpha=4, target_modules=f"({ATTN}|{CONV})",
                     rank_pattern={pattern: 4}, alpha_pattern={pattern: 1})
    k = to_kohya(lora_state(unet, cfg), AdapterScale.from_peft(cfg), text_encoder=False)
    assert module_count(k, UNET_PREFIX) == 278
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert k[f"{conv}.lora_down.weight"].shape[0] == 4
    assert k[f"{conv}.alpha"].item() == 1.0
    assert k["lora_unet_down_blocks_0_attentions_0_proj_in.alpha"].item() == 4.0


def test_rslora_alpha_keeps_the_scale():
    scale = AdapterScale(r=16, alpha=8, use_rslora=True)
    # peft's scale alpha/sqrt(r) must equal kohya's alpha/r
    assert scale.kohya_alpha("x", 16) / 16 == pytest.approx(8 / math.sqrt(16))


def test_flattened_text_encoder_names_keep_text_model():
    assert kohya_module_name("encoder.layers.0.self_attn.q_proj", text_encoder=True) == \
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj"


def test_metadata_is_all_strings_and_hashes_follow_the_definitions(tmp_path):
    from safetensors.torch import load_file, save_file

    root = tmp_path / "data"
    make_concept(root, "10_mira", 2, caption="mira, mira_uniform")
    plan = plan_of(root)
    run = RunFacts(session_id="s1", started_at=1.5, saved_at=2.5, steps=10, epoch=1,
                   network_args={"conv_dim": "16"}, optimizer_class="torch.optim.adamw.AdamW",
                   sd_model_name="m.safetensors", sd_model_hash="abcd1234",
                   new_sd_model_hash="0" * 64)
    meta = training_metadata(plan.settings, plan, load_train_data(plan), run)
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["ss_tag_frequency"]) == {"10_mira": {"mira": 2, "mira_uniform": 2}}
    assert meta["ss_v2"] == "False" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    path = tmp_path / "mira.safetensors"
    tensors = {"lora_unet_x.lora_down.weight": torch.randn(4, 300_000)}  # > 1 MiB + 64 KiB
    save_file(tensors, str(path), metadata=meta)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert safetensors_data_sha256(path) == hashlib.sha256(raw[8 + header_len:]).hexdigest()
    assert legacy_hash(path) == hashlib.sha256(raw[0x100000:0x110000]).hexdigest()[:8]
    assert file_sha256(path) == hashlib.sha256(raw).hexdigest()
    hashed = add_file_hashes(meta, path)
    save_file(load_file(str(path)), str(path), metadata=hashed)
    # the data hash does not depend on the header, so it still holds after the rewrite
    assert safetensors_data_sha256(path) == hashed["sshs_model_hash"]


def test_stringify():
    assert stringify({"a": True, "b": None, "c": [1], "d": 1.5}) == {
        "a": "True", "b": "None", "c": "[1]", "d": "1.5"}
