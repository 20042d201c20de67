"""Image tools: single-image operations, batch plans applied through the journal (undo/redo
byte for byte), every input format, bad files, worker processes, dupes/lowres and the tiled
ONNX upscaler. Every image is made with Pillow at test time."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.base.workers import mp_context
from lorabake_tui.core.dataset.imagetools import (
    ImageOptions,
    apply_image_plan,
    find_duplicates,
    find_lowres,
    plan_images,
    run_tasks,
)
from lorabake_tui.core.images import upscale
from lorabake_tui.core.images.dupes import group_near_duplicates, hamming, phash
from lorabake_tui.core.images.imageops import (
    ImageDecodeError,
    cover_size,
    decode_image,
    encode_png,
    flatten_alpha,
    max_side_size,
    min_side_size,
    pad_to_square,
    resize_image,
    resize_to_bucket,
)
from lorabake_tui.core.images.upscale import Upscaler, UpscalerError, load_upscaler, run_tiled

# ---- helpers ----------------------------------------------------------------------------------


def picture(size=(96, 64), seed=0) -> Image.Image:
    """A deterministic picture with structure (gradient + rectangles): hashes mean something."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.zeros((h, w, 3), dtype=np.float64)
    arr[..., 0] = 255 * xx / max(w - 1, 1)
    arr[..., 1] = 255 * yy / max(h - 1, 1)
    arr[..., 2] = 128
    for _ in range(6):
        x0, y0 = rng.integers(0, max(w - 4, 1)), rng.integers(0, max(h - 4, 1))
        x1, y1 = x0 + rng.integers(4, w // 2 + 5), y0 + rng.integers(4, h // 2 + 5)
        arr[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def save(path: Path, image: Image.Image, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **kw)
    return path


def caption(path: Path, text: str = "mira, 1girl") -> Path:
    cap = path.with_suffix(".txt")
    cap.write_text(text + "\n", encoding="utf-8")
    return cap


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file outside .lorabake, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".lorabake" not in p.relative_to(root).parts}


def originals(root: Path) -> dict[str, bytes]:
    base = root / ".lorabake" / "originals"
    if not base.exists():
        return {}
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file()}


def opened(path: Path) -> Image.Image:
    im = Image.open(path)
    im.load()
    return im


def exif_rotated_jpeg(path: Path) -> Path:
    """40x20 stored, left half red, right half blue, EXIF orientation 6 (rotate 90 CW)."""
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return save(path, im, "JPEG", exif=exif.tobytes(), quality=95)


def animated_gif(path: Path, frames: int = 3) -> Path:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [Image.new("RGB", (24, 16), colours[i % 4]) for i in range(frames)]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def near(a, b, tol=12) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=True))


def run(root, op, workers=1, **kw):
    concept = kw.pop("concept", None)
    plan = plan_images(root, op, ImageOptions(**kw), concept=concept)
    return apply_image_plan(plan, workers=workers)


# ---- single-image operations ------------------------------------------------------------------


def test_pad_to_square_centres_on_the_colour_like_the_guide_script():
    im = Image.new("RGB", (30, 20), (10, 20, 30))
    out = pad_to_square(im)
    assert out.size == (30, 30)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # the band above
    assert out.getpixel((0, 5)) == (10, 20, 30)  # offset floor((30 - 20) / 2) = 5
    assert out.getpixel((29, 24)) == (10, 20, 30)
    assert out.getpixel((29, 25)) == (255, 255, 255)
    tall = pad_to_square(Image.new("RGB", (7, 12), (0, 0, 0)), (1, 2, 3))
    assert tall.size == (12, 12)
    assert tall.getpixel((1, 0)) == (1, 2, 3)
    assert tall.getpixel((2, 0)) == (0, 0, 0)  # offset (12 - 7) // 2 = 2
    assert tall.getpixel((9, 11)) == (1, 2, 3)
    assert pad_to_square(Image.new("RGB", (9, 9))).size == (9, 9)


@pytest.mark.parametrize(("size", "target", "mode"), [
    ((100, 50), (64, 64), "fit"), ((100, 50), (64, 64), "cover"),
    ((100, 50), (64, 64), "stretch"), ((37, 91), (512, 768), "fit"),
    ((37, 91), (512, 768), "cover"), ((1920, 1080), (640, 384), "cover"),
    ((640, 384), (640, 384), "cover"), ((3, 1000), (64, 64), "fit"),
])
def test_resize_gives_exactly_the_size(size, target, mode):
    out = resize_image(picture(size), *target, mode=mode)  # type: ignore[arg-type]
    assert out.size == target
    assert out.mode == "RGB"


def test_resize_fit_pads_centred_and_cover_crops_centred():
    im = Image.new("RGB", (100, 50), (0, 0, 0))
    fit = resize_image(im, 64, 64, "fit", (255, 0, 0))
    assert fit.getpixel((32, 15)) == (255, 0, 0)  # inner 64x32 at y = 16
    assert fit.getpixel((32, 16)) == (0, 0, 0)
    assert fit.getpixel((32, 47)) == (0, 0, 0)
    assert fit.getpixel((32, 48)) == (255, 0, 0)
    # cover: a 3-column image (red | green | blue thirds) keeps the green middle
    bands = Image.new("RGB", (300, 100), (255, 0, 0))
    bands.paste((0, 255, 0), (100, 0, 200, 100))
    bands.paste((0, 0, 255), (200, 0, 300, 100))
    cover = resize_image(bands, 50, 50, "cover")
    assert near(cover.getpixel((25, 25)), (0, 255, 0))
    assert near(cover.getpixel((0, 25)), (0, 255, 0), 40)
    assert near(resize_image(bands, 50, 50, "stretch").getpixel((2, 25)), (255, 0, 0), 40)


