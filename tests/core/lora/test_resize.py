"""DyLoRA rank extraction: rank N is the first N ranks (checked numerically against the
full file's up @ down), bytes sliced as stored (bf16 bit for bit), metadata updated, and
nothing is ever overwritten or written for a file that is not a DyLoRA."""

from __future__ import annotations

import hashlib
import stat
import struct

import numpy as np
import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.lora.read import read_safetensors
from lorabake_tui.core.lora.resize import resize, resize_all

from ...support.lora_files import CONV, kohya_meta, lora_tensors, make_all, write

DY_META = kohya_meta("networks.dylora", 16, 8.0, {"unit": "4"},
                     sshs_model_hash="0" * 64, sshs_legacy_hash="00000000")


@pytest.fixture
def dylora(tmp_path):
    """A DyLoRA at dim 16 with conv modules (conv_dim 8) and stale sshs hashes."""
    return write(tmp_path / "dy.safetensors", lora_tensors(dim=16, alpha=8.0, conv_dim=8,
                                                           conv_alpha=4.0), DY_META)


def products(path) -> dict[str, np.ndarray]:
    """module -> its delta's matrix part up @ down (conv: flattened), and its alpha."""
    f = read_safetensors(path)
    out = {}
    for key in f.tensors:
        if key.endswith(".lora_down.weight"):
            m = key.removesuffix(".lora_down.weight")
            down = f.array(key).astype(np.float64)
            up = f.array(f"{m}.lora_up.weight").astype(np.float64)
            out[m] = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
            out[m + ".alpha"] = f.array(f"{m}.alpha")
    return out


def sliced_products(path, n) -> dict[str, np.ndarray]:
    f = read_safetensors(path)
    out = {}
    for key in f.tensors:
        if key.endswith(".lora_down.weight"):
            m = key.removesuffix(".lora_down.weight")
            down = f.array(key).astype(np.float64)[:n]
            up = f.array(f"{m}.lora_up.weight").astype(np.float64)[:, :n]
            out[m] = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
            out[m + ".alpha"] = f.array(f"{m}.alpha")
    return out


def test_rank_n_is_the_first_n_ranks(dylora, tmp_path):
    out = resize(dylora, 8, tmp_path / "r8.safetensors")
    f = read_safetensors(out)
    assert f.tensors[f"{CONV[0]}.lora_down.weight"].shape == (8, 8, 3, 3)
    assert f.tensors[f"{CONV[0]}.lora_up.weight"].shape == (6, 8, 1, 1)
    attn = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    assert f.tensors[f"{attn}.lora_down.weight"].shape == (8, 8)
    assert f.tensors[f"{attn}.lora_up.weight"].shape == (6, 8)
    got, want = products(out), sliced_products(dylora, 8)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    # and not the full file: the cut is real
    full = products(dylora)
    assert not np.allclose(got[attn], full[attn])
    assert float(got[attn + ".alpha"]) == 8.0  # alpha unchanged
    # the conv modules had rank 8 already: untouched
    assert np.array_equal(got[CONV[0]], full[CONV[0]])


def test_metadata_updated_and_hashes_recomputed(dylora, tmp_path):
    out = resize(dylora, 4, tmp_path / "r4.safetensors")
    meta = read_safetensors(out).metadata
    assert meta["ss_network_dim"] == "4"
    assert meta["ss_training_comment"] == "trigger: mychar"  # the triggers are kept
    assert meta["lorabake_resized"] == "split from DyLoRA, rank 16 to 4"
    assert meta["ss_network_alpha"] == "8.0" and meta["ss_network_module"] == "networks.dylora"
    data = out.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    assert meta["sshs_model_hash"] == hashlib.sha256(data[8 + n:]).hexdigest()
    assert meta["sshs_legacy_hash"] != "00000000"
    untouched = {k: v for k, v in DY_META.items() if not k.startswith("sshs_")}
    untouched.pop("ss_network_dim")
    assert {k: meta[k] for k in untouched} == untouched


def test_bf16_is_cut_bit_for_bit(tmp_path):
    r = np.random.default_rng(5)
    raw = {}
    name = "lora_unet_down_blocks_0_attentions_0_proj_in"
    down = r.integers(0, 2**16, (8, 5), dtype=np.uint16)
    up = r.integers(0, 2**16, (3, 8), dtype=np.uint16)
    raw[f"{name}.lora_down.weight"] = ("BF16", [8, 5], down.tobytes())
    raw[f"{name}.lora_up.weight"] = ("BF16", [3, 8], up.tobytes())
    raw[f"{name}.alpha"] = ("BF16", [], np.array([0x4000], np.uint16).tobytes())  # 2.0
    sliced = {f"{name}.lora_down.weight": down[:4].tobytes(),
              f"{name}.lora_up.weight": up[:, :4].tobytes(),
              f"{name}.alpha": raw[f"{name}.alpha"][2]}
    meta = kohya_meta("networks.dylora", 8, 2, {"unit": "2"})
    src = write(tmp_path / "b.safetensors", {}, meta, raw=raw)
    f = read_safetensors(resize(src, 4, tmp_path / "b4.safetensors"))
    assert {k: f.raw(k) for k in f.tensors} == sliced
    assert all(t.dtype == "BF16" for t in f.tensors.values())


