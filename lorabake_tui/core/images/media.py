"""Which files are images, and which of them kohya can read."""

from __future__ import annotations

# kohya's train_util.IMAGE_EXTENSIONS for SD1 (compared case-insensitively)
KOHYA_IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
# recognised so the user hears about them, but kohya cannot load them: convert first
UNREADABLE_BY_KOHYA_EXTS = frozenset({".avif", ".gif"})
IMAGE_EXTS = KOHYA_IMAGE_EXTS | UNREADABLE_BY_KOHYA_EXTS

DEFAULT_CAPTION_EXT = ".txt"


def image_ext(name: str) -> str | None:
    """The lowercased extension if `name` is an image we recognise, else None."""
    dot = name.rfind(".")
    if dot <= 0:
        return None
    ext = name[dot:].lower()
    return ext if ext in IMAGE_EXTS else None


def normalise_caption_ext(ext: str) -> str:
    ext = ext.strip()
    if not ext:
        raise ValueError("caption extension is empty")
    return ext if ext.startswith(".") else "." + ext
