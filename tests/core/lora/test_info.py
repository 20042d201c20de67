"""`lora_info` on synthetic files of each type (kohya/LyCORIS key formats): the type from
the metadata and, without it, from the keys; module counts, ranks, alphas; the metadata
facts; and the notes where metadata and tensors disagree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.lora.info import lora_info

from ...support.lora_files import (
    TAGS,
    kohya_meta,
    lora_tensors,
    make_all,
    write,
)

# type -> (modules total, unet, text encoder, linear, conv, dims, alphas, conv_dims, conv_alphas)
EXPECTED = {
    "lora": (6, 4, 2, 6, 0, [4], [2.0], [], []),
    "locon": (8, 6, 2, 6, 2, [4], [2.0], [2], [1.0]),
    "loha": (8, 6, 2, 6, 2, [4], [2.0], [2], [1.0]),
    # the conv module's factors are both full matrices: no rank
    "lokr": (7, 5, 2, 6, 1, [4], [2.0], [], [2.0]),
    "ia3": (6, 4, 2, 6, 0, [], [], [], []),
    "dylora": (6, 4, 2, 6, 0, [16], [8.0], [], []),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("loras"))


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_type_with_kohya_metadata(files, kind):
    info = lora_info(files[kind])
    total, unet, te, linear, conv, dims, alphas, conv_dims, conv_alphas = EXPECTED[kind]
    assert (info.type, info.type_from) == (kind, "metadata")
    assert info.modules == {"total": total, "unet": unet, "text_encoder": te, "other": 0,
                            "linear": linear, "conv": conv}
    assert (info.dims, info.alphas, info.conv_dims, info.conv_alphas) == \
        (dims, alphas, conv_dims, conv_alphas)
    assert info.notes == []  # metadata and tensors agree
    assert info.comment == "trigger: mychar"
    assert info.base_model == "anything-v5.safetensors"
    assert info.hashes["sd_model_hash"] == "1a2b3c4d"
    assert info.hashes["new_sd_model_hash"] == "ab" * 32
    assert info.training["steps"] == 1200 and info.training["epoch"] == 8
    assert type(info.training["steps"]) is int
    assert info.training["epochs"] == 10 and info.training["resolution"] == "(512, 512)"
    assert info.unit == (4 if kind == "dylora" else None)
    j = info.to_json()
    assert json.loads(json.dumps(j)) == j  # plain JSON
    assert j["dim"] == (dims[0] if dims else None)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_without_metadata_the_keys_tell_the_type(files, kind, tmp_path):
    from lorabake_tui.core.lora.read import read_safetensors

    src = read_safetensors(files[kind])
    bare = write(tmp_path / "bare.safetensors",
                 {k: src.array(k) for k in src.tensors}, None)
    info = lora_info(bare)
    # a DyLoRA is saved as a plain LoRA: only its metadata says what it is
    assert (info.type, info.type_from) == ("lora" if kind == "dylora" else kind, "keys")
    assert info.modules["total"] == EXPECTED[kind][0]
    assert info.dims == EXPECTED[kind][5] and info.conv_dims == EXPECTED[kind][7]
    assert info.metadata_keys == 0 and info.comment is None and info.tags is None
    assert all(v is None for v in info.training.values())


def test_ia3_reads_on_input(files):
    from lorabake_tui.core.lora.modules import read_modules
    from lorabake_tui.core.lora.read import read_safetensors

    mods = {m.name: m for m in read_modules(read_safetensors(files["ia3"]))}
    assert mods["lora_te_text_model_encoder_layers_11_mlp_fc2"].on_input is True
    assert mods["lora_te_text_model_encoder_layers_0_self_attn_q_proj"].on_input is False


def test_top_tags_per_folder(files):
    info = lora_info(files["lora"], top_tags=2)
    got = {t.folder: (t.distinct, t.top) for t in info.tags}
    # most frequent first; ties in name order
    assert got == {"10_mychar": (5, [("1girl", 12), ("mychar", 12)]),
                   "3_outfit": (2, [("dress", 5), ("mychar", 5)])}
    assert len(TAGS["10_mychar"]) == 5


def test_metadata_that_disagrees_with_the_tensors_is_noted(tmp_path):
    meta = kohya_meta("networks.lora", 8, 4.0, {"conv_dim": "4", "conv_alpha": "1"})
    info = lora_info(write(tmp_path / "x.safetensors", lora_tensors(conv_dim=2), meta))
    assert info.dims == [4] and info.conv_dims == [2]  # the tensors are what loads
    notes = "\n".join(info.notes)
    assert "ss_network_dim says 8" in notes and "ss_network_alpha says 4.0" in notes
    assert "conv_dim says 4" in notes and "conv_alpha" not in notes


def test_a_type_the_tensors_contradict_is_shown_as_the_tensors_say(tmp_path):
    meta = kohya_meta("lycoris.kohya", 4, 2.0, {"algo": "loha"})
    info = lora_info(write(tmp_path / "x.safetensors", lora_tensors(), meta))
    assert (info.type, info.type_from) == ("lora", "keys")
    assert any("metadata says loha" in n for n in info.notes)


def test_fp16_alphas_match_their_metadata(tmp_path):
    t = lora_tensors(alpha=0.1, dtype="<f2")
    info = lora_info(write(tmp_path / "h.safetensors", t, kohya_meta("networks.lora", 4, 0.1)))
    assert info.notes == [] and info.dtypes == ["F16"]


def test_lycoris_locon_and_dylora_unit_default(tmp_path):
    meta = kohya_meta("lycoris.kohya", 4, 2.0, {"algo": "locon", "conv_dim": "2",
                                                 "conv_alpha": "1.0"})
    assert lora_info(write(tmp_path / "l.safetensors", lora_tensors(conv_dim=2), meta)).type \
        == "locon"
    dy = write(tmp_path / "d.safetensors", lora_tensors(dim=8),
               kohya_meta("networks.dylora", 8, 2.0))
    assert lora_info(dy).unit == 4


def test_broken_tag_frequency_is_a_note_not_an_error(tmp_path):
    meta = kohya_meta("networks.lora", 4, 2.0, ss_tag_frequency="{not json")
    info = lora_info(write(tmp_path / "t.safetensors", lora_tensors(), meta))
    assert info.tags is None and any("ss_tag_frequency" in n for n in info.notes)


def test_a_safetensors_file_without_lora_modules_is_refused(tmp_path):
    ckpt = write(tmp_path / "model.safetensors",
                 {"model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4), "<f4")},
                 {"format": "pt"})
    with pytest.raises(LorabakeError, match="model.safetensors holds no LoRA modules"):
        lora_info(ckpt)



def test_a_conv_the_names_do_not_tell_is_found_by_its_shapes(tmp_path):
    # LDM-style names (some LyCORIS files use them): the CP core and a 4-D factor say conv
    r = np.random.default_rng(0)
    cp, full = "lora_unet_input_blocks_1_0_in_layers_2", "lora_unet_output_blocks_3_0_out_layers_3"
    t = {f"{cp}.hada_t1": r.standard_normal((2, 2, 3, 3)).astype("<f4"),
         f"{cp}.hada_t2": r.standard_normal((2, 2, 3, 3)).astype("<f4"),
         f"{full}.lokr_w1": r.standard_normal((2, 2)).astype("<f4"),
         f"{full}.lokr_w2": r.standard_normal((3, 4, 3, 3)).astype("<f4")}
    for w in ("w1", "w2"):
        t[f"{cp}.hada_{w}_a"] = r.standard_normal((2, 6)).astype("<f4")
        t[f"{cp}.hada_{w}_b"] = r.standard_normal((2, 8)).astype("<f4")
    from lorabake_tui.core.lora.modules import read_modules
    from lorabake_tui.core.lora.read import read_safetensors

    mods = {m.name: m for m in read_modules(read_safetensors(write(
        tmp_path / "x.safetensors", t, None)))}
    assert mods[cp].conv and mods[cp].kind == "loha" and mods[cp].rank == 2
    assert mods[full].conv and mods[full].kind == "lokr" and mods[full].rank is None
