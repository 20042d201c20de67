"""Tests for the procedurally drawn demo dataset (lorabake_tui.demo.draw)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from lorabake_tui.demo.draw import DEMO_CHARACTER, build_demo

from ..support.paths import REPO

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".avif"}
EXPECTED_COUNTS = {
    "10_mira_uniform": 40,
    "10_mira_casual": 18,
    "10_mira_swimsuit": 6,
    "misc": 8,
}


def _images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _captions(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.txt") if p.parent != root)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _tags(path: Path) -> list[str]:
    return [t.strip() for t in path.read_text(encoding="utf-8").strip().split(",")]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("demo_module") / "root"
    assert build_demo(dest) == dest
    return dest


def test_character_constant() -> None:
    assert DEMO_CHARACTER == "mira"


def test_folder_layout_and_counts(demo_root: Path) -> None:
    folders = sorted(p.name for p in demo_root.iterdir() if p.is_dir())
    assert folders == sorted(EXPECTED_COUNTS)
    for folder, expected in EXPECTED_COUNTS.items():
        found = [p for p in (demo_root / folder).iterdir() if p.suffix.lower() in IMAGE_EXTS]
        assert len(found) == expected, folder
    assert (demo_root / "README.txt").is_file()
    readme_lines = (demo_root / "README.txt").read_text(encoding="utf-8").strip().splitlines()
    assert 3 <= len(readme_lines) <= 6


def test_exactly_one_image_without_caption(demo_root: Path) -> None:
    missing = [p for p in _images(demo_root) if not p.with_suffix(".txt").exists()]
    assert len(missing) == 1
    assert missing[0].parent.name == "10_mira_casual"


def test_exactly_one_shared_stem(demo_root: Path) -> None:
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in _images(demo_root):
        groups[(p.parent.name, p.stem)].append(p.suffix)
    shared = {key: exts for key, exts in groups.items() if len(exts) > 1}
    assert shared == {("10_mira_uniform", "shared_pose"): [".jpg", ".png"]}
    assert (demo_root / "10_mira_uniform" / "shared_pose.txt").is_file()


def test_single_gif_lives_in_misc(demo_root: Path) -> None:
    gifs = [p for p in _images(demo_root) if p.suffix.lower() == ".gif"]
    assert len(gifs) == 1
    assert gifs[0].parent.name == "misc"


def test_mixed_file_types(demo_root: Path) -> None:
    exts = Counter(p.suffix.lower() for p in _images(demo_root))
    assert exts[".png"] > exts[".jpg"] > 0
    assert exts[".webp"] > 0


def test_sizes_low_res_and_aspect_ratios(demo_root: Path) -> None:
    sizes = []
    for p in _images(demo_root):
        with Image.open(p) as im:
            sizes.append(im.size)
    low_res = [s for s in sizes if min(s) < 256]
    assert low_res
    assert len(low_res) <= len(sizes) // 5  # "about 10%", not most of them
    ratios = {Fraction(w, h) for w, h in sizes}
    assert len(ratios) >= 3


def test_captions_are_single_utf8_lines_starting_with_trigger(demo_root: Path) -> None:
    captions = _captions(demo_root)
    assert len(captions) == len(_images(demo_root)) - 2  # one missing, one pair shares
    for path in captions:
        text = path.read_bytes().decode("utf-8")  # strict: raises on invalid UTF-8
        assert len(text.splitlines()) == 1, path
        tags = _tags(path)
        assert tags[0] == DEMO_CHARACTER, path
        assert all(tags), path


def test_one_runaway_caption(demo_root: Path) -> None:
    long_ones = [p for p in _captions(demo_root) if len(_tags(p)) >= 80]
    assert len(long_ones) == 1
    assert long_ones[0].parent.name == "10_mira_uniform"
    tags = _tags(long_ones[0])
    assert len(set(tags)) < len(tags)  # repeated tags: clearly garbage


def test_tagger_noise_present(demo_root: Path) -> None:
    all_tags = Counter(t for p in _captions(demo_root) for t in _tags(p))
    assert all_tags["circlet"] > 0
    assert all_tags["tiara"] > 0
    assert all_tags["long hair"] > 0 and all_tags["very long hair"] > 0
    assert all_tags["uncensored"] > 0
    assert all_tags["meme"] > 0
    assert any("_" in t for t in all_tags)
    assert any("(" in t and ")" in t for t in all_tags)


def test_outfit_tags_follow_folder(demo_root: Path) -> None:
    expected = {
        "10_mira_uniform": "serafuku",
        "10_mira_casual": "hoodie",
        "10_mira_swimsuit": "one-piece swimsuit",
    }
    for folder, tag in expected.items():
        for path in _captions(demo_root / folder):
            if len(_tags(path)) < 80:
                assert tag in _tags(path), path


def test_every_image_verifies(demo_root: Path) -> None:
    for path in _images(demo_root):
        with Image.open(path) as im:
            im.verify()


def test_same_seed_is_byte_identical_and_other_seed_differs(
    demo_root: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    again.mkdir()  # an existing empty directory is accepted
    build_demo(again, seed=0)
    assert _snapshot(again) == _snapshot(demo_root)

    other = build_demo(tmp_path / "other", seed=1)
    first, second = _snapshot(demo_root), _snapshot(other)
    assert first != second
    common = set(first) & set(second)
    assert any(first[name] != second[name] for name in common if name.endswith(".png"))


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("precious", encoding="utf-8")
    before = _snapshot(dest)
    with pytest.raises(FileExistsError, match="not empty"):
        build_demo(dest)
    assert _snapshot(dest) == before
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]


def test_refuses_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "a_file"
    target.write_bytes(b"x")
    with pytest.raises(FileExistsError):
        build_demo(target)
    assert target.read_bytes() == b"x"


def test_module_stays_free_of_ui_and_torch() -> None:
    code = (
        "import sys, lorabake_tui.demo.draw\n"
        "bad = [m for m in ('textual', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
