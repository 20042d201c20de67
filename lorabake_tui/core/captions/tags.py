"""One definition of what a tag is and when two tags are the same.

Danbooru-style tags are written with spaces or underscores (`long hair`, `long_hair`) and
with escaped parentheses in prompts (`photo \\(medium\\)`); all of these name one tag. The
written form is kept as the user wrote it; matching always goes through `tag_key`.
"""

from __future__ import annotations

import functools

# Emoticon tags such as `^_^` or `o_o` are not words joined by underscores: leave them alone.
SHORT_TAG = 3

WRITE_STYLES = ("keep", "spaces", "underscores")


@functools.lru_cache(maxsize=1 << 16)  # 10k captions x 20 tags repeat a few hundred tags
def tag_key(tag: str) -> str:
    """The matching key: parentheses unescaped, underscores read as spaces, trimmed."""
    t = tag.strip().replace("\\(", "(").replace("\\)", ")")
    if len(t) > SHORT_TAG:
        t = t.replace("_", " ").strip()  # strip again: `_x_` must equal `x` (idempotent)
    return t


def styled(tag: str, style: str) -> str:
    """`tag` written in the project's style: as is, with spaces, or with underscores."""
    if style not in WRITE_STYLES:
        raise ValueError(f"unknown write style {style!r} (use {', '.join(WRITE_STYLES)})")
    if style == "keep" or len(tag.strip()) <= SHORT_TAG:
        return tag
    return tag.replace("_", " ") if style == "spaces" else tag.replace(" ", "_")
