"""Parsing and writing one caption file: the single definition shared by every feature.

A caption is one line of comma-separated tags (kohya reads only the first line). We keep what
we do not own exactly as found: a UTF-8 byte-order mark, the line ending, anything after the
first line. A file that is not valid UTF-8 is never parsed, so it can never be rewritten with
replacement characters.
"""

from __future__ import annotations

from dataclasses import dataclass

BOM = "\ufeff"


class CaptionDecodeError(ValueError):
    """The bytes are not UTF-8; `position` is the first bad byte."""

    def __init__(self, position: int) -> None:
        super().__init__(f"not valid UTF-8 (byte {position})")
        self.position = position


@dataclass(frozen=True, slots=True)
class CaptionText:
    tags: tuple[str, ...]
    bom: bool = False
    eol: str = "\n"  # the first line's terminator as found: "\n", "\r\n", "\r" or ""
    rest: str = ""  # everything after the first line, verbatim


def split_tags(line: str) -> list[str]:
    """Comma-separated, trimmed, empty ones dropped, order and written form kept."""
    return [t for t in (p.strip() for p in line.split(",")) if t]


def parse_caption(data: bytes) -> CaptionText:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaptionDecodeError(exc.start) from None
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    lf, cr = text.find("\n"), text.find("\r")
    if cr == -1 and lf == -1:
        cut, eol = len(text), ""
    elif cr == -1 or (lf != -1 and lf < cr):
        cut, eol = lf, "\n"
    else:
        cut, eol = cr, "\r\n" if text[cr + 1:cr + 2] == "\n" else "\r"
    return CaptionText(tuple(split_tags(text[:cut])), bom, eol, text[cut + len(eol):])


def format_caption(original: CaptionText | None, tags: list[str] | tuple[str, ...]) -> bytes:
    """The bytes of a caption holding `tags`, keeping BOM, line ending and the rest of the
    original file; a new file gets one line ending in a newline."""
    if original is None:
        return (", ".join(tags) + "\n").encode("utf-8")
    line = ", ".join(tags)
    return ((BOM if original.bom else "") + line + original.eol + original.rest).encode("utf-8")
