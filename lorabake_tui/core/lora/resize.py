"""`lorabake lora resize`: rank N out of a DyLoRA file, as kohya's extract_lora_from_dylora
does. DyLoRA trains its ranks nested (rank N is the first N), so rank N is the first N rows
of every `lora_down` and the first N columns of every `lora_up`; alphas stay as they are.

The bytes are sliced as stored, so every dtype (bf16 too) comes out bit for bit. Outputs
are new files only, written whole (temp file, fsync, rename that never replaces a file).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ..base.atomic import EXISTS, write_batch
from ..base.errors import LorabakeError
from .info import RESIZED_KEY
from .modules import group_keys
from .read import (
    DTYPE_SIZES,
    SafetensorsFile,
    TensorEntry,
    encode_header,
    encode_safetensors,
    read_safetensors,
)

DEFAULT_UNIT = 4  # kohya's DyLoRA default
_TAG = "lorabake-resize"


def full_dim(f: SafetensorsFile) -> int:
    """The DyLoRA's trained dim: the largest `lora_down` rank. LorabakeError for a file that is
    not a kohya LoRA (lora_down/lora_up per module) or was trained as another network."""
    groups = group_keys(f)
    downs = [p["lora_down.weight"] for p in groups.values() if "lora_down.weight" in p]
    bad = [m for m, p in groups.items() if ("lora_down.weight" in p) != ("lora_up.weight" in p)
           or not {"lora_down.weight", "alpha"} >= set(p) - {"lora_up.weight"}]
    if not downs or bad:
        what = (f"module {bad[0]} has keys other than lora_down, lora_up and alpha" if bad
                else "no lora_down/lora_up weights")
        raise LorabakeError(f"{f.path} is not a kohya LoRA file ({what})",
                            "lora resize takes a DyLoRA saved as a kohya LoRA")
    module = f.metadata.get("ss_network_module", "").strip()
    if module and module != "networks.dylora":
        raise LorabakeError(f"{f.path} was trained as {module}, not DyLoRA: its first N ranks "
                            "are not a rank-N LoRA",
                            "only a DyLoRA (networks.dylora) can be cut this way")
    return max(f.tensors[k].shape[0] for k in downs)


def unit_of(f: SafetensorsFile) -> int:
    try:
        args = json.loads(f.metadata.get("ss_network_args") or "{}")
        unit = int(str(args.get("unit", DEFAULT_UNIT)))
    except (ValueError, AttributeError):
        return DEFAULT_UNIT
    return unit if unit >= 1 else DEFAULT_UNIT


def _slice(t: TensorEntry, data: bytes, n: int, axis: int) -> tuple[TensorEntry, bytes]:
    """The first `n` along `axis` (0 or 1) of a tensor stored row-major as raw bytes."""
    if axis >= len(t.shape) or t.shape[axis] <= n:
        return t, data
    size = DTYPE_SIZES[t.dtype]
    lead = math.prod(t.shape[:axis])
    inner = math.prod(t.shape[axis + 1:]) * size
    cut = np.frombuffer(data, np.uint8).reshape(lead, t.shape[axis], inner)[:, :n, :]
    shape = t.shape[:axis] + (n,) + t.shape[axis + 1:]
    new = TensorEntry(t.name, t.dtype, shape, 0, 0)
    return new, np.ascontiguousarray(cut).tobytes()


def resized_bytes(f: SafetensorsFile, dim: int, full: int) -> bytes:
    """The file at rank `dim`, with ss_network_dim, the note and sshs_* hashes updated."""
    parts: list[tuple[TensorEntry, bytes]] = []
    with open(f.path, "rb") as fh:
        for t in f.tensors.values():
            fh.seek(f.data_start + t.begin)
            data = fh.read(t.nbytes)
            if t.name.endswith(".lora_down.weight"):
                parts.append(_slice(t, data, dim, 0))
            elif t.name.endswith(".lora_up.weight"):
                parts.append(_slice(t, data, dim, 1))
            else:
                parts.append((t, data))
    # the comment (the triggers) stays as it is; the split is said in a key of its own
    meta = {k: v for k, v in f.metadata.items() if k not in ("sshs_model_hash",
                                                            "sshs_legacy_hash")}
    meta["ss_network_dim"] = str(dim)
    meta[RESIZED_KEY] = f"split from DyLoRA, rank {full} to {dim}"
    # A1111 and Civitai name a LoRA by these hashes, and the source's are wrong here. The data
    # hash does not depend on the header; the legacy one is taken before they are added, as
    # the trainer does.
    data = hashlib.sha256()
    for _, d in parts:
        data.update(d)
    window = _window(encode_header(parts, meta), [d for _, d in parts], 0x100000, 0x110000)
    meta["sshs_model_hash"] = data.hexdigest()
    meta["sshs_legacy_hash"] = hashlib.sha256(window).hexdigest()[:8]
    return encode_safetensors(parts, meta)


def _window(head: bytes, datas: list[bytes], start: int, end: int) -> bytes:
    """Bytes [start, end) of the file head + datas, without joining it all."""
    out, pos = [], 0
    for chunk in (head, *datas):
        lo, hi = max(start - pos, 0), min(end - pos, len(chunk))
        if lo < hi:
            out.append(chunk[lo:hi])
        pos += len(chunk)
    return b"".join(out)


def check_dim(dim: int, full: int, f: SafetensorsFile) -> None:
    if dim < 1 or dim > full:
        raise LorabakeError(f"--dim {dim} is outside 1..{full} ({f.path} has rank {full})",
                            f"pass a rank from 1 to {full}")


def _write_new(path: Path, data: bytes) -> None:
    if not path.parent.is_dir():
        raise LorabakeError(f"{path.parent} does not exist",
                            "create the folder first, or choose another output")
    if write_batch([(path, data)], _TAG, [None]) == [(0, EXISTS)]:
        raise LorabakeError(f"{path} exists", "choose another output, or delete it first")


def resize(path: Path, dim: int, out: Path) -> Path:
    f = read_safetensors(path)
    full = full_dim(f)
    check_dim(dim, full, f)
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise LorabakeError(f"{out} exists", "choose another -o, or delete it first")
    _write_new(out, resized_bytes(f, dim, full))
    return out


def resize_all(path: Path, prefix: str) -> list[tuple[int, Path]]:
    """Every multiple of the unit below the full dim, as PREFIX-rankN.safetensors. No file is
    written when any of them exists."""
    f = read_safetensors(path)
    full = full_dim(f)
    unit = unit_of(f)
    ranks = list(range(unit, full, unit))
    if not ranks:
        raise LorabakeError(f"{f.path} has rank {full}: no multiple of its unit {unit} is "
                            "below it", "nothing to split")
    prefix = str(prefix).removesuffix(".safetensors")
    outs = [(r, Path(f"{prefix}-rank{r}.safetensors")) for r in ranks]
    taken = [str(p) for _, p in outs if p.exists() or p.is_symlink()]
    if taken:
        raise LorabakeError(f"{taken[0]} exists" + (f" (and {len(taken) - 1} more)"
                                                   if len(taken) > 1 else ""),
                            "choose another -o prefix, or delete them first")
    for r, p in outs:
        _write_new(p, resized_bytes(f, r, full))
    return outs
