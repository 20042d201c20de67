"""The dataset scanner on real files: every problem it reports, and what it must never do."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageFile, features

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.dataset.folders import parse_folder_name
from lorabake_tui.core.dataset.problems import Severity
from lorabake_tui.core.dataset.scan import CaptionState, ScanCancelled, scan_dataset
from lorabake_tui.core.dataset.steps import concept_samples, epoch_summary, reg_samples, run_steps

CAPTION = b"mira, 1girl, smile\n"


def make_image(path: Path, size=(32, 24), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 120, 40)).save(path, format=fmt)
    return path


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def pair(folder: Path, stem: str, caption: bytes | None = CAPTION, ext: str = ".png",
         size=(32, 24)) -> Path:
    """One image and (unless caption is None) its .txt caption."""
    img = make_image(folder / f"{stem}{ext}", size)
    if caption is not None:
        write(folder / f"{stem}.txt", caption)
    return img


def problems_with(ds, code: str) -> list:
    return [p for p in ds.problems if p.code == code]


def the_problem(ds, code: str, severity: Severity, path: str):
    """The single problem with `code`; checks its severity, path and that it explains itself."""
    found = problems_with(ds, code)
    assert len(found) == 1, f"expected one {code}, got {ds.problems}"
    p = found[0]
    assert p.severity is severity
    assert p.path == path
    assert p.message.strip()
    assert p.hint.strip()
    return p


def codes(ds) -> set[str]:
    return {p.code for p in ds.problems}


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under root: kind, mtime and (for files) the bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() else None
        out[p.relative_to(root).as_posix()] = (p.is_dir(), st.st_mtime_ns, st.st_mode, data)
    return out


# ---- each problem on real files -----------------------------------------------------------

def test_folder_without_prefix_is_no_prefix(tmp_path):
    pair(tmp_path / "misc", "a")
    pair(tmp_path / "10_ok", "b")
    ds = scan_dataset(tmp_path)
    the_problem(ds, "no-prefix", Severity.ERROR, "misc")
    misc = ds.concept("misc")
    assert misc is not None and misc.repeats is None and misc.samples == 0
    assert misc.image_count == 1
    assert ds.concept("10_ok").samples == 10


@pytest.mark.parametrize("folder", ["0_x", "-1_x"])
def test_repeats_below_one_is_bad_repeats(tmp_path, folder):
    pair(tmp_path / folder, "a")
    ds = scan_dataset(tmp_path)
    the_problem(ds, "bad-repeats", Severity.ERROR, folder)
    assert "no-prefix" not in codes(ds)
    assert ds.concept(folder).samples == 0


def test_images_in_the_root_are_root_images(tmp_path):
    make_image(tmp_path / "loose.png")
    make_image(tmp_path / "also.jpg")
    (tmp_path / "notes.txt").write_bytes(b"not an image")
    pair(tmp_path / "10_x", "a")
    ds = scan_dataset(tmp_path)
    p = the_problem(ds, "root-images", Severity.ERROR, ".")
    assert "2" in p.message  # two images, the text file is not one
    assert [c.folder for c in ds.concepts] == ["10_x"]


def test_image_without_caption_is_missing_caption(tmp_path):
    folder = tmp_path / "10_x"
    pair(folder, "a", caption=None)
    pair(folder, "b")
    pair(folder, "c", caption=None)
    ds = scan_dataset(tmp_path)
    p = the_problem(ds, "missing-caption", Severity.WARNING, "10_x")
    assert "2" in p.message
    c = ds.concept("10_x")
    assert c.captions_missing == 2
    states = {im.path.name: im.caption for im in c.images}
    assert states == {"a.png": CaptionState.MISSING, "b.png": CaptionState.OK,
                      "c.png": CaptionState.MISSING}


@pytest.mark.parametrize("data", [b"", b"  \n\t \r\n", b"\nmira, 1girl\n"],
                         ids=["zero-bytes", "whitespace-only", "blank-first-line"])
def test_empty_caption(tmp_path, data):
    folder = tmp_path / "10_x"
    pair(folder, "a", caption=data)
    ds = scan_dataset(tmp_path)
    the_problem(ds, "empty-caption", Severity.ERROR, "10_x/a.txt")
    c = ds.concept("10_x")
    assert c.images[0].caption is CaptionState.EMPTY
    assert c.captions_missing == 0  # the file exists; it is empty, not missing
    assert "caption-multiline" not in codes(ds)


def test_two_images_one_stem_is_shared_stem(tmp_path):
    folder = tmp_path / "10_x"
    make_image(folder / "a.png")
    make_image(folder / "a.jpg")
    write(folder / "a.txt", CAPTION)
    pair(folder, "b")
    ds = scan_dataset(tmp_path)
    p = the_problem(ds, "shared-stem", Severity.ERROR, "10_x/a.txt")
    assert "a.png" in p.message and "a.jpg" in p.message
    assert ds.concept("10_x").image_count == 3


def test_truncated_png_is_bad_image(tmp_path):
    folder = tmp_path / "10_x"
    img = pair(folder, "a", size=(256, 256))
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])
    pair(folder, "b")
    ds = scan_dataset(tmp_path)
    the_problem(ds, "bad-image", Severity.ERROR, "10_x/a.png")
    items = {im.path.name: im for im in ds.concept("10_x").images}
    assert items["a.png"].readable is False
    assert items["b.png"].readable is True


def test_text_file_named_png_is_bad_image(tmp_path):
    folder = tmp_path / "10_x"
    write(folder / "a.png", b"this is not a picture at all\n")
    write(folder / "a.txt", CAPTION)
    ds = scan_dataset(tmp_path)
    the_problem(ds, "bad-image", Severity.ERROR, "10_x/a.png")
    assert ds.concept("10_x").images[0].width is None


def test_latin1_caption_is_caption_not_utf8(tmp_path):
    pair(tmp_path / "10_x", "a", caption=b"caf\xe9, 1girl")
    ds = scan_dataset(tmp_path)
    the_problem(ds, "caption-not-utf8", Severity.ERROR, "10_x/a.txt")
    assert ds.concept("10_x").images[0].caption is CaptionState.NOT_UTF8


UNSUPPORTED = [".gif"] + ([".avif"] if features.check("avif") else [])


@pytest.mark.parametrize("ext", UNSUPPORTED)
def test_gif_and_avif_are_unsupported_type(tmp_path, ext):
    folder = tmp_path / "10_x"
    pair(folder, "a", ext=ext, size=(40, 30))
    ds = scan_dataset(tmp_path)
    the_problem(ds, "unsupported-type", Severity.ERROR, f"10_x/a{ext}")
    assert "bad-image" not in codes(ds)  # a fine file, just one kohya cannot load
    item = ds.concept("10_x").images[0]
    assert (item.ext, item.width, item.height) == (ext, 40, 30)


def test_caption_with_bom_is_caption_bom(tmp_path):
    pair(tmp_path / "10_x", "a", caption=b"\xef\xbb\xbfmira, 1girl\n")
    ds = scan_dataset(tmp_path)
    the_problem(ds, "caption-bom", Severity.WARNING, "10_x/a.txt")
    assert ds.concept("10_x").images[0].caption is CaptionState.OK


def test_caption_with_two_lines_is_caption_multiline(tmp_path):
    folder = tmp_path / "10_x"
    pair(folder, "a", caption=b"mira, 1girl\nsmile, outdoors\n")
    pair(folder, "b", caption=b"mira, 1girl\r\n")  # one line with CRLF: fine
    pair(folder, "c", caption=b"mira, 1girl\n\n\n")  # trailing blank lines: fine
    ds = scan_dataset(tmp_path)
    the_problem(ds, "caption-multiline", Severity.WARNING, "10_x/a.txt")


def test_folder_without_images_is_empty_folder(tmp_path):
    (tmp_path / "10_empty").mkdir()
    write(tmp_path / "10_notes" / "readme.txt", b"captions but no images\n")
    pair(tmp_path / "10_ok", "a")
    ds = scan_dataset(tmp_path)
    empties = sorted(p.path for p in problems_with(ds, "empty-folder"))
    assert empties == ["10_empty", "10_notes"]
    for p in problems_with(ds, "empty-folder"):
        assert p.severity is Severity.WARNING and p.message and p.hint


def test_subfolder_is_nested_folder_and_not_read(tmp_path):
    folder = tmp_path / "10_x"
    pair(folder, "a")
    pair(folder / "more", "b")
    pair(folder / "more", "c")
    ds = scan_dataset(tmp_path)
    p = the_problem(ds, "nested-folder", Severity.WARNING, "10_x")
    assert "more" in p.message
    assert ds.concept("10_x").image_count == 1  # kohya does not recurse


def test_empty_root_is_no_concepts(tmp_path):
    ds = scan_dataset(tmp_path)
    the_problem(ds, "no-concepts", Severity.WARNING, ".")
    assert ds.concepts == []
    assert len(ds.problems) == 1


# ---- what a scan finds --------------------------------------------------------------------

def test_clean_dataset_has_no_problems(tmp_path):
    for i in range(3):
        pair(tmp_path / "10_mira_uniform", f"u{i}")
    pair(tmp_path / "5_mira_casual", "c0", ext=".jpg")
    pair(tmp_path / "5_mira_casual", "c1", ext=".webp")
    pair(tmp_path / "1_bg", "b0", ext=".bmp")
    ds = scan_dataset(tmp_path)
    assert ds.problems == []
    assert [(c.folder, c.name, c.repeats, c.image_count) for c in ds.concepts] == [
        ("10_mira_uniform", "mira_uniform", 10, 3),
        ("1_bg", "bg", 1, 1),
        ("5_mira_casual", "mira_casual", 5, 2),
    ]
    assert all(c.captions_missing == 0 and c.problems == 0 for c in ds.concepts)


def test_image_sizes_come_from_headers(tmp_path):
    folder = tmp_path / "10_x"
    sizes = {".png": (40, 30), ".jpg": (17, 23), ".webp": (64, 8), ".bmp": (5, 7)}
    for ext, size in sizes.items():
        pair(folder, ext[1:], ext=ext, size=size)
    ds = scan_dataset(tmp_path)
    got = {im.ext: (im.width, im.height) for im in ds.concept("10_x").images}
    assert got == sizes


def test_caption_extension_is_configurable(tmp_path):
    folder = tmp_path / "10_x"
    make_image(folder / "a.png")
    make_image(folder / "b.png")
    write(folder / "a.caption", CAPTION)
    write(folder / "b.caption", CAPTION)

    ds = scan_dataset(tmp_path, caption_ext=".caption")
    assert ds.problems == []
    c = ds.concept("10_x")
    assert c.captions_missing == 0
    assert {im.caption_path.name for im in c.images} == {"a.caption", "b.caption"}

    ds = scan_dataset(tmp_path, caption_ext=".txt")
    p = the_problem(ds, "missing-caption", Severity.WARNING, "10_x")
    assert ".txt" in p.message
    assert ds.concept("10_x").captions_missing == 2


def test_dotfiles_and_state_dir_are_ignored(tmp_path):
    pair(tmp_path / "10_x", "a")
    make_image(tmp_path / "10_x" / ".hidden.png")
    write(tmp_path / "10_x" / ".DS_Store", b"\0\1\2")
    pair(tmp_path / ".lorabake" / "thumbs", "t")
    write(tmp_path / ".lorabake" / "journal" / "000001.json", b"{}")
    pair(tmp_path / ".trash", "old")
    make_image(tmp_path / ".cover.png")  # a hidden image in the root is not a root image
    ds = scan_dataset(tmp_path)
    assert [c.folder for c in ds.concepts] == ["10_x"]
    assert [im.path.name for im in ds.concepts[0].images] == ["a.png"]
    assert ds.problems == []


def test_uppercase_extensions_count(tmp_path):
    folder = tmp_path / "10_x"
    make_image(folder / "A.PNG")
    write(folder / "A.txt", CAPTION)
    make_image(folder / "B.JPG", fmt="JPEG")
    write(folder / "B.txt", CAPTION)
    ds = scan_dataset(tmp_path)
    c = ds.concept("10_x")
    assert c.image_count == 2
    assert sorted(im.ext for im in c.images) == [".jpg", ".png"]
    assert c.captions_missing == 0
    assert ds.problems == []


def test_folder_name_splits_on_first_underscore(tmp_path):
    pair(tmp_path / "10_a_b", "x")
    c = scan_dataset(tmp_path).concept("10_a_b")
    assert (c.repeats, c.name) == (10, "a_b")


def test_folder_named_only_a_number_is_trained(tmp_path):
    # kohya parses "10" as 10 repeats with an empty class token and trains it; it is not a
    # folder kohya skips, so it must not be reported as one.
    pair(tmp_path / "10", "a")
    ds = scan_dataset(tmp_path)
    assert ds.concept("10").repeats == 10
    assert "no-prefix" not in codes(ds)


def test_regularization_root(tmp_path):
    train, reg = tmp_path / "train", tmp_path / "reg"
    for i in range(2):
        pair(train / "10_mira", f"m{i}")
    for i in range(3):
        pair(reg / "1_woman", f"w{i}")
    pair(reg / "person", "p0")  # no prefix: kohya skips it in reg too
    ds = scan_dataset(train, reg)
    assert [(c.folder, c.is_reg) for c in ds.train_concepts] == [("10_mira", False)]
    assert sorted((c.folder, c.is_reg) for c in ds.reg_concepts) == [
        ("1_woman", True), ("person", True)]
    assert ds.concept("1_woman", is_reg=True).image_count == 3
    assert ds.concept("1_woman") is None  # not a training folder
    assert ds.reg_root == reg.resolve()
    found = problems_with(ds, "no-prefix")
    assert len(found) == 1
    assert (ds.root / found[0].path).resolve() == (reg / "person").resolve()
    js = ds.to_json()
    assert sorted(c["is_reg"] for c in js["concepts"]) == [False, True, True]


def test_images_in_reg_root_are_root_images(tmp_path):
    train, reg = tmp_path / "train", tmp_path / "reg"
    pair(train / "10_mira", "m0")
    pair(reg / "1_woman", "w0")
    make_image(reg / "stray.png")
    ds = scan_dataset(train, reg)
    found = problems_with(ds, "root-images")
    assert len(found) == 1 and found[0].severity is Severity.ERROR
    assert (ds.root / found[0].path).resolve() == reg.resolve()
    assert "regularization" in found[0].message


def test_to_json_contract(tmp_path):
    pair(tmp_path / "10_a", "x")
    pair(tmp_path / "10_a", "y", caption=None)
    pair(tmp_path / "misc", "z")
    data = json.loads(json.dumps(scan_dataset(tmp_path).to_json()))
    assert isinstance(data["concepts"], list) and isinstance(data["problems"], list)
    by_folder = {c["folder"]: c for c in data["concepts"]}
    assert set(by_folder) == {"10_a", "misc"}
    for c in data["concepts"]:
        assert {"folder", "name", "repeats", "images", "captions_missing", "is_reg"} <= set(c)
    assert {k: by_folder["10_a"][k] for k in ("name", "repeats", "images",
                                               "captions_missing", "is_reg")} == {
        "name": "a", "repeats": 10, "images": 2, "captions_missing": 1, "is_reg": False}
    assert by_folder["misc"]["repeats"] is None
    assert by_folder["misc"]["images"] == 1
    for p in data["problems"]:
        assert {"severity", "path", "message"} <= set(p)
        assert p["severity"] in ("error", "warning")
        assert isinstance(p["path"], str) and p["message"]
    sev = {(p["path"], p["severity"]) for p in data["problems"]}
    assert ("misc", "error") in sev and ("10_a", "warning") in sev


def test_missing_root_raises_lorabake_error(tmp_path):
    with pytest.raises(LorabakeError) as err:
        scan_dataset(tmp_path / "nope")
    assert "nope" in str(err.value)
    write(tmp_path / "file.png", b"x")
    with pytest.raises(LorabakeError):
        scan_dataset(tmp_path / "file.png")
    (tmp_path / "train").mkdir()
    with pytest.raises(LorabakeError):
        scan_dataset(tmp_path / "train", tmp_path / "no-reg")


def test_scan_never_modifies_anything(tmp_path):
    root = tmp_path / "ds"
    pair(root / "10_x", "a")
    pair(root / "10_x", "b", caption=b"\xef\xbb\xbfcaf\xc3\xa9\nline two\n")
    pair(root / "10_x", "c", caption=b"caf\xe9")
    pair(root / "10_x", "d", caption=b"")
    pair(root / "10_x", "e", caption=None)
    make_image(root / "10_x" / "a.jpg")
    write(root / "10_x" / "broken.png", b"\x89PNG\r\n\x1a\nnope")
    pair(root / "10_x" / "sub", "f")
    pair(root / "misc", "g", ext=".gif")
    (root / "0_empty").mkdir()
    make_image(root / "loose.png")
    pair(root / ".lorabake", "thumb")
    before = tree_state(root)
    ds = scan_dataset(root, caption_ext=".txt")
    assert len(ds.problems) > 8  # the mess was seen...
    assert tree_state(root) == before  # ...and nothing was touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_scan_never_decodes_pixels(tmp_path, monkeypatch):
    folder = tmp_path / "10_x"
    sizes = {".png": (33, 21), ".jpg": (18, 40), ".webp": (50, 12), ".bmp": (7, 9),
             ".gif": (12, 12)}
    for ext, size in sizes.items():
        pair(folder, ext[1:], ext=ext, size=size)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    # the trap works: decoding any of these files now fails
    with pytest.raises(AssertionError), Image.open(folder / "png.png") as im:
        im.load()

    ds = scan_dataset(tmp_path)
    got = {im.ext: (im.width, im.height) for im in ds.concept("10_x").images}
    assert got == sizes
    assert "bad-image" not in codes(ds)


def _many_images(folder: Path, n: int) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"{i:04d}.png").write_bytes(buf.getvalue())


def test_progress_reports_done_and_total(tmp_path):
    _many_images(tmp_path / "10_a", 200)
    _many_images(tmp_path / "10_b", 100)
    _many_images(tmp_path / "10_c", 7)
    calls: list[tuple[int, int]] = []
    scan_dataset(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls, "progress was never called"
    assert calls[-1] == (307, 307)
    assert all(total == 307 for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(0 <= d <= 307 for d in done)


def test_progress_on_small_dataset_ends_at_total(tmp_path):
    for i in range(3):
        pair(tmp_path / "10_x", f"a{i}")
    calls: list[tuple[int, int]] = []
    scan_dataset(tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)


def test_cancel_raises_scan_cancelled(tmp_path):
    _many_images(tmp_path / "10_a", 300)
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return True

    with pytest.raises(ScanCancelled):
        scan_dataset(tmp_path, cancelled=cancelled)
    assert asked
    # not cancelled: the same scan completes
    ds = scan_dataset(tmp_path, cancelled=lambda: False)
    assert ds.concept("10_a").image_count == 300


# ---- folder names as kohya parses them ----------------------------------------------------

@pytest.mark.parametrize(("folder", "repeats", "name"), [
    ("10_x", 10, "x"),
    ("007_x", 7, "x"),
    ("10_a_b", 10, "a_b"),
    ("-1_x", -1, "x"),
    ("+3_x", 3, "x"),
    ("1_", 1, ""),
    # kohya: "10".split("_") == ["10"]; int("10") == 10 and the class token is ""
    ("10", 10, ""),
])
def test_parse_folder_name_with_repeats(folder, repeats, name):
    parsed = parse_folder_name(folder)
    assert (parsed.repeats, parsed.name) == (repeats, name)


@pytest.mark.parametrize("folder", ["x_10", "_x", "misc", "1.5_x", "ten_x", ""])
def test_parse_folder_name_without_repeats(folder):
    assert parse_folder_name(folder).repeats is None


# ---- samples as kohya counts them ---------------------------------------------------------

def test_concept_samples():
    assert concept_samples(10, 5) == 50
    assert concept_samples(0, 5) == 0
    assert concept_samples(10, None) == 0  # no prefix: skipped
    assert concept_samples(10, 0) == 0
    assert concept_samples(10, -2) == 0


def test_reg_samples_without_reg_images_is_zero():
    assert reg_samples(100, []) == 0
    assert reg_samples(100, [(5, None)]) == 0  # a skipped reg folder adds nothing


def test_reg_samples_short_reg_is_repeated_up_to_train():
    assert reg_samples(100, [(40, 1)]) == 100
    assert reg_samples(100, [(100, 1)]) == 100
    assert reg_samples(100, [(10, 2), (5, 1)]) == 100


def test_reg_samples_surplus_reg_is_cut_to_train():
    # kohya registers reg images one by one until they reach the training count and drops
    # the rest ("some of reg images are not used"): 100 one-repeat reg images against 10
    # training samples give 10 reg samples per epoch, not 100.
    assert reg_samples(10, [(100, 1)]) == 10
    # an image's repeats are taken whole: 3+3+3+3 passes 10 at 12, the rest unused
    assert reg_samples(10, [(5, 3)]) == 12


def test_epoch_summary_without_reg():
    s = epoch_summary([(10, 5), (4, None), (3, 0), (2, 1)], [], 8)
    assert (s.train_samples, s.reg_samples, s.epochs) == (52, 0, 8)
    assert s.samples_per_epoch == 52
    assert s.total_samples == 416


def test_epoch_summary_with_reg():
    s = epoch_summary([(10, 5)], [(20, 1)], 4)
    assert (s.train_samples, s.reg_samples) == (50, 50)
    assert s.samples_per_epoch == 100
    assert s.total_samples == 400
    # a reg folder kohya skips adds nothing
    s = epoch_summary([(10, 5)], [(20, None)], 4)
    assert (s.reg_samples, s.total_samples) == (0, 200)


def test_mixed_case_extension_is_flagged(tmp_path):
    from PIL import Image

    d = tmp_path / "1_a"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "x.Png", format="PNG")
    Image.new("RGB", (8, 8)).save(d / "y.PNG", format="PNG")  # all-caps is fine for kohya
    for stem in ("x", "y"):
        (d / f"{stem}.txt").write_text("t")
    ds = scan_dataset(tmp_path)
    flagged = [p for p in ds.problems if p.code == "ext-case"]
    assert [p.path for p in flagged] == ["1_a/x.Png"]
    assert "x.png" in flagged[0].hint


def test_caption_with_unicode_line_separator_is_one_line(tmp_path):
    from PIL import Image

    d = tmp_path / "1_a"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "x.png")
    (d / "x.txt").write_text("a\u2028b, c\n", encoding="utf-8")
    assert not [p for p in scan_dataset(tmp_path).problems if p.code == "caption-multiline"]


def test_run_steps_cut_at_max_steps():
    # 8 epochs of 320 batches; 0 is no cut, and a cut past the end changes nothing
    assert run_steps(8, 320) == (2560, 8)
    assert run_steps(8, 320, max_steps=9000) == (2560, 8)
    assert run_steps(8, 320, max_steps=40) == (40, 1)
    assert run_steps(8, 320, max_steps=321) == (321, 2)  # the 2nd epoch starts, one step of it
    # two processes split each epoch's batches, rounded up: 161 steps per epoch
    assert run_steps(2, 321, processes=2) == (322, 2)
    assert run_steps(2, 321, max_steps=200, processes=2) == (200, 2)


# ---- EXIF orientation ------------------------------------------------------------------------


def test_exif_rotated_image_is_reported_with_the_fix(tmp_path):
    from ...support.helpers import exif_orientation, make_exif_rotated

    d = tmp_path / "5_mira"
    make_exif_rotated(d / "phone.jpg", (640, 320), orientation=6)
    write(d / "phone.txt", CAPTION)
    # EXIF saying 1 (upright as stored): nothing to report
    Image.new("RGB", (64, 48)).save(d / "upright.jpg", "JPEG", exif=exif_orientation(1))
    write(d / "upright.txt", CAPTION)
    ds = scan_dataset(tmp_path)
    p = the_problem(ds, "exif-rotated", Severity.WARNING, "5_mira/phone.jpg")
    assert "orientation 6" in p.message
    assert "kohya trains it as stored" in p.message and "sideways" in p.message
    assert "640x320" in p.message  # the stored size, which is what gets bucketed
    assert "convert" in p.hint and "upright" in p.hint
    assert p.concept == "5_mira"
    items = {im.name: im for im in ds.concepts[0].images}
    # the item keeps the stored size, as kohya's imagesize reads it
    assert (items["phone.jpg"].width, items["phone.jpg"].height) == (640, 320)
    assert items["phone.jpg"].orientation == 6
    assert items["upright.jpg"].orientation == 1


@pytest.mark.parametrize(("orientation", "words"), [
    (2, "mirrored"), (3, "upside down"), (8, "sideways")])
def test_exif_rotated_message_names_how_it_trains(tmp_path, orientation, words):
    from ...support.helpers import make_exif_rotated

    make_exif_rotated(tmp_path / "1_a" / "x.png", (40, 20), orientation, fmt="PNG")
    p = the_problem(scan_dataset(tmp_path), "exif-rotated", Severity.WARNING, "1_a/x.png")
    assert f"orientation {orientation}" in p.message and words in p.message
