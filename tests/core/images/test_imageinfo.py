"""Tests for core.images.imageinfo: header-only size/format reading and damage checks."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, features

from lorabake_tui.core.images.imageinfo import ImageHeader, ImageReadError, read_image_header

from ...support.paths import REPO


def _noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Deterministic noisy image: compresses badly, so truncation lands in pixel data."""
    rng = random.Random(width * 100_003 + height)
    data = bytes(rng.getrandbits(8) for _ in range(width * height * len(mode)))
    return Image.frombytes(mode, (width, height), data)


def _save(tmp_path: Path, name: str, image: Image.Image, fmt: str, **params) -> Path:
    path = tmp_path / name
    image.save(path, fmt, **params)
    return path


def _truncate(path: Path, keep: int | None = None) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])
    return path


# --- sizes and formats of well-formed files --------------------------------------------

SIZES = [(1, 1), (4000, 3), (3, 4000), (257, 129), (640, 480)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("fmt", "ext", "params"),
    [
        ("PNG", "png", {}),
        ("JPEG", "jpg", {"quality": 80}),
        ("BMP", "bmp", {}),
        ("GIF", "gif", {}),
        ("WEBP", "webp", {"lossless": False}),
        ("WEBP", "webp", {"lossless": True}),
    ],
)
def test_reads_size_and_format(tmp_path, fmt, ext, params, size):
    path = _save(tmp_path, f"img.{ext}", Image.new("RGB", size, (200, 30, 90)), fmt, **params)
    assert read_image_header(path) == ImageHeader(fmt.lower(), *size)


def test_accepts_str_path(tmp_path):
    path = _save(tmp_path, "a.png", Image.new("L", (5, 7)), "PNG")
    assert read_image_header(str(path)) == ImageHeader("png", 5, 7)


def test_png_palette_and_alpha_modes(tmp_path):
    for mode in ("P", "LA", "RGBA", "I;16", "1"):
        path = _save(tmp_path, f"{mode.replace(';', '')}.png", Image.new(mode, (33, 17)), "PNG")
        assert read_image_header(path) == ImageHeader("png", 33, 17)


def test_png_with_trailing_junk_after_iend(tmp_path):
    path = _save(tmp_path, "junk.png", _noise(20, 10), "PNG")
    path.write_bytes(path.read_bytes() + b"\0" * 200 + b"junk")
    assert read_image_header(path) == ImageHeader("png", 20, 10)


def test_png_junk_beyond_last_kib_counts_as_truncated(tmp_path):
    # Documented limit: IEND must be within the file's last KiB.
    path = _save(tmp_path, "junk.png", _noise(20, 10), "PNG")
    path.write_bytes(path.read_bytes() + b"\0" * 2000)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_header(path)


# --- JPEG marker walking ---------------------------------------------------------------


def test_jpeg_with_big_exif_block(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: pushes SOF far past the first 4 KiB
    path = _save(tmp_path, "exif.jpg", _noise(123, 45), "JPEG", exif=exif.tobytes())
    data = path.read_bytes()
    assert data.index(b"\xff\xc0") > 60_000
    assert read_image_header(path) == ImageHeader("jpeg", 123, 45)


def test_jpeg_progressive(tmp_path):
    path = _save(tmp_path, "prog.jpg", _noise(321, 99), "JPEG", progressive=True)
    assert b"\xff\xc2" in path.read_bytes()  # SOF2
    assert read_image_header(path) == ImageHeader("jpeg", 321, 99)


def test_jpeg_grayscale_and_cmyk(tmp_path):
    for mode in ("L", "CMYK"):
        path = _save(tmp_path, f"{mode}.jpg", Image.new(mode, (31, 7)), "JPEG")
        assert read_image_header(path) == ImageHeader("jpeg", 31, 7)


def test_jpeg_fill_bytes_and_standalone_markers(tmp_path):
    path = _save(tmp_path, "a.jpg", Image.new("RGB", (40, 30)), "JPEG")
    data = path.read_bytes()
    # After SOI: a TEM marker, an RST0 marker, then fill bytes before the next marker.
    path.write_bytes(data[:2] + b"\xff\x01" + b"\xff\xd0" + b"\xff\xff\xff" + data[2:])
    assert read_image_header(path) == ImageHeader("jpeg", 40, 30)


def test_jpeg_dht_dac_jpg_are_not_frame_headers(tmp_path):
    # Hand-built: DHT (C4), JPG (C8) and DAC (CC) segments come before SOF1 (C1).
    def segment(code: int, payload: bytes) -> bytes:
        return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload

    sof = struct.pack(">BHHB", 8, 1234, 567, 1) + b"\x01\x11\x00"
    data = (
        b"\xff\xd8"
        + segment(0xC4, b"\x00" * 17)
        + segment(0xC8, b"\x00\x00")
        + segment(0xCC, b"\x00\x00")
        + segment(0xE1, b"Exif\0\0" + b"\xff\xc0" * 10)
        + segment(0xC1, sof)
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x12\x34"
        + b"\xff\xd9"
    )
    path = tmp_path / "hand.jpg"
    path.write_bytes(data)
    assert read_image_header(path) == ImageHeader("jpeg", 567, 1234)


def test_jpeg_without_frame_header_is_damaged(tmp_path):
    path = tmp_path / "nosof.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02\xff\xd9")
    with pytest.raises(ImageReadError, match="damaged"):
        read_image_header(path)


