"""The scan on what a dataset folder should not hold: FIFOs and sockets named like images or
captions, links that loop or lead nowhere, concept folders that are links, captions linked
from elsewhere, and images too large to open. Each is a problem with a fix; none hangs,
crashes or recurses."""

from __future__ import annotations

import os
import socket
import threading
import warnings
from pathlib import Path

import pytest
from PIL import Image

from lorabake_tui.core.dataset.folders import parse_folder_name
from lorabake_tui.core.dataset.problems import Severity
from lorabake_tui.core.dataset.scan import CaptionState, LinkPlace, scan_dataset
from lorabake_tui.core.images.limits import MAX_PIXELS, PILLOW_WARNING_PIXELS

from ...support.crafted import png_claiming, tiff_claiming
from ...support.helpers import make_concept

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


def scan_within(root: Path, seconds: float = 20.0, **kw):
    """scan_dataset in a thread: a scan that blocks (a FIFO opened) fails the test instead of
    hanging the suite."""
    out: dict = {}

    def work() -> None:
        try:
            out["ds"] = scan_dataset(root, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            out["exc"] = exc

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"the scan of {root} did not finish in {seconds:g} s"
    if "exc" in out:
        raise out["exc"]
    return out["ds"]


def problem(ds, path: str):
    found = [p for p in ds.problems if p.path == path]
    assert len(found) == 1, f"expected one problem at {path}, got {ds.problems}"
    return found[0]


# ---- special files -----------------------------------------------------------------------

@posix_only
def test_fifos_named_like_a_caption_and_an_image_are_reported_never_opened(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 2)
    (d / "img_000.txt").unlink()
    os.mkfifo(d / "img_000.txt")
    os.mkfifo(d / "x.png")
    ds = scan_within(root)
    [c] = ds.concepts
    # the FIFO image is no image of the dataset: nothing downstream may open it
    assert sorted(im.name for im in c.images) == ["img_000.png", "img_001.png"]
    cap = problem(ds, "10_c/img_000.txt")
    assert cap.code == "not-regular" and cap.message == "not a regular file (a FIFO): skipped"
    assert cap.hint == "remove or rename it" and cap.severity is Severity.WARNING
    img = problem(ds, "10_c/x.png")
    # kohya globs x.png and would block opening it: an error
    assert img.code == "not-regular" and img.severity is Severity.ERROR
    # kohya's os.path.isfile says no to the FIFO caption: the image trains with the class token
    by_name = {im.name: im for im in c.images}
    assert by_name["img_000.png"].caption is CaptionState.MISSING
    assert by_name["img_000.png"].caption_name is None
    assert by_name["img_001.png"].caption is CaptionState.OK


@posix_only
def test_a_socket_is_reported_too(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 1)
    short = Path(os.path.relpath(d / "s.png"))  # AF_UNIX paths are short
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(short))
        except OSError:
            pytest.skip("cannot bind a unix socket here")
        ds = scan_within(root)
    assert problem(ds, "10_c/s.png").message == "not a regular file (a socket): skipped"


def test_a_caption_swapped_for_a_fifo_after_the_listing_does_not_block(tmp_path, monkeypatch):
    # the listing saw a regular file; by the time the caption is read it is a FIFO
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs POSIX FIFOs")
    from lorabake_tui.core.dataset import scan as scan_mod

    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 1)
    real_list = scan_mod._list_folder

    def list_then_swap(folder):
        out = real_list(folder)
        if folder.name == "10_c":
            (d / "img_000.txt").unlink()
            os.mkfifo(d / "img_000.txt")
        return out

    monkeypatch.setattr(scan_mod, "_list_folder", list_then_swap)
    ds = scan_within(root)
    assert problem(ds, "10_c/img_000.txt").code == "caption-unreadable"


# ---- links -------------------------------------------------------------------------------

def test_link_loops_and_dangling_links_are_problems_not_failures(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 2)
    os.symlink("loop", root / "loop")  # at the root
    os.symlink("loop", d / "loop")
    os.symlink("b.png", d / "a.png")  # a -> b -> a
    os.symlink("a.png", d / "b.png")
    os.symlink("..", d / "up")  # a folder link to its parent
    os.symlink("gone.png", d / "dangling.png")
    os.symlink("gone.txt", d / "img_001.txt.bak")
    (d / "img_001.txt").unlink()
    os.symlink("nowhere.txt", d / "img_001.txt")  # a caption link that leads nowhere
    os.symlink(str(tmp_path / "no_such_dir"), root / "20_gone")  # a concept-like dangling link
    ds = scan_within(root)
    assert [c.folder for c in ds.concepts] == ["10_c"]
    [c] = ds.concepts
    assert sorted(im.name for im in c.images) == ["img_000.png", "img_001.png"]
    assert problem(ds, "loop").code == "link-loop"
    assert problem(ds, "10_c/loop").code == "link-loop"
    for name in ("a.png", "b.png"):
        p = problem(ds, f"10_c/{name}")
        assert p.code == "link-loop" and p.severity is Severity.ERROR  # kohya would crash
    dangling = problem(ds, "10_c/dangling.png")
    assert dangling.code == "dangling-link" and "gone.png, which does not exist" in \
        dangling.message and dangling.severity is Severity.ERROR
    cap = problem(ds, "10_c/img_001.txt")
    assert cap.code == "dangling-link" and cap.severity is Severity.WARNING
    # kohya's isfile() is False for it: a missing caption, trained with the class token
    assert {im.name: im.caption for im in c.images}["img_001.png"] is CaptionState.MISSING
    assert problem(ds, "20_gone").code == "dangling-link"
    # the parent link is a sub-folder the scan does not enter (kohya does not recurse)
    [nested] = [p for p in ds.problems if p.code == "nested-folder"]
    assert "sub-folder(s) up are not read" in nested.message