def test_cover_size_matches_kohya_worked_examples():
    # kohya-compat.md section 3: 1920x1080 -> bucket (640, 384), resized 683x384;
    # 300x1000 -> (256, 832), resized 256x853
    assert cover_size(1920, 1080, 640, 384) == (683, 384)
    assert cover_size(300, 1000, 256, 832) == (256, 853)
    assert cover_size(512, 512, 512, 512) == (512, 512)


def test_resize_to_bucket_is_kohyas_cover_then_centre_crop():
    im = picture((1920, 1080), seed=3)
    out = resize_to_bucket(im, 640, 384)
    assert out.size == (640, 384)
    expected = im.resize((683, 384), Image.Resampling.LANCZOS).crop((21, 0, 661, 384))
    assert out.tobytes() == expected.tobytes()  # trim (683 - 640) // 2 = 21 from the left


def test_max_and_min_side_sizes():
    assert max_side_size(1000, 500, 512) == (512, 256)
    assert max_side_size(333, 1000, 512) == (170, 512)  # 170.496
    assert max_side_size(400, 300, 512) == (400, 300)  # never enlarges
    assert min_side_size(100, 200, 512) == (512, 1024)
    assert min_side_size(300, 128, 512) == (1200, 512)
    assert min_side_size(600, 700, 512) == (600, 700)


