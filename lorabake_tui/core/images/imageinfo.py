"""Read an image's pixel size, format and EXIF orientation from its file header, without
decoding pixels.

Scanning a dataset folder calls this once per file, so the fast path is one ``os.open``, a
4 KiB read of the head, a read of the last KiB and, for some files, a few small seeks: tens of
microseconds a file. Pillow is imported only for formats this module does not parse itself.

The tail read doubles as a cheap damage check. A truncated download usually keeps a valid
header but loses its end marker (PNG ``IEND``, JPEG ``EOI``, GIF trailer), or is shorter than
its container says it is (WEBP ``RIFF`` size, BMP ``bfSize``, AVIF top-level boxes).

The EXIF orientation (1-8) comes from the first Exif APP1 segment of a JPEG, a PNG ``eXIf``
chunk (before IDAT, or one in the tail already read) and a WebP ``EXIF`` chunk (looked for
only when the VP8X flags say there is one): only IFD0 is read, a few dozen bytes. A missing
or damaged EXIF block is orientation 1; it never makes the image unreadable (kohya ignores
EXIF and reads the pixels as stored). XMP ``tiff:Orientation`` is not read, and formats left
to Pillow report 1.

The size is reported whatever it is: judging it against the pixel limit (core/images/limits)
is the caller's business. Nothing here decodes pixels, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["ImageHeader", "ImageReadError", "read_image_header"]

_HEAD_SIZE = 4096  # holds every header parsed here, and most JPEG segments before SOF
_TAIL_SIZE = 1024  # end markers must sit within the last KiB of the file
_MAX_AVIF_META = 1 << 20  # a real `meta` box is a few hundred bytes; bigger goes to Pillow

# os.O_BINARY matters on Windows only; O_NONBLOCK keeps a FIFO in a dataset from hanging us.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """Format and pixel size of an image, as its header states them."""

    format: str  # "png", "jpeg", "webp", "bmp", "gif", "avif", or Pillow's format, lowercased
    width: int  # the stored size: what kohya buckets and trains (EXIF orientation not applied)
    height: int
    orientation: int = 1  # EXIF orientation 1-8; 1 (upright as stored) when there is none


class ImageReadError(Exception):
    """The file is not a readable image; ``str(exc)`` is a short human reason."""


def read_image_header(path: os.PathLike | str) -> ImageHeader:
    """Return the format and size of the image at *path*, read from its header only.

    Raises ImageReadError for unreadable, empty, truncated, damaged or non-image files.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise ImageReadError(_os_reason(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageReadError("not a regular file")
        if info.st_size == 0:
            raise ImageReadError("empty file")
        reader = _Reader(fd, info.st_size)
        parser = _sniff(reader.head)
        header = parser(reader) if parser else None
    except OSError as exc:
        raise ImageReadError(_os_reason(exc)) from exc
    finally:
        os.close(fd)

    if header is None:  # not a format parsed here, or AVIF without ispe: ask Pillow
        reason = "not an image (unknown header)"
        if parser is _avif:
            reason = "damaged: AVIF has no image size (ispe) box"
        header = _read_with_pillow(path, reason)
    if header.width <= 0 or header.height <= 0:
        raise ImageReadError(f"damaged: image size is {header.width}x{header.height}")
    return header


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class _Reader:
    """Random access to an open file through one cached window, so nearby reads cost no
    syscall: the first window is the file's head, and tiny files are read whole at once."""

    __slots__ = ("fd", "size", "head", "_buf", "_off")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.head = self._buf = os.read(fd, _HEAD_SIZE + _TAIL_SIZE)
        self._off = 0

    def read(self, offset: int, n: int) -> bytes:
        """Up to *n* bytes at *offset*; fewer at the end of the file."""
        end = offset + n
        if self._off <= offset and end <= self._off + len(self._buf):
            return self._buf[offset - self._off : end - self._off]
        os.lseek(self.fd, offset, os.SEEK_SET)
        self._buf = os.read(self.fd, max(n, _HEAD_SIZE))
        self._off = offset
        return self._buf[:n]

    def need(self, offset: int, n: int, what: str) -> bytes:
        """Exactly *n* bytes at *offset*; a shorter file is a truncated one."""
        data = self.read(offset, n)
        if len(data) < n:
            raise ImageReadError(f"truncated: {what} is cut short")
        return data

    def tail(self) -> bytes:
        start = max(0, self.size - _TAIL_SIZE)
        return self.read(start, self.size - start)


Parser = Callable[[_Reader], ImageHeader | None]


def _sniff(head: bytes) -> Parser | None:
    """Pick a parser by magic bytes; the file extension is deliberately ignored."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp
    if head.startswith((b"GIF87a", b"GIF89a")):
        return _gif
    if head.startswith(b"BM"):
        return _bmp
    if head[4:8] == b"ftyp" and _is_avif_ftyp(head):
        return _avif
    return None


# --- PNG ---------------------------------------------------------------------------------


def _png(r: _Reader) -> ImageHeader:
    # After the 8-byte signature the first chunk must be IHDR: length, type, width, height.
    ihdr = r.need(8, 16, "PNG header")
    if ihdr[4:8] != b"IHDR":
        raise ImageReadError("damaged: PNG does not start with an IHDR chunk")
    width, height = struct.unpack_from(">II", ihdr, 8)
    # EXIF before the tail read, while the head window holds it; most PNGs have IDAT right
    # after IHDR, and that one comparison is all they cost.
    orientation = None if r.head[37:41] == b"IDAT" else _png_exif_chunk(r)
    # Every PNG ends with an IEND chunk; a little junk after it is tolerated. (rfind: it is
    # at the very end, so searching backwards finds it at once.)
    tail = r.tail()
    iend = tail.rfind(b"IEND")
    if iend < 0:
        raise ImageReadError("truncated: PNG has no IEND chunk")
    if orientation is None:
        orientation = _png_tail_exif(r, tail, iend)
    return ImageHeader("png", width, height, orientation)


def _png_exif_chunk(r: _Reader) -> int | None:
    """Orientation from an eXIf chunk before the image data, None without one."""
    # The chunks before IDAT are few and usually inside the head window.
    pos = 33  # signature(8) + IHDR chunk(25)
    while pos + 8 <= r.size:
        length, kind = struct.unpack(">I4s", r.read(pos, 8).ljust(8, b"\0"))
        if kind == b"eXIf":
            return _exif_orientation(r, pos + 8, length)
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length  # length(4) type(4) data crc(4)
    return None


def _png_tail_exif(r: _Reader, tail: bytes, iend: int) -> int:
    # Pillow also reads an eXIf chunk written after the image data; one in the tail is free.
    at = tail.rfind(b"eXIf", 0, iend)
    if at >= 4:
        (length,) = struct.unpack_from(">I", tail, at - 4)
        start = r.size - len(tail) + at + 4
        if start + length <= r.size:
            return _exif_orientation(r, start, length)
    return 1


# --- JPEG --------------------------------------------------------------------------------

# Markers with no length field after them: TEM, RST0..RST7 and SOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but don't.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(r: _Reader) -> ImageHeader:
    # Walk the marker segments after SOI, skipping APPn/EXIF/DQT/... by their lengths, until
    # the frame header. A big EXIF block just means one seek past it.
    pos = 2
    orientation: int | None = None
    while True:
        marker = r.need(pos, 2, "JPEG header")
        if marker[0] != 0xFF or marker[1] == 0x00:
            raise ImageReadError(f"damaged: JPEG marker expected at byte {pos}")
        code = marker[1]
        if code == 0xFF:  # fill byte: any marker may be padded with extra 0xFF
            pos += 1
            continue
        pos += 2
        if code in _JPEG_STANDALONE:
            continue
        if code in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            raise ImageReadError("damaged: JPEG has no frame header (SOF)")
        if code in _JPEG_SOF:
            # Segment: length(2) precision(1) height(2) width(2)
            height, width = struct.unpack_from(">HH", r.need(pos, 7, "JPEG frame header"), 3)
            break
        (length,) = struct.unpack(">H", r.need(pos, 2, "JPEG header"))
        if length < 2:
            raise ImageReadError(f"damaged: JPEG segment length {length} at byte {pos}")
        # APP1 "Exif\0\0": the first one is what Pillow (and so every viewer) goes by
        if code == 0xE1 and orientation is None and r.read(pos + 2, 6) == b"Exif\0\0":
            orientation = _exif_orientation(r, pos + 8, length - 8)
        pos += length
    # Entropy-coded data never contains FF D9, so finding EOI near the end means it is whole.
    if b"\xff\xd9" not in r.tail():
        raise ImageReadError("truncated: JPEG has no end-of-image marker")
    return ImageHeader("jpeg", width, height, orientation or 1)


# --- WEBP --------------------------------------------------------------------------------


def _webp(r: _Reader) -> ImageHeader:
    # RIFF header: "RIFF", size of everything after these 8 bytes, "WEBP".
    (riff_size,) = struct.unpack_from("<I", r.head, 4)
    if riff_size + 8 > r.size:
        raise ImageReadError(
            f"truncated: WEBP is {r.size} bytes but its RIFF header says {riff_size + 8}"
        )
    # The first chunk says which bitstream follows and holds the size.
    fourcc = r.need(12, 8, "WEBP header")[:4]
    if fourcc == b"VP8 ":
        # Lossy: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height
        # (the top 2 bits of each are upscaling hints).
        data = r.need(20, 10, "WEBP VP8 header")
        if data[3:6] != b"\x9d\x01\x2a":
            raise ImageReadError("damaged: WEBP VP8 start code missing")
        width, height = struct.unpack_from("<HH", data, 6)
        return ImageHeader("webp", width & 0x3FFF, height & 0x3FFF)
    if fourcc == b"VP8L":
        # Lossless: signature 0x2f, then width-1 and height-1 packed as 14 bits each.
        data = r.need(20, 5, "WEBP VP8L header")
        if data[0] != 0x2F:
            raise ImageReadError("damaged: WEBP VP8L signature missing")
        (bits,) = struct.unpack_from("<I", data, 1)
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if fourcc == b"VP8X":
        # Extended (alpha, animation, metadata): flags(1) reserved(3), then the canvas
        # width-1 and height-1 as 24-bit little-endian numbers.
        data = r.need(20, 10, "WEBP VP8X header")
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
        orientation = _webp_orientation(r, riff_size + 8) if data[0] & _VP8X_EXIF else 1
        return ImageHeader("webp", width, height, orientation)
    raise ImageReadError(f"damaged: WEBP starts with an unknown chunk {fourcc!r}")


_VP8X_EXIF = 0x08  # VP8X flags: an EXIF chunk follows the image data


def _webp_orientation(r: _Reader, end: int) -> int:
    # Chunks after the RIFF header: fourcc(4), little-endian size(4), data padded to even.
    # EXIF comes after the (big) image data: one seek past it, and only when flagged.
    pos = 12
    while pos + 8 <= end:
        fourcc, size = struct.unpack("<4sI", r.read(pos, 8).ljust(8, b"\0"))
        if fourcc == b"EXIF":
            return _exif_orientation(r, pos + 8, size)
        pos += 8 + size + (size & 1)
    return 1


# --- EXIF (TIFF IFD0) --------------------------------------------------------------------

_ORIENTATION_TAG = 0x0112
_MAX_IFD_ENTRIES = 512  # IFD0 has a few dozen; more means a damaged block


def _exif_orientation(r: _Reader, start: int, length: int) -> int:
    """The Orientation tag of the EXIF block at file offset *start*; 1 if absent or damaged.

    The block is a TIFF structure (some writers put "Exif" and two zero bytes first): byte
    order, 42, the offset of IFD0, whose 12-byte entries are tag(2) type(2) count(4) value(4).
    """
    head = r.read(start, 8)
    if head[:6] == b"Exif\0\0":
        start, length = start + 6, length - 6
        head = r.read(start, 8)
    if len(head) < 8 or head[:4] not in (b"II*\0", b"MM\0*"):
        return 1
    endian = "<" if head[0] == 0x49 else ">"
    (ifd,) = struct.unpack_from(endian + "I", head, 4)
    count_at = start + ifd
    if ifd < 8 or ifd + 2 > length:
        return 1
    (count,) = struct.unpack(endian + "H", r.read(count_at, 2).ljust(2, b"\0"))
    count = min(count, _MAX_IFD_ENTRIES, (length - ifd - 2) // 12)
    entries = r.read(count_at + 2, 12 * count)
    for i in range(0, len(entries) - 11, 12):
        tag, kind = struct.unpack_from(endian + "HH", entries, i)
        if tag != _ORIENTATION_TAG:
            continue
        if kind == 3:  # SHORT: the value sits in the first two bytes of the value field
            (value,) = struct.unpack_from(endian + "H", entries, i + 8)
        elif kind == 4:  # LONG, from sloppy writers
            (value,) = struct.unpack_from(endian + "I", entries, i + 8)
        else:
            return 1
        return value if 1 <= value <= 8 else 1  # other values: viewers leave it as stored
    return 1


# --- GIF ---------------------------------------------------------------------------------


def _gif(r: _Reader) -> ImageHeader:
    # Logical screen descriptor right after the 6-byte signature: width, height (LE 16-bit).
    width, height = struct.unpack("<HH", r.need(6, 4, "GIF header"))
    # A GIF ends with the trailer byte ';' (0x3B); some writers pad zeros after it.
    if not r.tail().rstrip(b"\0").endswith(b";"):
        raise ImageReadError("truncated: GIF has no trailer")
    return ImageHeader("gif", width, height)


# --- BMP ---------------------------------------------------------------------------------

# DIB header sizes in the wild: 12 is BITMAPCOREHEADER (16-bit dims), 16 and 64 are OS/2 v2,
# 40 is BITMAPINFOHEADER, 52/56 its Adobe extensions, 108 and 124 are V4 and V5.
_BMP_DIB_SIZES = frozenset({16, 40, 52, 56, 64, 108, 124})


def _bmp(r: _Reader) -> ImageHeader:
    # File header: "BM", bfSize(4), reserved(4), pixel data offset(4); then the DIB header,
    # which starts with its own size. 26 bytes reach the dims for every variant.
    head = r.need(0, 26, "BMP header")
    file_size, pixel_offset, dib_size = struct.unpack_from("<I4xII", head, 2)
    if dib_size == 12:
        width, height = struct.unpack_from("<HH", head, 18)
    elif dib_size in _BMP_DIB_SIZES:
        width, height = struct.unpack_from("<ii", head, 18)
    else:
        raise ImageReadError(f"damaged: BMP header size {dib_size} is unknown")
    if 14 + dib_size > r.size:
        raise ImageReadError("truncated: BMP header is cut short")
    if file_size and file_size > r.size:
        raise ImageReadError(f"truncated: BMP is {r.size} bytes but its header says {file_size}")
    if pixel_offset >= r.size:
        raise ImageReadError("truncated: BMP has no pixel data")
    # A negative height means rows are stored top-down; the size is the same.
    return ImageHeader("bmp", width, abs(height))


# --- AVIF (ISO-BMFF) ---------------------------------------------------------------------

_AVIF_BRANDS = (b"avif", b"avis")


def _is_avif_ftyp(head: bytes) -> bool:
    # ftyp: size(4) "ftyp" major_brand(4) minor_version(4) compatible_brands(4 each)...
    (size,) = struct.unpack_from(">I", head, 0)
    if head[8:12] in _AVIF_BRANDS:
        return True
    brands = head[16 : min(size, len(head))]
    return any(brands[i : i + 4] in _AVIF_BRANDS for i in range(0, len(brands) - 3, 4))


def _avif(r: _Reader) -> ImageHeader | None:
    # Walk the top-level boxes (ftyp, meta, mdat, ...). Seeing each one end inside the file is
    # the truncation check; the `meta` box holds the image size.
    meta = None
    pos = 0
    while pos < r.size:
        (size,) = struct.unpack(">I", r.need(pos, 4, "AVIF box header"))
        kind = r.need(pos + 4, 4, "AVIF box header")
        header_len = 8
        if size == 1:  # 64-bit size follows the type
            (size,) = struct.unpack(">Q", r.need(pos + 8, 8, "AVIF box header"))
            header_len = 16
        elif size == 0:  # box runs to the end of the file
            size = r.size - pos
        if size < header_len:
            raise ImageReadError(f"damaged: AVIF box {kind!r} has size {size}")
        if pos + size > r.size:
            raise ImageReadError(f"truncated: AVIF box {kind.decode('latin-1')!r} runs past EOF")
        if kind == b"meta" and meta is None:
            meta = (pos + header_len, size - header_len)
        pos += size
    if meta is None or meta[1] > _MAX_AVIF_META:
        return None
    size = _avif_ispe_size(r.read(*meta))
    if size is None:
        return None  # no ispe box: Pillow may still know better
    return ImageHeader("avif", *size)


def _avif_ispe_size(meta: bytes) -> tuple[int, int] | None:
    """Largest `ispe` (image spatial extents) in meta -> iprp -> ipco.

    Items other than the primary image (alpha plane, thumbnail, gain map, grid tiles) have
    their own ispe; none is bigger than the primary image, so the largest is its size.
    """
    best = None
    # meta is a FullBox: 4 bytes version+flags precede its children.
    for kind, start, end in _iter_boxes(meta, 4, len(meta)):
        if kind != b"iprp":
            continue
        for kind2, start2, end2 in _iter_boxes(meta, start, end):
            if kind2 != b"ipco":
                continue
            for kind3, start3, end3 in _iter_boxes(meta, start2, end2):
                if kind3 == b"ispe" and end3 - start3 >= 12:
                    # ispe is a FullBox too: version+flags(4), width(4), height(4)
                    width, height = struct.unpack_from(">II", meta, start3 + 4)
                    if best is None or width * height > best[0] * best[1]:
                        best = (width, height)
    return best


def _iter_boxes(buf: bytes, pos: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload start, payload end) of the boxes in buf[pos:end]."""
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header_len = 8
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack_from(">Q", buf, pos + 8)
            header_len = 16
        elif size == 0:
            size = end - pos
        if size < header_len or pos + size > end:
            return  # damaged box inside meta: stop, the caller falls back to Pillow
        yield kind, pos + header_len, pos + size
        pos += size


# --- Pillow fallback ---------------------------------------------------------------------


def _read_with_pillow(path: os.PathLike | str, reason: str) -> ImageHeader:
    """Ask Pillow for formats not parsed above; Image.open reads only the header."""
    try:
        from PIL import Image  # imported here so the fast path never pays for Pillow
    except ImportError as exc:
        raise ImageReadError(reason) from exc
    try:
        # Pillow warns about (and above twice its limit refuses) big images as it opens them;
        # the size alone decodes nothing, and the caller judges it against limits.MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                fmt = (image.format or "unknown").lower()
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"too many pixels for Pillow to open ({exc})") from exc
    except Exception as exc:  # Pillow raises many exception types for non-images
        raise ImageReadError(reason) from exc
    # Orientation 1: what these formats need is up to Pillow (its TIFF reader, for one, turns
    # the image itself and reports the turned size), so nothing is left to apply.
    return ImageHeader(fmt, width, height)
