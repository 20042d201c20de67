"""Reading safetensors headers without torch: every file that is not a whole safetensors
file is refused with one sentence naming it; bf16 reads as float32; the writer's files load
in the safetensors library."""

from __future__ import annotations

import pickle
import struct
import zipfile

import numpy as np
import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.lora.read import (
    TensorEntry,
    encode_safetensors,
    read_safetensors,
    to_array,
)

from ...support.lora_files import kohya_meta, lora_tensors, write


def refused(path) -> str:
    with pytest.raises(LorabakeError) as exc:
        read_safetensors(path)
    text = str(exc.value)
    assert "\n" not in text and str(path) in text
    return text


def test_header_metadata_and_tensors(tmp_path):
    t = lora_tensors()
    f = read_safetensors(write(tmp_path / "a.safetensors", t, {"ss_steps": "12"}))
    assert f.metadata == {"ss_steps": "12"}
    assert list(f.tensors) == list(t)  # file order
    for name, arr in t.items():
        assert f.tensors[name].shape == arr.shape
        assert np.array_equal(f.array(name), arr)


def test_bf16_reads_as_float32():
    values = np.array([1.5, -2.0, 0.15625, 2.0**100], "<f4")
    raw = (values.view("<u4") >> 16).astype("<u2").tobytes()  # exact in bf16
    got = to_array(TensorEntry("x", "BF16", (2, 2), 0, 8), raw)
    assert got.dtype == np.float32 and np.array_equal(got.reshape(-1), values)


def test_pickles_are_refused_by_name_and_by_content(tmp_path):
    p = tmp_path / "lora.pt"
    p.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert "pickle" in refused(p)
    disguised = tmp_path / "lora.safetensors"
    disguised.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert "pickle" in refused(disguised)
    torch_zip = tmp_path / "zipped.safetensors"
    with zipfile.ZipFile(torch_zip, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}))
    assert "pickle" in refused(torch_zip)


def test_truncated_files_are_refused(tmp_path):
    whole = write(tmp_path / "w.safetensors", lora_tensors(), kohya_meta("networks.lora", 4, 2))
    data = whole.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    # (the folder's name holds the test's name: look for more than one word)
    for cut, why in ((len(data) - 1, "is truncated: tensor"),
                     (8 + n - 5, "is truncated: its header needs"),
                     (5, "is not a safetensors file")):
        p = tmp_path / f"cut{cut}.safetensors"
        p.write_bytes(data[:cut])
        assert why in refused(p)


def test_other_files_are_refused(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("this is not a tensor file at all\n")
    assert "not a safetensors file" in refused(text)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert "not a safetensors file" in refused(empty)
    bad_entry = tmp_path / "bad.safetensors"
    header = b'{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}'
    bad_entry.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    assert "tensor x is malformed" in refused(bad_entry)  # 4 floats are 16 bytes, not 8
    assert "no such file" in refused(tmp_path / "missing.safetensors")
    assert "not a file" in refused(tmp_path)


def test_encoded_files_load_in_the_safetensors_library(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    a = np.arange(12, dtype="<f2").reshape(3, 4)
    entry = TensorEntry("m.lora_down.weight", "F16", (3, 4), 0, 0)
    data = encode_safetensors([(entry, a.tobytes())], {"k": "v"})
    assert (8 + struct.unpack("<Q", data[:8])[0]) % 8 == 0  # data section aligned
    p = tmp_path / "e.safetensors"
    p.write_bytes(data)
    assert np.array_equal(st.load_file(str(p))["m.lora_down.weight"], a)
    from safetensors import safe_open

    with safe_open(str(p), "np") as fh:
        assert fh.metadata() == {"k": "v"}