def test_flatten_alpha_handles_every_mode():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    rgba.putpixel((2, 2), (0, 0, 255, 128))
    flat = flatten_alpha(rgba)
    assert flat.mode == "RGB"
    assert flat.getpixel((0, 0)) == (255, 255, 255)
    assert flat.getpixel((1, 1)) == (255, 0, 0)
    assert near(flat.getpixel((2, 2)), (127, 127, 255), 2)
    assert flatten_alpha(rgba, (0, 0, 0)).getpixel((0, 0)) == (0, 0, 0)
    la = Image.new("LA", (2, 2), (50, 0))
    assert flatten_alpha(la).getpixel((0, 0)) == (255, 255, 255)
    pal = Image.new("P", (2, 2), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.info["transparency"] = 1
    assert flatten_alpha(pal).getpixel((0, 0)) == (255, 255, 255)
    del pal.info["transparency"]
    assert flatten_alpha(pal).getpixel((0, 0)) == (10, 20, 30)
    cmyk = Image.new("CMYK", (2, 2), (255, 0, 0, 0))  # pure cyan
    assert near(flatten_alpha(cmyk).getpixel((0, 0)), (0, 255, 255))
    deep = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    assert deep.mode.startswith("I")
    assert flatten_alpha(deep).getpixel((0, 0)) == (255, 255, 255)
    assert flatten_alpha(Image.new("L", (2, 2), 7)).getpixel((0, 0)) == (7, 7, 7)
    assert flatten_alpha(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)


def test_decode_upright_applies_exif_orientation_and_stored_does_not(tmp_path):
    path = exif_rotated_jpeg(tmp_path / "r.jpg")
    im = decode_image(path.read_bytes(), upright=True)
    assert im.size == (20, 40)  # rotated 90 degrees clockwise
    assert near(im.getpixel((10, 5)), (255, 0, 0), 40)  # the left half is now on top
    assert near(im.getpixel((10, 35)), (0, 0, 255), 40)
    assert im.getexif().get(0x0112) in (None, 1)
    stored = decode_image(path.read_bytes(), upright=False)  # as kohya reads it
    assert stored.size == (40, 20)
    assert near(stored.getpixel((5, 10)), (255, 0, 0), 40)  # left half still on the left
    assert near(stored.getpixel((35, 10)), (0, 0, 255), 40)
    with pytest.raises(TypeError):  # no default: every caller says which pixels it wants
        decode_image(path.read_bytes())  # type: ignore[call-arg]


def test_encode_png_is_deterministic_and_carries_no_metadata():
    im = picture((40, 30))
    im.info.update({"dpi": (300, 300), "exif": b"Exif\x00\x00junk", "comment": "x"})
    a, b = encode_png(im), encode_png(im.copy())
    assert a == b
    assert _png_chunks(a) == ["IHDR", "IDAT", "IEND"]
    icc = Image.new("RGB", (4, 4))
    icc.info["icc_profile"] = _srgb_profile()
    assert "iCCP" in _png_chunks(encode_png(icc))


def _png_chunks(data: bytes) -> list[str]:
    out, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        out.append(data[pos + 4:pos + 8].decode())
        pos += 12 + length
    return [c for i, c in enumerate(out) if c != "IDAT" or out[i - 1] != "IDAT"]


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_decode_refuses_decompression_bombs_and_names_truncation(monkeypatch):
    data = io.BytesIO()
    Image.new("RGB", (64, 64)).save(data, "PNG")
    with pytest.raises(ImageDecodeError, match=r"refused: 64x64 = 4,096 pixels, over the "
                                               r"3,000 pixels limit; shrink it in an image "):
        decode_image(data.getvalue(), upright=False, max_pixels=3000)  # our own check
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match=r"refused: 4,096 pixels, over the 2,000 pixels "
                                               r"limit; shrink it in an image editor"):
        # Pillow's DecompressionBombError (at twice its limit), said like our own check
        decode_image(data.getvalue(), upright=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4,096 only warns: decoded
    assert decode_image(data.getvalue(), upright=False).size == (64, 64)
    monkeypatch.undo()
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(_truncated_png(), upright=False)
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_image(b"hello, this is text", upright=False)


def _truncated_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
                    ).save(buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


# ---- convert: every format --------------------------------------------------------------------


@pytest.fixture
def formats(tmp_path) -> Path:
    root = tmp_path / "ds"
    d = root / "10_mira"
    caption(save(d / "plain.png", picture((30, 20))))
    save(d / "alpha.png", Image.new("RGBA", (16, 16), (255, 0, 0, 0)))
    caption(save(d / "photo.jpg", picture((32, 24), 1), "JPEG", quality=90))
    save(d / "cmyk.jpeg", Image.new("CMYK", (16, 8), (255, 0, 0, 0)), "JPEG")
    caption(exif_rotated_jpeg(d / "rotated.jpg"), "rotated")
    save(d / "web.webp", Image.new("RGBA", (20, 10), (0, 0, 255, 0)), "WEBP", lossless=True)
    save(d / "old.bmp", Image.new("RGB", (12, 10), (1, 2, 3)), "BMP")
    caption(animated_gif(d / "anim.gif"), "anim, loop")
    save(d / "still.gif", Image.new("P", (8, 8), 0), "GIF")
    return root


def test_convert_every_format_to_png(formats):
    root, d = formats, formats / "10_mira"
    before = snapshot(root)
    plan = plan_images(root, "convert")
    by_path = {f.path: f for f in plan.files}
    assert by_path["10_mira/plain.png"].action == "skip"
    assert by_path["10_mira/alpha.png"].reason == "already png"
    assert by_path["10_mira/anim.gif"].new_paths == [
        "10_mira/anim_f000.png", "10_mira/anim_f001.png", "10_mira/anim_f002.png"]
    assert "3 frames" in by_path["10_mira/anim.gif"].reason
    result = apply_image_plan(plan, workers=1)
    assert result.applied and not result.failures
    assert len(result.changed) == 7
    names = sorted(p.name for p in d.iterdir())
    assert names == sorted([
        "plain.png", "plain.txt", "alpha.png", "photo.png", "photo.txt", "cmyk.png",
        "rotated.png", "rotated.txt", "web.png", "old.png", "anim_f000.png", "anim_f001.png",
        "anim_f002.png", "anim_f000.txt", "anim_f001.txt", "anim_f002.txt", "still.png"])
    for name in names:
        if name.endswith(".png") and name not in ("alpha.png", "plain.png"):  # not touched
            im = opened(d / name)
            assert im.format == "PNG" and im.mode == "RGB", name
    assert opened(d / "photo.png").size == (32, 24)
    assert near(opened(d / "cmyk.png").getpixel((3, 3)), (0, 255, 255))
    rotated = opened(d / "rotated.png")
    assert rotated.size == (20, 40)
    assert near(rotated.getpixel((10, 5)), (255, 0, 0), 40)
    assert opened(d / "web.png").getpixel((0, 0)) == (255, 255, 255)  # alpha on white
    assert opened(d / "old.png").getpixel((0, 0)) == (1, 2, 3)
    frames = [opened(d / f"anim_f00{i}.png").getpixel((0, 0)) for i in range(3)]
    assert frames == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i in range(3):  # every frame gets a copy of the gif's caption
        assert (d / f"anim_f00{i}.txt").read_bytes() == b"anim, loop\n"
    assert not (d / "anim.txt").exists()  # it went with the gif
    assert (d / "photo.txt").read_bytes() == b"mira, 1girl\n"  # stem unchanged: still valid
    kept = originals(root)
    for rel in ("photo.jpg", "cmyk.jpeg", "rotated.jpg", "web.webp", "old.bmp", "anim.gif",
                "anim.txt", "still.gif"):
        assert kept[f"10_mira/{rel}"] == before[f"10_mira/{rel}"]
    assert "10_mira/plain.png" not in kept


def test_undo_restores_originals_byte_for_byte_and_redo_replays(formats):
    root = formats
    before = snapshot(root)
    run(root, "convert")
    after = snapshot(root)
    assert after != before
    entry = Journal(root).undo()
    assert entry is not None and not entry.conflicts
    assert snapshot(root) == before  # new files gone, originals back, same bytes
    assert originals(root) == {}
    assert Journal(root).redo() is not None
    assert snapshot(root) == after
    assert Journal(root).undo() is not None
    assert snapshot(root) == before


def test_flatten_rewrites_a_transparent_png_in_place_and_undo_restores_it(formats):
    root, d = formats, formats / "10_mira"
    old = (d / "alpha.png").read_bytes()
    result = run(root, "convert", flatten=True, concept="10_mira")
    flat = {f.path: f for f in result.plan.files}
    assert flat["10_mira/alpha.png"].action == "convert"
    assert flat["10_mira/alpha.png"].new_paths == ["10_mira/alpha.png"]
    assert flat["10_mira/plain.png"].reason == "png without transparency"
    im = opened(d / "alpha.png")
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)
    assert originals(root)["10_mira/alpha.png"] == old
    Journal(root).undo()
    assert (d / "alpha.png").read_bytes() == old
    assert originals(root) == {}
    Journal(root).redo()
    assert opened(d / "alpha.png").mode == "RGB"