def test_output_loads_in_the_safetensors_library(dylora, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    out = resize(dylora, 12, tmp_path / "r12.safetensors")
    loaded = st.load_file(str(out))
    src = st.load_file(str(dylora))
    for k, v in src.items():
        want = v[:12] if "lora_down" in k else v[:, :12] if "lora_up" in k else v
        assert np.array_equal(loaded[k], want)


def test_all_writes_every_multiple_of_the_unit(dylora, tmp_path):
    outs = resize_all(dylora, str(tmp_path / "cut"))
    assert [(r, p.name) for r, p in outs] == [(4, "cut-rank4.safetensors"),
                                              (8, "cut-rank8.safetensors"),
                                              (12, "cut-rank12.safetensors")]
    for r, p in outs:
        assert read_safetensors(p).metadata["ss_network_dim"] == str(r)
        want = sliced_products(dylora, r)
        got = products(p)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_all_without_a_unit_uses_4_and_strips_the_suffix(tmp_path):
    src = write(tmp_path / "d.safetensors", lora_tensors(dim=12),
                kohya_meta("networks.dylora", 12, 1.0))
    outs = resize_all(src, str(tmp_path / "x.safetensors"))
    assert [p.name for _, p in outs] == ["x-rank4.safetensors", "x-rank8.safetensors"]


def test_new_files_get_normal_permissions(dylora, tmp_path, umask):
    out = resize(dylora, 4, tmp_path / "p.safetensors")
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_existing_output_is_never_overwritten(dylora, tmp_path):
    out = tmp_path / "keep.safetensors"
    out.write_bytes(b"mine")
    with pytest.raises(LorabakeError, match="keep.safetensors exists"):
        resize(dylora, 4, out)
    assert out.read_bytes() == b"mine"
    (tmp_path / "all-rank8.safetensors").write_bytes(b"mine too")
    with pytest.raises(LorabakeError, match="all-rank8.safetensors exists"):
        resize_all(dylora, str(tmp_path / "all"))
    # none of the others was written either
    assert sorted(p.name for p in tmp_path.glob("all-*")) == ["all-rank8.safetensors"]
    assert (tmp_path / "all-rank8.safetensors").read_bytes() == b"mine too"


@pytest.mark.parametrize("dim", [0, -1, 17])
def test_ranks_outside_the_file_are_refused(dylora, tmp_path, dim):
    with pytest.raises(LorabakeError, match=r"outside 1\.\.16"):
        resize(dylora, dim, tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()


def test_full_dim_is_allowed(dylora, tmp_path):
    out = resize(dylora, 16, tmp_path / "o.safetensors")
    assert products(out).keys() == products(dylora).keys()


@pytest.mark.parametrize("kind", ["loha", "lokr", "ia3", "lora", "locon"])
def test_other_networks_are_refused(tmp_path, kind):
    files = make_all(tmp_path / "in")
    with pytest.raises(LorabakeError) as exc:
        resize(files[kind], 2, tmp_path / "o.safetensors")
    assert str(files[kind]) in str(exc.value)
    assert not (tmp_path / "o.safetensors").exists()


def test_a_lora_without_metadata_can_be_cut(tmp_path):
    # files converted by other tools lose the metadata: the keys are enough
    src = write(tmp_path / "n.safetensors", lora_tensors(dim=8), None)
    out = resize(src, 4, tmp_path / "o.safetensors")
    assert read_safetensors(out).metadata["ss_network_dim"] == "4"


def test_a_file_created_while_writing_is_not_overwritten(dylora, tmp_path, monkeypatch):
    from lorabake_tui.core.base import atomic

    out = tmp_path / "race.safetensors"
    # another program creates the output after the existence check, before the rename
    monkeypatch.setattr(atomic, "after_final_check", lambda p: p.write_bytes(b"theirs"))
    with pytest.raises(LorabakeError, match="race.safetensors exists"):
        resize(dylora, 4, out)
    assert out.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_legacy_hash_window_is_the_joined_files_bytes():
    from lorabake_tui.core.lora.resize import _window

    r = np.random.default_rng(1)
    head = bytes(r.integers(0, 256, 40, dtype=np.uint8))
    datas = [bytes(r.integers(0, 256, n, dtype=np.uint8)) for n in (7, 0, 100, 33)]
    whole = head + b"".join(datas)
    for start, end in ((0, 10), (35, 50), (47, 47), (50, 170), (100, 400), (300, 400)):
        assert _window(head, datas, start, end) == whole[start:end]


def test_a_missing_output_folder_is_refused(dylora, tmp_path):
    with pytest.raises(LorabakeError, match="nowhere does not exist"):
        resize(dylora, 4, tmp_path / "nowhere" / "o.safetensors")
    assert not (tmp_path / "nowhere").exists()
