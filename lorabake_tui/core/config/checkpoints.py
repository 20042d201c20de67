"""Which base-model files are pickles, and the one sentence that refuses them.

A pickle checkpoint (.ckpt, .pt, .pth, .bin, or such a file under another name) can run any
code in it while it loads, so lorabake loads none: not `config check` (validate.py, check.py),
not the trainer (trainer/base_model.py). Both ask here, so they cannot disagree about a file
and give the same words for it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
PICKLE_FIX = "convert it to .safetensors, or use a diffusers folder"
# the parts of a diffusers folder the trainer loads weights from
DIFFUSERS_WEIGHTS = ("unet", "vae", "text_encoder")


def pickle_refusal(shown: str) -> tuple[str, str]:
    """What `shown` (a file name as the user knows it) is and the fix: `config check` writes
    them as one finding, the trainer raises them as message and hint."""
    return (f"{shown} is a pickle checkpoint, which lorabake does not load (loading a pickle "
            "can run any code in it)", PICKLE_FIX)


def pickle_finding(shown: str) -> str:
    """The same as one `config check` finding about general.base_model."""
    what, fix = pickle_refusal(shown)
    return f"general.base_model: {what}: {fix}"


def has_pickle_suffix(name: str) -> bool:
    return name.strip().lower().endswith(PICKLE_SUFFIXES)


def pickle_in(path: Path) -> str | None:
    """The pickle that loading `path` as a base model would unpickle, named as `pickle_refusal`
    shows it (the file's name, or folder/part/file), or None. A file counts by its suffix or by
    its first bytes (a pickle renamed .safetensors); a diffusers folder when a part it loads
    has pickled weights and no .safetensors ones."""
    path = Path(path)
    if path.is_dir():
        for part in DIFFUSERS_WEIGHTS:
            sub = path / part
            if not sub.is_dir():
                continue
            names = sorted(p.name for p in sub.iterdir() if p.is_file())
            if any(n.endswith(".safetensors") for n in names):
                continue
            pickled = [n for n in names if has_pickle_suffix(n)]
            if pickled:
                return f"{path.name}/{part}/{pickled[0]}"
        return None
    if has_pickle_suffix(path.name) or (path.is_file() and pickled_content(path)):
        return path.name
    return None


def pickled_content(path: Path) -> bool:
    """`path` starts like a pickle: torch's zip format (an archive holding data.pkl) or a bare
    pickle stream (protocol 2 to 5, as torch's legacy format and plain pickle write it)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        # a safetensors header length can start with the same two bytes; its JSON then
        # starts at byte 8
        return head[8:9] != b"{"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    return False