def test_a_deep_folder_link_cycle_is_never_followed_into(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 1)
    os.symlink(str(root), d / "root")  # 10_c/root/10_c/root/... forever, if followed
    os.symlink(".", root / "5_here")  # a concept folder that is the root itself
    ds = scan_within(root)
    assert {c.folder for c in ds.concepts} == {"10_c", "5_here"}
    here = ds.concept("5_here")
    assert here.image_count == 0 and here.link == root


def test_a_concept_folder_linked_to_another_counts_as_kohya_counts_it(tmp_path):
    # kohya's iterdir()+is_dir() and glob follow the link: 20_alias trains 10_c's images
    # again, with 20 repeats
    root = tmp_path / "ds"
    make_concept(root, "10_c", 3)
    os.symlink("10_c", root / "20_alias")
    ds = scan_within(root)
    alias, c = ds.concept("20_alias"), ds.concept("10_c")
    assert alias.link == root / "10_c" and alias.is_link and not c.is_link
    assert (alias.image_count, alias.samples, c.samples) == (3, 60, 30)
    p = problem(ds, "20_alias")
    assert p.code == "linked-folder" and p.severity is Severity.WARNING
    assert p.message == ("20_alias is a link to 10_c: kohya would train those images twice; "
                         "lorabake will not rename it")
    assert alias.problems == 1
    assert ds.to_json()["concepts"][1]["link"] == str(root / "10_c")


def test_a_concept_folder_linked_from_outside_is_reported_without_twice(tmp_path):
    elsewhere = make_concept(tmp_path / "photos", "shoot", 2)
    root = tmp_path / "ds"
    root.mkdir()
    os.symlink(elsewhere, root / "5_shoot")
    ds = scan_within(root)
    c = ds.concept("5_shoot")
    assert c.image_count == 2 and c.samples == 10
    p = problem(ds, "5_shoot")
    assert p.message == f"5_shoot is a link to {elsewhere}: lorabake will not rename it"


def test_caption_links_say_whether_they_lead_inside_or_outside_the_dataset(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 3)
    shared = root / "shared.txt"  # a file at the root, inside the dataset
    shared.write_text("shared, tags\n")
    (d / "img_000.txt").unlink()
    os.symlink("../shared.txt", d / "img_000.txt")
    outside = tmp_path / "outside.txt"
    outside.write_text("far, away\n")
    (d / "img_001.txt").unlink()
    os.symlink(outside, d / "img_001.txt")
    ds = scan_within(root)
    by_name = {im.name: im for im in ds.concept("10_c").images}
    assert by_name["img_000.png"].caption_link is LinkPlace.INSIDE
    assert by_name["img_001.png"].caption_link is LinkPlace.OUTSIDE
    assert by_name["img_002.png"].caption_link is None
    # read through the link like any caption
    assert {im.caption for im in by_name.values()} == {CaptionState.OK}
    p = problem(ds, "10_c/img_001.txt")
    assert p.code == "caption-link-outside" and str(outside) in p.message
    assert not [q for q in ds.problems if q.path == "10_c/img_000.txt"]


# ---- images too large to open ------------------------------------------------------------

def test_the_pixel_limit_is_where_pillow_refuses_to_open():
    assert PILLOW_WARNING_PIXELS == Image.MAX_IMAGE_PIXELS
    assert MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS


def test_an_image_over_the_pixel_limit_is_an_error_with_the_fix(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 1)
    png_claiming(d / "big.png", 40000, 40000)
    png_claiming(d / "wide.png", 20000, 8948)  # 178,960,000 px: just over
    png_claiming(d / "ok.png", 13377, 13377)  # 178,944,129 px: just under, kohya trains it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        ds = scan_within(root)
    p = problem(ds, "10_c/big.png")
    assert p.code == "too-many-pixels" and p.severity is Severity.ERROR
    assert p.message == "40000x40000 = 1600 MP, over the 179 MP limit"
    assert "shrink it below the limit" in p.hint
    assert problem(ds, "10_c/wide.png").code == "too-many-pixels"
    assert not [q for q in ds.problems if q.path == "10_c/ok.png"]
    items = {im.name: im for im in ds.concept("10_c").images}
    # still an image with a size: the plan leaves it out, the image tools can report it
    assert items["big.png"].readable and items["big.png"].width == 40000
    assert items["big.png"].over_pixel_limit and not items["ok.png"].over_pixel_limit


def test_formats_left_to_pillow_never_leak_its_bomb_warning(tmp_path):
    # a TIFF named .png: the header reader asks Pillow, which warns above 89 MP
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 1)
    tiff_claiming(d / "t.png", 10000, 10000)
    tiff_claiming(d / "huge.png", 40000, 40000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = scan_within(root)
    items = {im.name: im for im in ds.concept("10_c").images}
    assert (items["t.png"].width, items["t.png"].height) == (10000, 10000)
    assert not [q for q in ds.problems if q.path == "10_c/t.png"]
    huge = problem(ds, "10_c/huge.png")
    assert huge.code == "bad-image" and "too many pixels" in huge.message


# ---- repeats below one -------------------------------------------------------------------

@pytest.mark.parametrize("folder,repeats,name", [("0_x", 0, "x"), ("-1_x", -1, "x"),
                                                 ("-1_a_b", -1, "a_b")])
def test_zero_and_negative_prefixes_parse_as_kohya_parses_them(folder, repeats, name):
    # kohya: tokens = name.split("_"); int(tokens[0]); "_".join(tokens[1:])
    tokens = folder.split("_")
    assert (int(tokens[0]), "_".join(tokens[1:])) == (repeats, name)
    parsed = parse_folder_name(folder)
    assert (parsed.repeats, parsed.name) == (repeats, name)