# --- WEBP variants ---------------------------------------------------------------------


def _webp_chunk(path: Path) -> bytes:
    return path.read_bytes()[12:16]


@pytest.mark.parametrize("size", [(1, 1), (16383, 2), (2, 16383), (300, 17)])
def test_webp_lossy_vp8(tmp_path, size):
    path = _save(tmp_path, "lossy.webp", Image.new("RGB", size), "WEBP", lossless=False)
    assert _webp_chunk(path) == b"VP8 "
    assert read_image_header(path) == ImageHeader("webp", *size)


@pytest.mark.parametrize("size", [(1, 1), (16383, 1), (1, 16383), (300, 17)])
def test_webp_lossless_vp8l(tmp_path, size):
    path = _save(tmp_path, "lossless.webp", Image.new("RGB", size), "WEBP", lossless=True)
    assert _webp_chunk(path) == b"VP8L"
    assert read_image_header(path) == ImageHeader("webp", *size)


@pytest.mark.parametrize("size", [(1, 1), (4000, 3), (300, 17)])
def test_webp_with_alpha_vp8x(tmp_path, size):
    image = Image.new("RGBA", size, (10, 20, 30, 128))
    path = _save(tmp_path, "alpha.webp", image, "WEBP", lossless=False)
    assert _webp_chunk(path) == b"VP8X"
    assert read_image_header(path) == ImageHeader("webp", *size)


def _riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_webp_vp8l_bit_packing_extremes(tmp_path):
    # Hand-built header: width-1 and height-1 both 0x3FFF fill all 28 size bits.
    path = tmp_path / "max.webp"
    bits = 0x3FFF | (0x3FFF << 14) | (1 << 28)  # plus the alpha hint bit above them
    path.write_bytes(_riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\0" * 8))
    assert read_image_header(path) == ImageHeader("webp", 16384, 16384)
    path.write_bytes(_riff(b"VP8L", b"\x2f" + struct.pack("<I", 0x3FFF) + b"\0" * 8))
    assert read_image_header(path) == ImageHeader("webp", 16384, 1)


def test_webp_vp8x_24_bit_canvas(tmp_path):
    path = tmp_path / "wide.webp"
    dims = (70_000 - 1).to_bytes(3, "little") + (3 - 1).to_bytes(3, "little")
    path.write_bytes(_riff(b"VP8X", b"\x10\0\0\0" + dims))
    assert read_image_header(path) == ImageHeader("webp", 70_000, 3)


def test_webp_vp8_scale_bits_are_ignored(tmp_path):
    path = _save(tmp_path, "s.webp", Image.new("RGB", (300, 17)), "WEBP", lossless=False)
    data = bytearray(path.read_bytes())
    data[27] |= 0xC0  # top 2 bits of the width field are an upscaling hint
    path.write_bytes(bytes(data))
    assert read_image_header(path) == ImageHeader("webp", 300, 17)


# --- BMP variants ----------------------------------------------------------------------


def test_bmp_top_down(tmp_path):
    path = _save(tmp_path, "a.bmp", Image.new("RGB", (9, 5)), "BMP")
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, 22, -5)  # negative height: rows stored top-down
    path.write_bytes(bytes(data))
    assert read_image_header(path) == ImageHeader("bmp", 9, 5)


