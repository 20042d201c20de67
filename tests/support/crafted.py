"""Files that claim more than they hold: image headers for decompression-bomb tests, written
byte by byte so no test ever allocates the pixels they claim."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A well-formed PNG (signature, IHDR with its CRC, one small IDAT, IEND) whose header
    says width x height 8-bit RGB; the pixel data is a few bytes, so decoding it would fail,
    but nothing that only reads the header can tell."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))
    return path


def tiff_claiming(path: Path, width: int, height: int) -> Path:
    """A little-endian TIFF header (one IFD: width, height, 8-bit greyscale, one strip) that
    Pillow opens without decoding; the scan's own header parser does not read TIFF, so it asks
    Pillow, which warns or refuses as the size grows."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
               (279, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    # header(8), then 8 bytes of "strip" at offset 8, then the IFD at 16
    path.write_bytes(b"II*\0" + struct.pack("<I", 16) + b"\0" * 8 + ifd)
    return path
