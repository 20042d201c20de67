"""`lora_info` on files the real trainer writes (builtin:tiny-sd15, one step on CPU): a LoRA
and a LoCon with kohya's module set, ranks, alphas and metadata read back."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.core.base.errors import LorabakeError  # noqa: E402
from lorabake_tui.core.lora.info import lora_info  # noqa: E402
from lorabake_tui.core.lora.resize import resize  # noqa: E402

from ...support.train_fixtures import make_dataset, write_config  # noqa: E402


def train(root, **values):
    from lorabake_tui.core.run import exit_codes
    from lorabake_tui.trainer.__main__ import main as train_main

    torch.set_num_threads(1)
    make_dataset(root, images=2)
    cfg = write_config(root, general__max_steps=1, **values)
    run_dir = root / "out" / "r"
    assert train_main([str(cfg), "--run-dir", str(run_dir)]) == exit_codes.DONE
    return run_dir / "tiny.safetensors"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return {"lora": train(tmp_path_factory.mktemp("lora")),
            "locon": train(tmp_path_factory.mktemp("locon"), network__type="locon",
                           network__conv_dim=2, network__conv_alpha=1)}


def test_a_trained_lora(trained):
    info = lora_info(trained["lora"])
    assert (info.type, info.type_from) == ("lora", "metadata")
    assert info.modules == {"total": 264, "unet": 192, "text_encoder": 72, "other": 0,
                            "linear": 264, "conv": 0}
    assert (info.dims, info.alphas, info.conv_dims) == ([4], [2.0], [])
    assert info.notes == []
    assert info.comment == "trigger: mychar" and info.training["steps"] == 1
    assert info.base_model_version == "sd_v1"
    assert info.hashes["sshs_model_hash"] and len(info.hashes["sshs_model_hash"]) == 64
    (folder,) = info.tags
    assert folder.folder == "2_mychar" and ("mychar", 2) in folder.top


def test_a_trained_locon(trained):
    info = lora_info(trained["locon"])
    assert (info.type, info.type_from) == ("locon", "metadata")
    # SD1.5's LoCon set: 278 UNet modules, 50 of them 3x3 convolutions (resnet conv1/conv2,
    # down/upsamplers); conv_shortcut and time_emb_proj take the linear dim
    assert info.modules == {"total": 350, "unet": 278, "text_encoder": 72, "other": 0,
                            "linear": 300, "conv": 50}
    assert (info.dims, info.alphas) == ([4], [2.0])
    assert (info.conv_dims, info.conv_alphas) == ([2], [1.0])
    assert info.notes == []


def test_a_trained_lora_is_no_dylora(trained, tmp_path):
    with pytest.raises(LorabakeError, match="trained as networks.lora, not DyLoRA"):
        resize(trained["lora"], 2, tmp_path / "o.safetensors")