def test_convert_writes_exif_rotated_images_upright_and_undo_restores_them(tmp_path):
    from lorabake_tui.core.dataset.scan import scan_dataset

    from ...support.helpers import make_exif_rotated

    root = tmp_path / "ds"
    d = root / "5_mira"
    jpg = make_exif_rotated(d / "phone.jpg", (64, 32), orientation=6)
    png = make_exif_rotated(d / "shot.png", (64, 32), orientation=8, fmt="PNG")
    for image in (jpg, png, save(d / "plain.png", picture((30, 20)))):
        caption(image)
    expect = {name: ImageOps.exif_transpose(opened(d / name)).convert("RGB")
              for name in ("phone.jpg", "shot.png")}
    assert {p.code for p in scan_dataset(root).problems} == {"exif-rotated"}
    before = snapshot(root)

    plan = plan_images(root, "convert")
    by_path = {f.path: f for f in plan.files}
    assert by_path["5_mira/phone.jpg"].reason == "jpg -> png, upright (EXIF orientation 6)"
    # a PNG is rewritten in place to stand it upright, even without --flatten
    assert by_path["5_mira/shot.png"].action == "convert"
    assert by_path["5_mira/shot.png"].new_paths == ["5_mira/shot.png"]
    assert "upright (EXIF orientation 8)" in by_path["5_mira/shot.png"].reason
    assert by_path["5_mira/shot.png"].new_size == (32, 64)
    assert by_path["5_mira/plain.png"].reason == "already png"
    result = apply_image_plan(plan, workers=1)
    assert result.applied and not result.failures

    for name, out in (("phone.jpg", "phone.png"), ("shot.png", "shot.png")):
        im = opened(d / out)
        assert im.size == (32, 64) and im.getexif().get(0x0112) is None
        if name.endswith(".png"):  # lossless: exactly the upright pixels
            assert im.tobytes() == expect[name].tobytes()
        else:  # the same decode, turned: equal up to nothing
            assert np.array_equal(np.asarray(im), np.asarray(expect[name]))
    ds = scan_dataset(root)
    assert ds.problems == []  # upright now: nothing left to warn about
    assert {(im.name, im.width, im.height) for im in ds.concepts[0].images} >= {
        ("phone.png", 32, 64), ("shot.png", 32, 64)}
    assert originals(root) == {"5_mira/phone.jpg": before["5_mira/phone.jpg"],
                               "5_mira/shot.png": before["5_mira/shot.png"]}

    assert Journal(root).undo() is not None
    assert snapshot(root) == before  # byte for byte, the EXIF tags included
    assert {p.code for p in scan_dataset(root).problems} == {"exif-rotated"}


def test_an_exif_rotated_png_keeps_its_transparency_without_flatten(tmp_path):
    from ...support.helpers import exif_orientation

    root = tmp_path / "ds"
    im = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 5, 10))  # an opaque blue strip on the left
    path = save(root / "1_a" / "a.png", im, "PNG", exif=exif_orientation(6))
    run(root, "convert")
    out = opened(path)
    assert out.mode == "RGBA" and out.size == (10, 20)
    assert out.getpixel((5, 2)) == (0, 0, 255, 255)  # the strip is on top now
    assert out.getpixel((5, 15))[3] == 0
    Journal(root).undo()
    run(root, "convert", flatten=True)
    out = opened(path)
    assert out.mode == "RGB" and out.size == (10, 20)
    assert out.getpixel((5, 15)) == (255, 255, 255)


def test_other_tools_write_exif_rotated_images_upright_too(tmp_path):
    from ...support.helpers import make_exif_rotated

    root = tmp_path / "ds"
    path = make_exif_rotated(root / "1_a" / "a.png", (64, 32), orientation=6, fmt="PNG")
    plan = plan_images(root, "resize", ImageOptions(size=(64, 32)))
    # already the target size as stored, but not upright: it is still processed
    assert plan.files[0].action == "resize" and "upright" in plan.files[0].reason
    plan = plan_images(root, "resize", ImageOptions(max_side=32))
    assert plan.files[0].new_size == (16, 32)  # the upright 32x64, shrunk
    apply_image_plan(plan, workers=1)
    assert opened(path).size == (16, 32)


def test_png_output_is_deterministic_optimize_off_level_6(tmp_path):
    root = tmp_path / "ds"
    src = save(root / "1_a" / "x.jpg", picture((50, 40)), "JPEG")
    data = src.read_bytes()
    run(root, "convert")
    out = (root / "1_a" / "x.png").read_bytes()
    expected = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(expected, "PNG", optimize=False,
                                                     compress_level=6)
    assert out == expected.getvalue()


# ---- bad files ------------------------------------------------------------------------------