def _core_bmp(width: int, height: int) -> bytes:
    row = (width * 3 + 3) // 4 * 4
    pixels = b"\x7f" * (row * height)
    offset = 14 + 12
    file_header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    core_header = struct.pack("<IHHHH", 12, width, height, 1, 24)
    return file_header + core_header + pixels


def test_bmp_core_header(tmp_path):
    path = tmp_path / "core.bmp"
    path.write_bytes(_core_bmp(3, 2))
    assert read_image_header(path) == ImageHeader("bmp", 3, 2)
    with Image.open(path) as image:  # Pillow agrees the hand-built file is valid
        assert image.size == (3, 2)


def test_bmp_zero_bfsize_is_allowed(tmp_path):
    data = bytearray(_core_bmp(3, 2))
    struct.pack_into("<I", data, 2, 0)
    path = tmp_path / "zero.bmp"
    path.write_bytes(bytes(data))
    assert read_image_header(path) == ImageHeader("bmp", 3, 2)


# --- magic beats extension; Pillow fallback --------------------------------------------


def test_png_named_file_with_jpeg_content(tmp_path):
    path = _save(tmp_path, "liar.png", Image.new("RGB", (12, 34)), "JPEG")
    assert read_image_header(path) == ImageHeader("jpeg", 12, 34)


def test_unknown_magic_falls_back_to_pillow(tmp_path):
    path = _save(tmp_path, "a.tif", Image.new("RGB", (21, 8)), "TIFF")
    assert read_image_header(path) == ImageHeader("tiff", 21, 8)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
@pytest.mark.parametrize("size", [(1, 1), (64, 48), (333, 7)])
def test_avif(tmp_path, size, monkeypatch):
    path = _save(tmp_path, "a.avif", _noise(*size), "AVIF", quality=50)
    monkeypatch.setattr(Image, "open", _no_pillow)  # ispe is found without Pillow
    assert read_image_header(path) == ImageHeader("avif", *size)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_truncated(tmp_path):
    path = _truncate(_save(tmp_path, "a.avif", _noise(64, 64), "AVIF", quality=90))
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_header(path)


# --- unreadable, empty, non-image ------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageReadError, match="^empty file$"):
        read_image_header(path)


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text, not a picture\n")
    with pytest.raises(ImageReadError, match=r"^not an image \(unknown header\)$"):
        read_image_header(path)


def test_missing_file_reports_os_reason(tmp_path):
    with pytest.raises(ImageReadError, match="No such file"):
        read_image_header(tmp_path / "nope.png")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError):
        read_image_header(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs non-root POSIX")
def test_unreadable_file_reports_os_reason(tmp_path):
    path = _save(tmp_path, "locked.png", Image.new("RGB", (2, 2)), "PNG")
    path.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="Permission denied"):
            read_image_header(path)
    finally:
        path.chmod(0o644)


def test_os_error_reason_without_root(tmp_path, monkeypatch):
    path = _save(tmp_path, "locked.png", Image.new("RGB", (2, 2)), "PNG")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ImageReadError, match="^Permission denied$"):
        read_image_header(path)


def test_zero_dimensions_are_damaged(tmp_path):
    path = _save(tmp_path, "zero.png", Image.new("RGB", (4, 4)), "PNG")
    data = bytearray(path.read_bytes())
    struct.pack_into(">I", data, 16, 0)  # IHDR width
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="damaged"):
        read_image_header(path)


# --- truncation ------------------------------------------------------------------------

TRUNCATED = [
    ("PNG", "png", {}),
    ("JPEG", "jpg", {"quality": 95}),
    ("JPEG", "jpg", {"quality": 95, "progressive": True}),
    ("WEBP", "webp", {"lossless": False}),
    ("WEBP", "webp", {"lossless": True}),
    ("GIF", "gif", {}),
    ("BMP", "bmp", {}),
]


@pytest.mark.parametrize(("fmt", "ext", "params"), TRUNCATED)
def test_truncated_to_half(tmp_path, fmt, ext, params):
    path = _save(tmp_path, f"half.{ext}", _noise(200, 150), fmt, **params)
    read_image_header(path)  # whole file is fine
    _truncate(path)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_header(path)


