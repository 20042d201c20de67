"""Reading a .safetensors file without torch: the header (tensor names, dtypes, shapes, byte
ranges and the string metadata), a small tensor as numpy, and writing a file back from raw
byte slices. Raw bytes keep every dtype working, bf16 included (numpy has none).

Layout: 8-byte little-endian header length N, N bytes of JSON
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data;
offsets count from the end of the header.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import LorabakeError
from ..config.checkpoints import has_pickle_suffix, pickled_content

# bytes per element of each safetensors dtype
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4", "U64": "<u8"}
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
NOT_SAFETENSORS_FIX = "pass a LoRA .safetensors file"


@dataclass(frozen=True, slots=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets in the data section
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(slots=True)
class SafetensorsFile:
    path: Path
    size: int  # bytes of the whole file
    data_start: int  # 8 + header length
    tensors: dict[str, TensorEntry]  # in file order
    metadata: dict[str, str]

    def raw(self, name: str) -> bytes:
        t = self.tensors[name]
        with open(self.path, "rb") as fh:
            fh.seek(self.data_start + t.begin)
            return fh.read(t.nbytes)

    def array(self, name: str) -> np.ndarray:
        """The tensor as a numpy array (bf16 widened to float32)."""
        return to_array(self.tensors[name], self.raw(name))


def to_array(t: TensorEntry, data: bytes) -> np.ndarray:
    if t.dtype == "BF16":
        # bf16 is the top half of a float32
        wide = np.frombuffer(data, "<u2").astype(np.uint32) << 16
        return wide.view("<f4").reshape(t.shape)
    if t.dtype not in _NUMPY:
        raise LorabakeError(f"tensor {t.name} has dtype {t.dtype}, which lorabake cannot read")
    return np.frombuffer(data, _NUMPY[t.dtype]).reshape(t.shape)


def read_safetensors(path: Path) -> SafetensorsFile:
    """The header of `path`; LorabakeError (naming the file) for a pickle, a file that is
    not safetensors, or one cut short."""
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise LorabakeError(f"{shown}: no such file" if not path.exists()
                            else f"{shown} is not a file", NOT_SAFETENSORS_FIX)
    if has_pickle_suffix(path.name) or pickled_content(path):
        raise LorabakeError(f"{shown} is a pickle file, which lorabake does not load (loading "
                            "a pickle can run any code in it)",
                            "use the .safetensors version of the LoRA")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise LorabakeError(f"{shown} is not a safetensors file ({size} bytes)",
                                NOT_SAFETENSORS_FIX)
        (n,) = struct.unpack("<Q", head)
        if n < 2 or n > MAX_HEADER:
            raise LorabakeError(f"{shown} is not a safetensors file (no header)",
                                NOT_SAFETENSORS_FIX)
        if 8 + n > size:
            raise LorabakeError(f"{shown} is truncated: its header needs {8 + n} bytes, the "
                                f"file has {size}", "copy or download it again")
        text = fh.read(n)
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict):
        raise LorabakeError(f"{shown} is not a safetensors file (its header is not JSON)",
                            NOT_SAFETENSORS_FIX)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise LorabakeError(f"{shown}: the safetensors metadata is not a table",
                            NOT_SAFETENSORS_FIX)
    tensors = {}
    data_size = size - 8 - n
    for name, info in header.items():
        t = _entry(shown, name, info)
        if t.end > data_size:
            raise LorabakeError(f"{shown} is truncated: tensor {name} ends at byte "
                                f"{8 + n + t.end}, the file has {size}",
                                "copy or download it again")
        tensors[name] = t
    ordered = dict(sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[0])))
    return SafetensorsFile(path, size, 8 + n, ordered,
                           {str(k): str(v) for k, v in meta.items()})


def _entry(shown: str, name: str, info: object) -> TensorEntry:
    bad = LorabakeError(f"{shown}: the header entry for tensor {name} is malformed",
                        NOT_SAFETENSORS_FIX)
    if not isinstance(info, dict):
        raise bad
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not (isinstance(dtype, str) and isinstance(shape, list) and isinstance(offsets, list)
            and len(offsets) == 2 and all(isinstance(x, int) and x >= 0 for x in shape)
            and all(isinstance(x, int) for x in offsets)):
        raise bad
    begin, end = offsets
    if dtype not in DTYPE_SIZES or not 0 <= begin <= end \
            or end - begin != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise bad
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def encode_header(tensors: list[tuple[TensorEntry, bytes]], metadata: dict[str, str]) -> bytes:
    """The 8-byte length and the JSON header of a file holding these tensors (entries give
    name, dtype and shape; offsets are laid out anew in this order) and metadata. Padded with
    spaces to a multiple of 8, as the safetensors library writes it, so the data is aligned."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    pos = 0
    for t, data in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape),
                          "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def encode_safetensors(tensors: list[tuple[TensorEntry, bytes]],
                       metadata: dict[str, str]) -> bytes:
    """The whole file: `encode_header` then the tensors' bytes."""
    return b"".join([encode_header(tensors, metadata), *(d for _, d in tensors)])