def test_a_truncated_or_corrupt_file_is_reported_and_the_batch_goes_on(tmp_path):
    root = tmp_path / "ds"
    d = root / "5_set"
    (d).mkdir(parents=True)
    (d / "cut.png").write_bytes(_truncated_png())
    good = save(d / "good.png", picture((40, 20)))
    corrupt = bytearray(_png_bytes(picture((60, 30), 2)))
    idat = corrupt.index(b"IDAT")
    corrupt[idat + 40: idat + 80] = b"\xff" * 40  # damaged pixels, intact header and end
    (d / "bad.png").write_bytes(bytes(corrupt))
    (d / "text.jpg").write_bytes(b"not a jpeg at all")
    result = run(root, "pad")
    files = {f.path: f for f in result.plan.files}
    assert files["5_set/cut.png"].action == "error"
    assert "truncated" in files["5_set/cut.png"].error
    assert files["5_set/bad.png"].action == "error"
    assert files["5_set/bad.png"].error
    assert files["5_set/text.jpg"].action == "error"
    assert files["5_set/good.png"].action == "pad"
    assert result.applied
    assert opened(good).size == (40, 40)
    assert {f.path for f in result.failures} == {"5_set/cut.png", "5_set/bad.png",
                                                 "5_set/text.jpg"}
    assert (d / "cut.png").read_bytes() == _truncated_png()  # left alone


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_a_decompression_bomb_is_refused_per_file(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    save(root / "1_a" / "big.webp", Image.new("RGB", (64, 64), (9, 9, 9)), "WEBP")
    save(root / "1_a" / "small.webp", Image.new("RGB", (20, 20), (9, 9, 9)), "WEBP")
    save(root / "1_a" / "big.bmp", Image.new("RGB", (64, 64)), "BMP")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    result = run(root, "convert")
    files = {f.path: f for f in result.plan.files}
    assert files["1_a/big.webp"].action == "error"
    assert files["1_a/big.webp"].error.startswith("refused: 64x64 = 4,096 pixels, over the ")
    assert files["1_a/big.bmp"].action == "error"
    assert "over the 2,000 pixels limit" in files["1_a/big.bmp"].error
    assert files["1_a/small.webp"].action == "convert"
    assert (root / "1_a" / "small.png").exists()
    assert (root / "1_a" / "big.webp").exists() and not (root / "1_a" / "big.png").exists()


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height, with one tiny (damaged) IDAT: nothing that
    reads only the header can tell, and nothing should decode it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        import zlib

        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"x")
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("op, kw", [("convert", {"flatten": True}), ("pad", {}),
                                    ("resize", {"size": (8, 8)})])
