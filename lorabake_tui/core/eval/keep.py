"""Keeping an epoch: copy a LoRA file, its metadata inside it untouched, to the folder the
user's UI loads LoRAs from (A1111/ComfyUI `models/Lora`), never replacing a file there.

The copy is written to a temporary name, synced, then linked into place with link(2), which
fails rather than replace an existing name; a name that is taken gets `-2`, `-3`, ... unless
the file there is already the same bytes (then nothing is copied)."""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
from pathlib import Path

from ..base.errors import LorabakeError


def keep_lora(src: Path | str, folder: Path | str, name: str | None = None) -> tuple[Path, bool]:
    """Copy `src` into `folder` (as `name`, default its own name); returns (path, copied):
    copied is False when an identical file was already there."""
    src, folder = Path(src), Path(folder).expanduser()
    if not src.is_file():
        raise LorabakeError(f"{src}: no such file")
    if not str(folder).strip() or not folder.is_dir():
        raise LorabakeError(f"keep folder {folder}: not a folder",
                            "set it in the settings (e.g. stable-diffusion-webui/models/Lora)")
    stem, suffix = Path(name or src.name).stem, Path(name or src.name).suffix or ".safetensors"
    tmp = folder / f".{stem}.lorabake-{os.getpid()}.tmp"
    try:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)  # the training time stays visible in the file list
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        n = 1
        while True:
            target = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
            try:
                _place(tmp, target)
                return target, True
            except FileExistsError:
                if target.is_file() and filecmp.cmp(src, target, shallow=False):
                    return target, False
                n += 1
    except OSError as exc:
        raise LorabakeError(f"could not keep {src.name} in {folder}: "
                            f"{exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _place(tmp: Path, target: Path) -> None:
    """Put `tmp`'s bytes at `target`, failing with FileExistsError if the name is taken."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # a filesystem without hard links (FAT, some network shares): create exclusively
        with open(target, "xb") as out, open(tmp, "rb") as f:
            shutil.copyfileobj(f, out)
            out.flush()
            os.fsync(out.fileno())