@pytest.mark.parametrize(("fmt", "ext", "params"), TRUNCATED)
@pytest.mark.parametrize("keep", [1, 8, 14, 20, 25])
def test_truncated_inside_header(tmp_path, fmt, ext, params, keep):
    path = _truncate(_save(tmp_path, f"h.{ext}", _noise(20, 15), fmt, **params), keep)
    with pytest.raises(ImageReadError) as info:
        read_image_header(path)
    # A stub too short to carry its magic is simply not recognisable as an image.
    assert "truncated" in str(info.value) or "not an image" in str(info.value)


def test_truncated_jpeg_inside_big_exif(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000
    path = _save(tmp_path, "exif.jpg", _noise(50, 50), "JPEG", exif=exif.tobytes())
    _truncate(path, 30_000)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_header(path)


def test_bmp_bfsize_larger_than_file(tmp_path):
    data = bytearray(_core_bmp(3, 2))
    struct.pack_into("<I", data, 2, len(data) + 1)
    path = tmp_path / "big.bmp"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_header(path)


def test_bmp_without_pixel_data(tmp_path):
    data = bytearray(_core_bmp(3, 2))
    struct.pack_into("<I", data, 2, 0)  # bfSize unset: only the pixel offset can tell
    path = tmp_path / "nopix.bmp"
    path.write_bytes(bytes(data[:26]))
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_header(path)


def test_gif_with_zero_padding_after_trailer(tmp_path):
    path = _save(tmp_path, "pad.gif", _noise(10, 10), "GIF")
    path.write_bytes(path.read_bytes() + b"\0" * 100)
    assert read_image_header(path) == ImageHeader("gif", 10, 10)


# --- the fast path stays fast ----------------------------------------------------------


def _no_pillow(*args, **kwargs):
    raise AssertionError("Pillow must not be used on the fast path")


def test_fast_path_never_calls_pillow(tmp_path, monkeypatch):
    files = {
        "a.png": ("PNG", {}),
        "a.jpg": ("JPEG", {}),
        "p.jpg": ("JPEG", {"progressive": True}),
        "a.webp": ("WEBP", {"lossless": False}),
        "l.webp": ("WEBP", {"lossless": True}),
        "a.bmp": ("BMP", {}),
        "a.gif": ("GIF", {}),
    }
    paths = [_save(tmp_path, n, Image.new("RGB", (7, 3)), f, **p) for n, (f, p) in files.items()]
    alpha = _save(tmp_path, "x.webp", Image.new("RGBA", (7, 3)), "WEBP", lossless=False)
    monkeypatch.setattr(Image, "open", _no_pillow)
    for path in [*paths, alpha]:
        assert (read_image_header(path).width, read_image_header(path).height) == (7, 3)


def test_module_imports_neither_pillow_nor_ui_nor_torch(tmp_path):
    path = _save(tmp_path, "a.png", Image.new("RGB", (7, 3)), "PNG")
    code = (
        "import sys\n"
        "from lorabake_tui.core.images.imageinfo import read_image_header\n"
        f"print(read_image_header({str(path)!r}))\n"
        "bad = [m for m in ('PIL', 'textual', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = REPO
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "width=7, height=3" in result.stdout


# --- EXIF orientation ----------------------------------------------------------------------


def _exif(orientation: int | None, endian: str = "<", **tags) -> bytes:
    exif = Image.Exif()
    exif.endian = endian
    exif[0x010F] = "Phone"  # a tag before Orientation in IFD0, as cameras write
    if orientation is not None:
        exif[0x0112] = orientation
    for tag, value in tags.items():
        exif[int(tag[1:])] = value
    return exif.tobytes()


def _pillow_orientation(path: Path) -> int:
    with Image.open(path) as im:
        return im.getexif().get(0x0112, 1)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("fmt", "ext"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_exif_orientation_matches_pillow(tmp_path, fmt, ext, orientation, endian):
    path = _save(tmp_path, f"o.{ext}", _noise(64, 32), fmt, exif=_exif(orientation, endian))
    assert _pillow_orientation(path) == orientation  # what exif_transpose would go by
    # the size stays the stored one: the orientation is reported, never applied
    assert read_image_header(path) == ImageHeader(fmt.lower(), 64, 32, orientation)


@pytest.mark.parametrize(("fmt", "ext"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_no_orientation_tag_is_orientation_1(tmp_path, fmt, ext):
    plain = _save(tmp_path, f"plain.{ext}", _noise(30, 20), fmt)
    other_tags = _save(tmp_path, f"tags.{ext}", _noise(30, 20), fmt, exif=_exif(None))
    assert read_image_header(plain).orientation == 1
    assert read_image_header(other_tags).orientation == 1


def test_orientation_outside_1_to_8_is_1(tmp_path):
    # Pillow's exif_transpose leaves such images as stored
    path = _save(tmp_path, "o.jpg", _noise(30, 20), "JPEG", exif=_exif(9))
    assert read_image_header(path).orientation == 1


def test_jpeg_orientation_behind_a_big_exif_block_and_an_xmp_segment(tmp_path):
    # a long ImageDescription puts the rest of APP1 past the head window; IFD0 is still near
    # the start. An XMP APP1 before the Exif one is skipped.
    exif = _exif(6, t270="x" * 60_000)
    path = _save(tmp_path, "o.jpg", _noise(40, 30), "JPEG", exif=exif)
    assert read_image_header(path) == ImageHeader("jpeg", 40, 30, 6)
    data = path.read_bytes()
    xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"
    segment = b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp
    path.write_bytes(data[:2] + segment + data[2:])
    assert _pillow_orientation(path) == 6
    assert read_image_header(path) == ImageHeader("jpeg", 40, 30, 6)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    import zlib

    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def test_png_exif_chunk_after_the_image_data(tmp_path):
    # Pillow reads an eXIf chunk that follows IDAT too (convert would turn the image)
    path = _save(tmp_path, "o.png", _noise(40, 30), "PNG")
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    payload = _exif(8)[6:]  # the chunk holds the TIFF block without the "Exif" prefix
    path.write_bytes(data[:iend] + _png_chunk(b"eXIf", payload) + data[iend:])
    assert _pillow_orientation(path) == 8
    assert read_image_header(path) == ImageHeader("png", 40, 30, 8)


def test_png_with_chunks_before_the_exif_chunk(tmp_path):
    path = _save(tmp_path, "o.png", _noise(40, 30), "PNG", exif=_exif(3),
                 pnginfo=_text_chunks(), dpi=(300, 300))
    assert _pillow_orientation(path) == 3
    assert read_image_header(path).orientation == 3


def _text_chunks():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "x" * 5000)  # a big chunk before IDAT: one seek past it
    return info


@pytest.mark.parametrize("damage", ["order", "ifd-offset", "entry-count", "cut"])
def test_damaged_exif_is_orientation_1_and_the_image_stays_readable(tmp_path, damage):
    good = bytearray(_exif(6))
    tiff = 6  # after "Exif\0\0"
    if damage == "order":
        good[tiff:tiff + 2] = b"XX"
    elif damage == "ifd-offset":
        good[tiff + 4:tiff + 8] = struct.pack("<I", 0xFFFF_FF00)
    elif damage == "entry-count":
        good[tiff + 8:tiff + 10] = struct.pack("<H", 0xFFFF)
    else:
        good = good[:tiff + 12]
    path = _save(tmp_path, "o.jpg", _noise(40, 30), "JPEG", exif=bytes(good))
    header = read_image_header(path)
    assert (header.width, header.height) == (40, 30)
    if damage == "entry-count":  # the entries that fit in the block are read, Orientation too
        assert header.orientation == 6
    else:
        assert header.orientation == 1


def test_pillow_fallback_reports_what_pillow_decodes(tmp_path):
    # Pillow's TIFF reader turns an oriented image itself: its size is the turned one and
    # nothing is left to apply, so the header agrees with the decoded pixels
    from lorabake_tui.core.images.imageops import decode_image

    path = _save(tmp_path, "o.tif", _noise(20, 10), "TIFF", exif=_exif(5))
    assert read_image_header(path) == ImageHeader("tiff", 10, 20, 1)
    assert decode_image(path.read_bytes(), upright=False).size == (10, 20)