def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, op, kw):
    import warnings

    root = tmp_path / "ds"
    _png_header_only(root / "1_a" / "huge.png", 30000, 20000)
    save(root / "1_a" / "small.png", Image.new("RGBA", (20, 10), (1, 2, 3, 4)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(root, op, **kw)
    assert caught == []
    files = {f.path: f for f in result.plan.files}
    huge = files["1_a/huge.png"]
    assert huge.action == "error" and huge.reason == "over the pixel limit"
    assert huge.error == ("refused: 30000x20000 = 600 MP, over the 179 MP limit; shrink it in "
                          "an image editor or move it out of the dataset")
    assert files["1_a/small.png"].action == op and result.applied


# ---- conflicts and repeated runs --------------------------------------------------------------


def test_a_name_collision_is_a_conflict_and_nothing_is_overwritten(tmp_path):
    root = tmp_path / "ds"
    d = root / "3_x"
    save(d / "a.jpg", picture((10, 10)), "JPEG")
    existing = save(d / "a.png", picture((12, 12), 5)).read_bytes()
    save(d / "b.jpg", picture((10, 10), 1), "JPEG")
    save(d / "b.webp", picture((10, 10), 2), "WEBP")
    save(d / "c.bmp", picture((10, 10), 3), "BMP")
    save(d / "C.PNG", picture((10, 10), 4))
    caption(animated_gif(d / "g.gif"))
    (d / "g_f001.txt").write_text("someone's caption")
    result = run(root, "convert")
    files = {f.path: f for f in result.plan.files}
    assert files["3_x/a.jpg"].action == "conflict"
    assert files["3_x/a.jpg"].error == "3_x/a.png already exists; not overwritten"
    assert (d / "a.png").read_bytes() == existing and (d / "a.jpg").exists()
    assert files["3_x/b.jpg"].action == "convert"  # first in name order wins
    assert files["3_x/b.webp"].action == "conflict"
    assert files["3_x/c.bmp"].action == "conflict"  # C.PNG: same name in another case
    assert files["3_x/g.gif"].action == "conflict"  # a frame's caption exists
    assert (d / "g_f001.txt").read_text() == "someone's caption"
    assert {f.path for f in result.failures} == {"3_x/a.jpg", "3_x/b.webp", "3_x/c.bmp",
                                                 "3_x/g.gif"}


def test_a_second_change_keeps_both_originals_and_undoes_in_order(tmp_path):
    root = tmp_path / "ds"
    path = save(root / "2_y" / "p.png", picture((60, 30)))
    first = path.read_bytes()
    run(root, "pad")
    padded = path.read_bytes()
    run(root, "resize", size=(16, 16), mode="stretch")
    assert opened(path).size == (16, 16)
    kept = originals(root)
    assert kept == {"2_y/p.png": first, "2_y/p~2.png": padded}
    Journal(root).undo()
    assert path.read_bytes() == padded
    Journal(root).undo()
    assert path.read_bytes() == first
    assert originals(root) == {}


def test_resize_and_upscale_plans_skip_what_needs_nothing(tmp_path):
    root = tmp_path / "ds"
    save(root / "1_a" / "exact.png", picture((64, 64)))
    save(root / "1_a" / "wide.png", picture((128, 64)))
    save(root / "1_a" / "small.jpg", picture((50, 100)), "JPEG")
    plan = plan_images(root, "resize", ImageOptions(size=(64, 64)))
    assert [f.action for f in plan.files] == ["skip", "resize", "resize"]
    assert plan.files[0].reason == "already 64x64"
    plan = plan_images(root, "resize", ImageOptions(max_side=100))
    assert [(f.path, f.action, f.new_size) for f in plan.files] == [
        ("1_a/exact.png", "skip", None), ("1_a/small.jpg", "skip", None),
        ("1_a/wide.png", "resize", (100, 50))]
    plan = plan_images(root, "upscale", ImageOptions(min_side=60))
    assert {f.path: f.new_size for f in plan.todo} == {"1_a/small.jpg": (60, 120)}
    assert any("Lanczos" in n for n in plan.notes)
    with pytest.raises(LorabakeError, match="--size"):
        plan_images(root, "resize", ImageOptions())
    with pytest.raises(LorabakeError, match="no concept folder"):
        plan_images(root, "pad", concept="9_missing")


def test_resize_and_upscale_write_exact_sizes(tmp_path):
    root = tmp_path / "ds"
    a = save(root / "1_a" / "a.png", picture((300, 200)))
    b = save(root / "1_a" / "b.jpg", picture((120, 40)), "JPEG")
    run(root, "resize", size=(64, 96), mode="fit")
    assert opened(a).size == (64, 96)
    assert opened(root / "1_a" / "b.png").size == (64, 96)
    Journal(root).undo()
    assert b.exists()
    run(root, "resize", size=(64, 96), mode="cover")
    assert opened(a).size == (64, 96)
    Journal(root).undo()
    run(root, "resize", max_side=150)
    assert opened(a).size == (150, 100)
    assert b.exists() and not (root / "1_a" / "b.png").exists()  # 120x40: skipped
    Journal(root).undo()
    result = run(root, "upscale", min_side=256)
    assert opened(a).size == (384, 256)
    assert opened(root / "1_a" / "b.png").size == (768, 256)
    assert "lanczos" in result.plan.files[0].reason


def test_an_upscale_that_would_explode_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    save(root / "1_a" / "strip.png", picture((2, 60)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    result = run(root, "upscale", min_side=64)  # 64 x 1920 = 122,880 pixels
    assert result.plan.files[0].action == "error"
    assert result.plan.files[0].error == ("refused: the result would be 64x1920 = 0.1 MP, "
                                          "over the 10,000 pixels limit")


def test_pad_and_resize_refuse_an_animation(tmp_path):
    root = tmp_path / "ds"
    animated_gif(root / "1_a" / "g.gif")
    result = run(root, "pad")
    assert result.plan.files[0].action == "error"
    assert "convert it first" in result.plan.files[0].error


# ---- workers, progress, cancel ----------------------------------------------------------------


def _many(root: Path, n: int = 12) -> Path:
    for i in range(n):
        fmt = ("JPEG", "WEBP", "BMP", "PNG")[i % 4]
        ext = {"JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "PNG": ".png"}[fmt]
        save(root / f"{1 + i % 2}_c{i % 2}" / f"img{i:02d}{ext}", picture((40 + i, 30), i), fmt)
    return root


def test_two_workers_write_the_same_bytes_as_one(tmp_path):
    one, two = _many(tmp_path / "one"), _many(tmp_path / "two")
    r1 = run(one, "pad", workers=1)
    r2 = run(two, "pad", workers=2)
    assert r1.applied and r2.applied
    assert snapshot(one) == snapshot(two)
    assert originals(one) == originals(two)
    run(one, "convert", workers=1)
    run(two, "convert", workers=2)
    assert snapshot(one) == snapshot(two)


def test_workers_in_a_threaded_process_use_a_safe_start_method(tmp_path):
    root = _many(tmp_path / "ds", 6)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert mp_context().get_start_method() != "fork"
        result = run(root, "convert", workers=2)
    finally:
        stop.set()
        t.join()
    assert result.applied and not result.failures


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_writes_nothing(tmp_path, workers):
    root = _many(tmp_path / "ds")
    before = snapshot(root)
    plan = plan_images(root, "pad")
    seen = []
    result = apply_image_plan(plan, workers=workers, progress=lambda d, t: seen.append(d),
                              cancelled=lambda: len(seen) >= 2)
    assert result.cancelled and not result.applied
    assert snapshot(root) == before
    assert Journal(root).entries() == []


def test_progress_counts_every_image(tmp_path):
    root = _many(tmp_path / "ds", 8)
    plan = plan_images(root, "pad")
    seen: list[tuple[int, int]] = []
    apply_image_plan(plan, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == list(range(1, 9))
    assert {t for _, t in seen} == {8}


def test_run_tasks_keeps_order_with_chunks():
    items = list(range(37))
    assert run_tasks(abs, items, workers=2) == items
    assert run_tasks(abs, items, workers=1, cancelled=lambda: True) is None


# ---- reports --------------------------------------------------------------------------------


def test_dupes_finds_a_resized_reencoded_copy_but_not_a_different_image(tmp_path):
    root = tmp_path / "ds"
    base = picture((256, 192), 11)
    save(root / "10_a" / "orig.png", base)
    save(root / "5_b" / "copy.jpg", base.resize((128, 96), Image.Resampling.BICUBIC), "JPEG",
         quality=75)
    save(root / "10_a" / "other.png", picture((256, 192), 12))
    save(root / "10_a" / "third.webp", picture((200, 300), 13), "WEBP")
    (root / "10_a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = find_duplicates(root, workers=1)
    assert len(report.groups) == 1
    group = report.groups[0]
    assert [p for p, _ in group] == ["10_a/orig.png", "5_b/copy.jpg"]
    assert group[0][1] == 0 and group[1][1] <= 6
    assert [p for p, _ in report.errors] == ["10_a/broken.png"]
    assert find_duplicates(root, workers=2).groups == report.groups
    assert find_duplicates(root, concept="10_a", workers=1).groups == []
    assert find_duplicates(root, threshold=0, workers=1).groups in ([], report.groups)


def test_phash_and_grouping():
    a = picture((64, 64), 1)
    assert phash(a) == phash(a.copy())
    assert hamming(phash(a), phash(picture((64, 64), 2))) > 12
    assert hamming(0b1011, 0b0001) == 2
    groups = group_near_duplicates([0, 1, 3, 0xFFFF_FFFF_FFFF_FFFF, 7], threshold=1)
    assert [[(m.index, m.distance) for m in g] for g in groups] == [[(0, 0), (1, 1), (2, 2),
                                                                     (4, 3)]]
    assert group_near_duplicates([5], 6) == []


def test_lowres_lists_small_images_from_headers(tmp_path):
    root = tmp_path / "ds"
    save(root / "1_a" / "tiny.png", picture((100, 600)))
    save(root / "1_a" / "fine.jpg", picture((512, 700)), "JPEG")
    save(root / "2_b" / "wide.webp", picture((900, 300)), "WEBP")
    (root / "2_b" / "bad.png").write_bytes(b"nope")
    low, bad = find_lowres(root, 512)
    assert [(r.path, r.size) for r in low] == [("1_a/tiny.png", (100, 600)),
                                               ("2_b/wide.webp", (900, 300))]
    assert [p for p, _ in bad] == ["2_b/bad.png"]
    low, _ = find_lowres(root, 512, concept="1_a")
    assert [r.path for r in low] == ["1_a/tiny.png"]


# ---- the ONNX upscaler --------------------------------------------------------------------------


class _Spec:
    def __init__(self, name, shape, type_="tensor(float)"):
        self.name, self.shape, self.type = name, shape, type_


class FakeSession:
    """A stand-in for onnxruntime.InferenceSession: nearest-neighbour 2x in numpy."""

    def __init__(self, shape=(1, 3, "h", "w"), scale=2, inputs=1):
        self.inputs = [_Spec(f"x{i}", list(shape)) for i in range(inputs)]
        self.scale = scale
        self.calls: list[tuple[int, ...]] = []

    def get_inputs(self):
        return self.inputs

    def get_outputs(self):
        return [_Spec("y", [1, 3, None, None])]

    def run(self, names, feeds):
        x = feeds["x0"]
        self.calls.append(x.shape)
        if isinstance(self.inputs[0].shape[2], int):
            assert x.shape[2:] == tuple(self.inputs[0].shape[2:])
        s = self.scale
        if isinstance(s, float):  # a broken model: not an integer multiple
            return [np.zeros((1, 3, int(x.shape[2] * s), int(x.shape[3] * s)), np.float32)]
        return [x.repeat(s, axis=2).repeat(s, axis=3)]


def _nearest(arr: np.ndarray, s: int) -> np.ndarray:
    return arr.repeat(s, axis=0).repeat(s, axis=1)


@pytest.mark.parametrize(("size", "tile", "overlap"), [
    ((50, 37), 16, 4), ((64, 64), 32, 0), ((10, 90), 8, 3), ((5, 5), 256, 16)])
def test_tiled_upscale_equals_a_whole_image_run(size, tile, overlap):
    arr = np.asarray(picture(size, 4))
    session = FakeSession()
    up = Upscaler(session)
    out = run_tiled(up.run_tile, arr, tile=tile, overlap=overlap)
    assert out.shape == (size[1] * 2, size[0] * 2, 3)
    assert np.array_equal(out, _nearest(arr, 2))
    expected_tiles = -(-size[0] // tile) * -(-size[1] // tile)
    assert len(session.calls) == expected_tiles
    # tiles carry up to `overlap` pixels of context on each side
    assert max(c[3] for c in session.calls) <= min(size[0], tile + 2 * overlap)


def test_tiled_upscale_feeds_a_fixed_size_model_padded_tiles():
    arr = np.asarray(picture((45, 30), 6))
    session = FakeSession(shape=(1, 3, 16, 16), scale=3)
    out = run_tiled(Upscaler(session).run_tile, arr, overlap=2, fixed_hw=(16, 16))
    assert np.array_equal(out, _nearest(arr, 3))
    assert {c for c in session.calls} == {(1, 3, 16, 16)}


def test_upscale_to_min_side_runs_the_model_then_lanczos():
    session = FakeSession()
    im = picture((40, 30), 7)
    out = upscale.upscale_to_min_side(im, 100, Upscaler(session), tile=16, overlap=2)
    assert out.size == (133, 100)  # 40x30 -> 80x60 -> 160x120 (two passes) -> Lanczos down
    assert max(c[2] for c in session.calls) <= 16 + 2 * 2
    assert upscale.upscale_to_min_side(im, 20, Upscaler(session)).size == (40, 30)
    plain = upscale.upscale_to_min_side(im, 60)
    assert plain.size == (80, 60)


def test_upscaler_rejects_models_it_cannot_use():
    with pytest.raises(UpscalerError, match="2 inputs"):
        Upscaler(FakeSession(inputs=2))
    with pytest.raises(UpscalerError, match="1 channels"):
        Upscaler(FakeSession(shape=(1, 1, "h", "w")))
    with pytest.raises(UpscalerError, match="not an integer multiple"):
        Upscaler(FakeSession(scale=1.5)).upscale(picture((20, 20)))
    with pytest.raises(UpscalerError, match="overlap"):
        run_tiled(lambda x: x, np.zeros((4, 4, 3), np.uint8), overlap=8, fixed_hw=(16, 16))


def test_loading_a_file_that_is_not_onnx_is_one_clear_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf model" * 10)
    with pytest.raises(UpscalerError) as info:
        load_upscaler(bad)
    assert str(info.value).startswith(f"cannot load upscaler model {bad}")
    assert "\n" not in str(info.value)
    with pytest.raises(UpscalerError, match="does not exist"):
        load_upscaler(tmp_path / "missing.onnx")


# A real ONNX model, written by hand (the `onnx` package is not a dependency): one Resize
# node, nearest, scale 2. Protobuf wire format: varints and length-delimited fields.

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _int_field(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes_field(field: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _value_info(name: str, dims) -> bytes:
    shape = b"".join(_bytes_field(1, _int_field(1, d) if isinstance(d, int)
                                  else _bytes_field(2, d)) for d in dims)
    tensor_type = _int_field(1, 1) + _bytes_field(2, shape)  # elem_type FLOAT, shape
    return _bytes_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


def onnx_resize_model(scale: int = 2, dims=(1, 3, "h", "w")) -> bytes:
    scales = (_int_field(1, 4) + _int_field(2, 1)  # dims [4], FLOAT
              + _bytes_field(4, struct.pack("<4f", 1, 1, scale, scale)) + _bytes_field(8, "s"))
    attr = _bytes_field(1, "mode") + _bytes_field(4, "nearest") + _int_field(20, 3)
    node = (_bytes_field(1, "x") + _bytes_field(1, "") + _bytes_field(1, "s")
            + _bytes_field(2, "y") + _bytes_field(3, "up") + _bytes_field(4, "Resize")
            + _bytes_field(5, attr))
    graph = (_bytes_field(1, node) + _bytes_field(2, "g") + _bytes_field(5, scales)
             + _bytes_field(11, _value_info("x", dims))
             + _bytes_field(12, _value_info("y", (1, 3, "H", "W"))))
    opset = _bytes_field(1, "") + _int_field(2, 13)
    return _int_field(1, 7) + _bytes_field(2, "lorabake-test") + _bytes_field(7, graph) + \
        _bytes_field(8, opset)


def test_a_real_onnx_model_upscales_a_dataset_tiled(tmp_path):
    model = tmp_path / "x2.onnx"
    model.write_bytes(onnx_resize_model(2))
    up = load_upscaler(model)
    assert up.provider in ("CPU", "CUDA")
    arr = np.asarray(picture((70, 45), 8))
    assert np.array_equal(run_tiled(up.run_tile, arr, tile=32, overlap=5), _nearest(arr, 2))
    root = tmp_path / "ds"
    small = save(root / "1_a" / "small.png", picture((60, 40), 9))
    save(root / "1_a" / "big.png", picture((200, 200), 10))
    result = run(root, "upscale", min_side=100, model=str(model), tile=32, overlap=4)
    assert [f.action for f in result.plan.files] == ["skip", "upscale"]
    assert "(model)" in result.plan.files[1].reason
    assert not result.plan.notes
    out = opened(small)
    assert out.size == (150, 100)  # 60x40 -> 120x80 -> 240x160 -> Lanczos to 150x100
    expected = Image.fromarray(_nearest(_nearest(np.asarray(picture((60, 40), 9)), 2), 2))
    assert out.tobytes() == expected.resize((150, 100), Image.Resampling.LANCZOS).tobytes()


def test_a_bad_model_stops_the_batch_before_anything_changes(tmp_path):
    root = tmp_path / "ds"
    save(root / "1_a" / "small.png", picture((60, 40)))
    before = snapshot(root)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    plan = plan_images(root, "upscale", ImageOptions(min_side=100, model=str(bad)))
    with pytest.raises(LorabakeError, match="cannot load upscaler model"):
        apply_image_plan(plan)
    assert snapshot(root) == before
