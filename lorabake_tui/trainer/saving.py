"""Writing LoRA files: kohya layout, header metadata, hashes, atomic, keep-last-N. Their
names in the run folder are core/run/folder.py's."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from ..core.base.atomic import atomic_write_bytes
from ..core.run.folder import epoch_lora_name, epoch_of_lora, step_lora_name


def _data_part(blob: bytes) -> bytes:
    (n,) = struct.unpack("<Q", blob[:8])
    return blob[8 + n:]


def serialize_lora(tensors: dict, metadata: dict[str, str]) -> bytes:
    """The file's bytes. The hashes are computed as kohya does, over a serialization holding
    only the ss_* training metadata, so later header edits never change them."""
    from safetensors.torch import save

    base = save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    meta = dict(metadata)
    meta["sshs_model_hash"] = hashlib.sha256(_data_part(base)).hexdigest()
    meta["sshs_legacy_hash"] = hashlib.sha256(base[0x100000:0x110000]).hexdigest()[:8]
    return save(tensors, meta)


def write_lora(path: Path, tensors: dict, metadata: dict[str, str]) -> int:
    """Temp file + fsync + rename: a full disk leaves the previous file as it was."""
    blob = serialize_lora(tensors, metadata)
    atomic_write_bytes(path, blob)
    return len(blob)


# the loop's names for them
epoch_file = epoch_lora_name
step_file = step_lora_name


def prune_epoch_files(run_dir: Path, name: str, keep_last: int) -> list[Path]:
    """Remove this run's older per-epoch files beyond the newest `keep_last` (0: keep all)."""
    if keep_last <= 0:
        return []
    files = sorted((epoch, p) for p in Path(run_dir).iterdir()
                   if (epoch := epoch_of_lora(name, p.name)) is not None)
    removed = []
    for _, p in files[:-keep_last]:
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed
