"""`lorabake tags DIR ACTION ...` end to end: real caption bytes and images on disk, driven
through `lorabake_tui.cli.main(argv)` in-process and as the installed executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lorabake_tui.cli import main

from ..support.helpers import make_image
from ..support.paths import PACKAGE, VENV_LORABAKE

LORABAKE = VENV_LORABAKE
OLD_NS = 1_500_000_000 * 10**9  # every caption starts with this mtime: a rewrite shows
BOM = b"\xef\xbb\xbf"


# ---- helpers ------------------------------------------------------------------------------

def build(root: Path, files: dict[str, bytes | None]) -> Path:
    """One tiny PNG per key ("folder/name.png"); its caption (same stem, .txt) holds the value's
    bytes, or is not created for None. Every caption gets the old mtime OLD_NS."""
    for rel, caption in files.items():
        image = make_image(root / rel, size=(8, 8))
        if caption is not None:
            txt = image.with_suffix(".txt")
            txt.write_bytes(caption)
            os.utime(txt, ns=(OLD_NS, OLD_NS))
    return root


def txt(root: Path, image_rel: str) -> Path:
    return (root / image_rel).with_suffix(".txt")


def cap(root: Path, image_rel: str) -> bytes:
    return txt(root, image_rel).read_bytes()


def mtime(root: Path, image_rel: str) -> int:
    return txt(root, image_rel).stat().st_mtime_ns


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file outside .lorabake: (bytes, mtime_ns)."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".lorabake" not in p.relative_to(root).parts}


def contents(root: Path) -> dict[str, bytes]:
    return {rel: data for rel, (data, _) in snapshot(root).items()}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def tags(capsys, root: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "tags", root, *args)


def ok(capsys, root: Path, *args) -> str:
    code, out, err = tags(capsys, root, *args)
    assert code == 0, err
    return out


def as_json(capsys, root: Path, *args) -> dict:
    return json.loads(ok(capsys, root, *args, "--json"))


def assert_one_line_error(code: int, err: str) -> str:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lorabake: error: ")
    assert "Traceback" not in err
    return lines[0]


def assert_untouched(root: Path, before: dict[str, tuple[bytes, int]]) -> None:
    assert snapshot(root) == before
    assert not (root / ".lorabake" / "journal").exists() or not any(
        (root / ".lorabake" / "journal").glob("*.json"))


# ---- datasets -----------------------------------------------------------------------------

@pytest.fixture
def freq_ds(tmp_path) -> Path:
    """`long_hair` written three times, `long hair` once: one tag, four images."""
    return build(tmp_path / "ds", {
        "10_mira/1.png": b"mira, long_hair, smile\n",
        "10_mira/2.png": b"mira, long_hair, blue eyes\n",
        "10_mira/3.png": b"mira, long hair, long_hair\n",  # twice in one caption: counted once
        "misc/4.png": b"long_hair, scenery\n",
        "misc/5.png": None,
    })


@pytest.fixture
def ds(tmp_path) -> Path:
    return build(tmp_path / "ds", {
        "10_mira/a.png": b"mira, long_hair, red_bow, white background, smile\n",
        "10_mira/b.png": b"mira, long hair, blue eyes, simple_background\n",
        "10_mira/c.png": b"mira, short hair, blue eyes\n",
        "misc/d.png": b"scenery, tree\n",
    })


# ---- list ---------------------------------------------------------------------------------

def test_list_json_contract_counts_and_written_form(freq_ds, capsys):
    data = as_json(capsys, freq_ds, "list")
    assert set(data) == {"images", "tags"}
    assert data["images"] == 5
    assert data["tags"] == [
        {"tag": "long_hair", "count": 4},  # 3x long_hair + 1x long hair, written form wins
        {"tag": "mira", "count": 3},
        {"tag": "blue eyes", "count": 1},
        {"tag": "scenery", "count": 1},
        {"tag": "smile", "count": 1},
    ]
    for row in data["tags"]:
        assert isinstance(row["tag"], str) and isinstance(row["count"], int)
    counts = [row["count"] for row in data["tags"]]
    assert counts == sorted(counts, reverse=True)


def test_list_most_common_written_form_is_the_spaced_one_when_it_dominates(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"long hair\n", "1_a/2.png": b"long hair\n", "1_a/3.png": b"long_hair\n"})
    assert as_json(capsys, root, "list")["tags"] == [{"tag": "long hair", "count": 3}]


def test_list_filter_narrows_images_and_counts(freq_ds, capsys):
    data = as_json(capsys, freq_ds, "list", "--filter", "long hair AND NOT folder:misc")
    assert data["images"] == 3
    assert data["tags"] == [
        {"tag": "long_hair", "count": 3},
        {"tag": "mira", "count": 3},
        {"tag": "blue eyes", "count": 1},
        {"tag": "smile", "count": 1},
    ]


def test_list_concept_narrows_images_and_counts(freq_ds, capsys):
    data = as_json(capsys, freq_ds, "list", "--concept", "misc")
    assert data == {"images": 2, "tags": [{"tag": "long_hair", "count": 1},
                                          {"tag": "scenery", "count": 1}]}


def test_list_filter_and_concept_together(freq_ds, capsys):
    data = as_json(capsys, freq_ds, "list", "--concept", "10_mira", "--filter", "smile")
    assert data == {"images": 1, "tags": [{"tag": "long_hair", "count": 1},
                                          {"tag": "mira", "count": 1},
                                          {"tag": "smile", "count": 1}]}


def test_list_filter_tag_count_and_empty(tmp_path, capsys):
    many = ", ".join(f"tag{i:02d}" for i in range(21)).encode() + b"\n"
    root = build(tmp_path / "ds", {
        "1_a/many.png": many,
        "1_a/few.png": b"mira, smile\n",
        "1_a/blank.png": b"",
        "1_a/nocap.png": None,
    })
    data = as_json(capsys, root, "list", "--filter", "tags>20")
    assert data["images"] == 1
    assert len(data["tags"]) == 21
    assert all(row["count"] == 1 for row in data["tags"])
    assert as_json(capsys, root, "list", "--filter", "tags>21")["images"] == 0
    assert as_json(capsys, root, "list", "--filter", "empty") == {"images": 2, "tags": []}


def test_list_text_output(freq_ds, capsys):
    out = ok(capsys, freq_ds, "list")
    lines = out.splitlines()
    assert lines[0] == "5 images, 5 distinct tags"
    assert lines[1].split() == ["4", "80.0%", "long_hair"]


# ---- replace ------------------------------------------------------------------------------

def test_replace_exact_rewrites_only_matching_files(ds, capsys):
    before = snapshot(ds)
    out = ok(capsys, ds, "replace", "blue eyes", "green eyes")
    assert "2 of 4 caption(s) change" in out
    assert cap(ds, "10_mira/b.png") == b"mira, long hair, green eyes, simple_background\n"
    assert cap(ds, "10_mira/c.png") == b"mira, short hair, green eyes\n"
    after = snapshot(ds)
    for rel in ("10_mira/a.txt", "misc/d.txt"):
        assert after[rel] == before[rel]  # bytes and mtime
    for rel in ("10_mira/b.txt", "10_mira/c.txt"):
        assert after[rel][1] != OLD_NS


def test_replace_exact_underscore_and_space_are_one_tag(ds, capsys):
    ok(capsys, ds, "replace", "long hair", "short_hair")
    assert cap(ds, "10_mira/a.png") == b"mira, short_hair, red_bow, white background, smile\n"
    assert cap(ds, "10_mira/b.png") == b"mira, short_hair, blue eyes, simple_background\n"


def test_replace_exact_dedupes_when_new_already_present(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, long_hair, smile, short hair\n"})
    ok(capsys, root, "replace", "long hair", "short_hair")
    assert cap(root, "1_a/1.png") == b"mira, short_hair, smile\n"


def test_replace_exact_with_empty_removes(ds, capsys):
    ok(capsys, ds, "replace", "smile", "")
    assert cap(ds, "10_mira/a.png") == b"mira, long_hair, red_bow, white background\n"


def test_replace_exact_does_not_match_inside_tags(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"red bow, red\n"})
    ok(capsys, root, "replace", "red", "blue")
    assert cap(root, "1_a/1.png") == b"red bow, blue\n"


def test_replace_substring(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, red_bow, red eyes, smile\n",
        "1_a/2.png": b"mira, smile\n",
    })
    out = ok(capsys, root, "replace", "--substring", "red", "blue")
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, blue_bow, blue eyes, smile\n"
    assert mtime(root, "1_a/2.png") == OLD_NS


def test_replace_regex(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, blue eyes, blue hair, blue sky\n",
        "1_a/2.png": b"mira, red eyes\n",
    })
    ok(capsys, root, "replace", "--regex", r"^blue (eyes|hair)$", r"green \1")
    assert cap(root, "1_a/1.png") == b"mira, green eyes, green hair, blue sky\n"
    assert cap(root, "1_a/2.png") == b"mira, red eyes\n"
    assert mtime(root, "1_a/2.png") == OLD_NS


def test_replace_invalid_regex_is_one_line_error_and_writes_nothing(ds, capsys):
    before = snapshot(ds)
    code, out, err = tags(capsys, ds, "replace", "--regex", "blue (eyes", "x")
    line = assert_one_line_error(code, err)
    assert "regular expression" in line
    assert out == ""
    assert_untouched(ds, before)


# ---- remove / add -------------------------------------------------------------------------

def test_remove_glob(ds, capsys):
    out = ok(capsys, ds, "remove", "*_background")
    assert "2 of 4 caption(s) change" in out
    assert cap(ds, "10_mira/a.png") == b"mira, long_hair, red_bow, smile\n"
    assert cap(ds, "10_mira/b.png") == b"mira, long hair, blue eyes\n"
    assert mtime(ds, "10_mira/c.png") == OLD_NS
    assert mtime(ds, "misc/d.png") == OLD_NS


def test_remove_several_exact_tags(ds, capsys):
    ok(capsys, ds, "remove", "blue_eyes", "tree")
    assert cap(ds, "10_mira/c.png") == b"mira, short hair\n"
    assert cap(ds, "misc/d.png") == b"scenery\n"


def test_add_first_last_and_index(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"smile, blue eyes, long hair\n"})
    ok(capsys, root, "add", "mira")
    assert cap(root, "1_a/1.png") == b"mira, smile, blue eyes, long hair\n"
    ok(capsys, root, "add", "solo", "--position", "last")
    assert cap(root, "1_a/1.png") == b"mira, smile, blue eyes, long hair, solo\n"
    ok(capsys, root, "add", "1girl", "--position", "2")
    assert cap(root, "1_a/1.png") == b"mira, smile, 1girl, blue eyes, long hair, solo\n"


def test_add_moves_an_existing_tag_and_never_duplicates(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"smile, blue eyes, mira, long_hair\n",
        "1_a/2.png": b"mira, smile\n",
    })
    out = ok(capsys, root, "add", "mira")
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, smile, blue eyes, long_hair\n"
    assert mtime(root, "1_a/2.png") == OLD_NS  # already first: not rewritten
    ok(capsys, root, "add", "long hair", "--position", "last")  # same key: moved, form kept
    assert cap(root, "1_a/1.png") == b"mira, smile, blue eyes, long_hair\n"
    ok(capsys, root, "add", "long hair", "--position", "1")
    assert cap(root, "1_a/1.png") == b"mira, long_hair, smile, blue eyes\n"
    assert cap(root, "1_a/2.png") == b"mira, long hair, smile\n"


def test_add_does_not_create_missing_captions_by_default(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"smile\n", "1_a/2.png": None})
    out = ok(capsys, root, "add", "mira")
    assert "1 of 2 caption(s) change" in out
    assert not txt(root, "1_a/2.png").exists()


def test_add_create_missing_creates_a_caption(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"smile\n", "1_a/2.png": None})
    out = ok(capsys, root, "add", "mira", "--create-missing")
    assert "2 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, smile\n"
    assert cap(root, "1_a/2.png") == b"mira\n"


def test_add_bad_position_is_an_error(ds, capsys):
    before = snapshot(ds)
    for pos in ("middle", "-1"):
        code, _, err = tags(capsys, ds, "add", "x", "--position", pos)
        assert "position" in assert_one_line_error(code, err)
    assert_untouched(ds, before)


# ---- prune / consolidate / synonyms / implications ----------------------------------------

def test_prune_preset_hair_colour(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, blonde hair, blue eyes, long_hair\n",
        "1_a/2.png": b"mira, silver_hair, smile\n",
        "1_a/3.png": b"mira, smile\n",
    })
    out = ok(capsys, root, "prune", "--preset", "hair-colour")
    assert "2 of 3 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, blue eyes, long_hair\n"
    assert cap(root, "1_a/2.png") == b"mira, smile\n"
    assert mtime(root, "1_a/3.png") == OLD_NS


def test_prune_given_tags_is_exact_not_glob(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, blue_eyes, smile, long hair, *_hair\n"})
    ok(capsys, root, "prune", "blue eyes", "smile", "*_hair")
    assert cap(root, "1_a/1.png") == b"mira, long hair\n"


def test_prune_needs_preset_or_tags(ds, capsys):
    before = snapshot(ds)
    code, out, err = tags(capsys, ds, "prune")
    assert "prune" in assert_one_line_error(code, err)
    assert out == ""
    code, _, err = tags(capsys, ds, "prune", "smile", "--preset", "hair-colour")
    assert_one_line_error(code, err)
    code, _, err = tags(capsys, ds, "prune", "--preset", "no-such-preset")
    assert "hair-colour" in assert_one_line_error(code, err)  # lists what exists
    assert_untouched(ds, before)


def test_prune_list_presets(ds, capsys):
    out = ok(capsys, ds, "prune", "--list-presets")
    names = out.split()
    bundled = sorted(p.stem for p in (
        PACKAGE / "data" / "presets").glob("*.txt"))
    assert names == bundled
    assert {"hair-colour", "intrinsic"} <= set(names)


def test_prune_list_presets_includes_user_presets(ds, capsys):
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "lorabake" / "presets"
    user.mkdir(parents=True)
    (user / "my-traits.txt").write_text("mira\nsmile\n", encoding="utf-8")
    assert "my-traits" in ok(capsys, ds, "prune", "--list-presets").split()
    ok(capsys, ds, "prune", "--preset", "my-traits")
    assert cap(ds, "10_mira/a.png") == b"long_hair, red_bow, white background\n"


def test_consolidate(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, bow, smile, red bow\n",
        "1_a/2.png": b"mira, red_bow\n",
        "1_a/3.png": b"mira, red bowtie, bow\n",
        "1_a/4.png": b"mira, smile\n",
    })
    out = ok(capsys, root, "consolidate", "--into", "red_bowtie", "bow", "red bow")
    assert "3 of 4 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, red_bowtie, smile\n"
    assert cap(root, "1_a/2.png") == b"mira, red_bowtie\n"
    assert cap(root, "1_a/3.png") == b"mira, red bowtie\n"  # already there: stays as written
    assert mtime(root, "1_a/4.png") == OLD_NS


def test_synonyms_from_file(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, tiara, smile\n",
        "1_a/2.png": b"mira, circlet, tiara\n",
        "1_a/3.png": b"mira, smile\n",
    })
    rules = tmp_path / "syn.txt"
    rules.write_bytes(b"# mine\ncirclet: tiara\n")
    out = ok(capsys, root, "synonyms", rules)
    assert "2 of 3 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, circlet, smile\n"
    assert cap(root, "1_a/2.png") == b"mira, circlet\n"
    assert mtime(root, "1_a/3.png") == OLD_NS


def test_synonyms_bundled_default(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, gray_hair, thigh highs\n"})
    ok(capsys, root, "synonyms")
    assert cap(root, "1_a/1.png") == b"mira, grey hair, thighhighs\n"


def test_implications_default_rules(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, long_hair, very long hair, smile\n",
        "1_a/2.png": b"mira, long hair\n",
        "1_a/3.png": b"mira, absurdly long hair, long hair, very_long_hair\n",
    })
    out = ok(capsys, root, "implications")
    assert "2 of 3 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, very long hair, smile\n"
    assert cap(root, "1_a/2.png") == b"mira, long hair\n"
    assert mtime(root, "1_a/2.png") == OLD_NS
    assert cap(root, "1_a/3.png") == b"mira, absurdly long hair\n"


def test_implications_from_file(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, crown, headwear, long hair, very long hair\n",
    })
    rules = tmp_path / "impl.txt"
    rules.write_bytes(b"crown -> headwear\n")
    ok(capsys, root, "implications", rules)
    # only the file's rules apply: the bundled long hair rule does not
    assert cap(root, "1_a/1.png") == b"mira, crown, long hair, very long hair\n"


def test_rule_file_errors_are_one_line(tmp_path, ds, capsys):
    before = snapshot(ds)
    bad_syn = tmp_path / "bad_syn.txt"
    bad_syn.write_bytes(b"circlet tiara\n")
    code, _, err = tags(capsys, ds, "synonyms", bad_syn)
    assert "bad_syn.txt:1" in assert_one_line_error(code, err)
    loop = tmp_path / "loop.txt"
    loop.write_bytes(b"a tag -> b tag\nb tag -> a tag\n")
    code, _, err = tags(capsys, ds, "implications", loop)
    assert "cycle" in assert_one_line_error(code, err)
    code, _, err = tags(capsys, ds, "synonyms", tmp_path / "missing.txt")
    assert_one_line_error(code, err)
    assert_untouched(ds, before)


# ---- dedupe / sort / normalize / write style ----------------------------------------------

def test_dedupe(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, long_hair, smile, long hair, mira\n",
        "1_a/2.png": b"mira, smile\n",
    })
    out = ok(capsys, root, "dedupe")
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, long_hair, smile\n"
    assert mtime(root, "1_a/2.png") == OLD_NS


def test_sort_by_name_keeps_the_trigger(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, smile, 1girl, Blue eyes, animal_ears\n",
        "1_a/2.png": b"mira, 1girl, smile\n",
    })
    out = ok(capsys, root, "sort", "--by", "name", "--keep", "1")
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, 1girl, animal_ears, Blue eyes, smile\n"
    assert mtime(root, "1_a/2.png") == OLD_NS


def test_sort_by_count(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, tree, smile, solo, blue eyes\n",
        "1_a/2.png": b"mira, solo, blue_eyes\n",
        "1_a/3.png": b"mira, blue eyes\n",
    })
    ok(capsys, root, "sort", "--by", "count")  # --keep defaults to 1: the trigger stays
    # counts: blue eyes 3, solo 2, smile 1, tree 1 (ties by name)
    assert cap(root, "1_a/1.png") == b"mira, blue eyes, solo, smile, tree\n"
    assert cap(root, "1_a/2.png") == b"mira, blue_eyes, solo\n"
    assert mtime(root, "1_a/3.png") == OLD_NS


def test_normalize_spaces_and_underscores(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, long_hair, ^_^, blue eyes, long hair\n",
        "1_a/2.png": b"mira, smile\n",
    })
    out = ok(capsys, root, "normalize", "--spaces")
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"mira, long hair, ^_^, blue eyes\n"
    ok(capsys, root, "normalize", "--underscores")
    assert cap(root, "1_a/1.png") == b"mira, long_hair, ^_^, blue_eyes\n"
    assert cap(root, "1_a/2.png") == b"mira, smile\n"
    assert mtime(root, "1_a/2.png") == OLD_NS


def test_normalize_needs_a_style(ds, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tags", str(ds), "normalize"])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_write_style_spaces_applies_to_written_files(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, red_bow, long_hair\n"})
    ok(capsys, root, "replace", "red bow", "blue_bow", "--write-style", "spaces")
    assert cap(root, "1_a/1.png") == b"mira, blue bow, long hair\n"


def test_write_style_underscores_applies_to_added_tags(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, smile\n"})
    ok(capsys, root, "add", "blue eyes", "--position", "last", "--write-style", "underscores")
    assert cap(root, "1_a/1.png") == b"mira, smile, blue_eyes\n"


def test_write_style_does_not_rewrite_captions_the_operation_leaves_alone(tmp_path, capsys):
    # the style is how *written* tags look: a caption without `smile` is not written at all
    escaped = b"mira, long hair, photo \\(medium\\)\n"
    root = build(tmp_path / "ds", {"1_a/1.png": escaped, "1_a/2.png": b"mira, smile\n"})
    out = ok(capsys, root, "replace", "smile", "grin", "--write-style", "underscores")
    assert cap(root, "1_a/2.png") == b"mira, grin\n"
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == escaped
    assert mtime(root, "1_a/1.png") == OLD_NS


def test_project_write_style_is_the_default(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, smile\n"})
    (root / ".lorabake").mkdir()
    (root / ".lorabake" / "project.toml").write_text('write_style = "underscores"\n')
    ok(capsys, root, "add", "blue eyes", "--position", "last")
    assert cap(root, "1_a/1.png") == b"mira, smile, blue_eyes\n"
    ok(capsys, root, "add", "red bow", "--position", "last", "--write-style", "keep")
    assert cap(root, "1_a/1.png") == b"mira, smile, blue_eyes, red bow\n"


# ---- dry run and JSON ---------------------------------------------------------------------

def test_dry_run_writes_nothing_but_previews(ds, capsys):
    before = snapshot(ds)
    out = ok(capsys, ds, "replace", "blue eyes", "green eyes", "--dry-run")
    assert "replace 'blue eyes' with 'green eyes': 2 of 4 caption(s) change" in out
    assert "10_mira/b.txt" in out and "10_mira/c.txt" in out
    assert "- mira, short hair, blue eyes" in out
    assert "+ mira, short hair, green eyes" in out
    assert "dry run: nothing written" in out
    assert snapshot(ds) == before
    assert not (ds / ".lorabake").exists()


@pytest.mark.parametrize("args", [
    ["remove", "*_background"],
    ["add", "x", "--create-missing"],
    ["prune", "--preset", "hair-colour"],
    ["consolidate", "--into", "bow", "red bow"],
    ["implications"],
    ["dedupe"],
    ["sort", "--by", "count"],
    ["normalize", "--underscores"],
])
def test_dry_run_of_every_action_writes_nothing(tmp_path, capsys, args):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira, red_bow, white background, long hair, very long hair, mira\n",
        "1_a/2.png": b"blonde hair, smile\n",
        "1_a/3.png": None,
    })
    before = snapshot(root)
    out = ok(capsys, root, *args, "--dry-run")
    assert "caption(s) change" in out
    assert "dry run: nothing written" in out
    assert snapshot(root) == before
    assert not txt(root, "1_a/3.png").exists()
    assert not (root / ".lorabake").exists()


def test_dry_run_json(ds, capsys):
    before = snapshot(ds)
    data = as_json(capsys, ds, "replace", "blue eyes", "green eyes", "--dry-run")
    assert set(data) == {"operation", "scope", "files", "changes", "not_editable", "applied",
                         "skipped"}
    assert data["operation"] == "replace 'blue eyes' with 'green eyes'"
    assert data["scope"] == 4
    assert data["files"] == 2
    assert data["applied"] is False
    assert data["not_editable"] == [] and data["skipped"] == []
    assert data["changes"] == [
        {"path": "10_mira/b.txt", "before": ["mira", "long hair", "blue eyes",
                                             "simple_background"],
         "after": ["mira", "long hair", "green eyes", "simple_background"]},
        {"path": "10_mira/c.txt", "before": ["mira", "short hair", "blue eyes"],
         "after": ["mira", "short hair", "green eyes"]},
    ]
    assert snapshot(ds) == before


def test_applied_json_reports_before_and_after(ds, capsys):
    data = as_json(capsys, ds, "replace", "blue eyes", "green eyes")
    assert data["applied"] is True
    assert data["files"] == 2 and data["scope"] == 4
    assert data["skipped"] == [] and data["not_editable"] == []
    assert cap(ds, "10_mira/c.png") == b"mira, short hair, green eyes\n"
    by_path = {c["path"]: c for c in data["changes"]}
    assert set(by_path) == {"10_mira/b.txt", "10_mira/c.txt"}
    assert by_path["10_mira/c.txt"]["after"] == ["mira", "short hair", "green eyes"]
    # "before" must be the tags as they were, not as they are now
    assert by_path["10_mira/c.txt"]["before"] == ["mira", "short hair", "blue eyes"]


def test_applied_text_preview_shows_the_old_tags(ds, capsys):
    out = ok(capsys, ds, "replace", "blue eyes", "green eyes")
    assert "changed 2 file(s); undo with `lorabake undo" in out
    assert "+ mira, short hair, green eyes" in out
    assert "- mira, short hair, blue eyes" in out
    assert "(removed blue eyes; added green eyes)" in out


def test_created_caption_json_before_is_empty(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": None})
    data = as_json(capsys, root, "add", "mira", "--create-missing")
    assert data["applied"] is True
    assert data["changes"] == [{"path": "1_a/1.txt", "before": [], "after": ["mira"]}]


@pytest.mark.parametrize("mode,old,new", [
    ("--substring", "smile", "grin, happy"),
    ("--regex", "^smile$", "grin, happy"),
    ("--regex", "^smile$", ","),
])
def test_replacement_with_a_comma_never_reports_tags_the_file_does_not_hold(
        tmp_path, capsys, mode, old, new):
    # exact mode refuses a comma in the new tag; substring/regex must either refuse too or
    # report (and journal) exactly the tags that end up in the file
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira, smile\n"})
    before = snapshot(root)
    code, out, err = tags(capsys, root, "replace", mode, old, new, "--json")
    if code == 1:
        assert_one_line_error(code, err)
        assert_untouched(root, before)
        return
    assert code == 0, err
    data = json.loads(out)
    written = [t.strip() for t in cap(root, "1_a/1.png").decode().strip().split(",")
               if t.strip()]
    assert data["changes"][0]["after"] == written


def test_nothing_to_change_exits_zero_and_records_nothing(ds, capsys):
    before = snapshot(ds)
    out = ok(capsys, ds, "replace", "no such tag", "other")
    assert "0 of 4 caption(s) change" in out
    assert snapshot(ds) == before
    code, out, _ = run(capsys, "undo", ds)
    assert code == 0 and "nothing to undo" in out


# ---- safety -------------------------------------------------------------------------------

def test_non_utf8_caption_is_left_alone(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"caf\xe9, tiara\n",
        "1_a/2.png": b"mira, tiara\n",
    })
    code, out, err = tags(capsys, root, "replace", "tiara", "circlet")
    assert code == 0
    assert "left alone: 1_a/1.txt" in err
    assert "UTF-8" in err
    assert "1 of 2 caption(s) change" in out
    assert cap(root, "1_a/1.png") == b"caf\xe9, tiara\n"
    assert mtime(root, "1_a/1.png") == OLD_NS
    assert cap(root, "1_a/2.png") == b"mira, circlet\n"
    # JSON says the same; every changing action leaves it alone
    data = as_json(capsys, root, "add", "x", "--dry-run")
    assert len(data["not_editable"]) == 1 and data["not_editable"][0].startswith("1_a/1.txt")
    for args in (["add", "x"], ["normalize", "--underscores"], ["dedupe"], ["remove", "*"]):
        tags(capsys, root, *args)
        assert cap(root, "1_a/1.png") == b"caf\xe9, tiara\n"
        assert mtime(root, "1_a/1.png") == OLD_NS


def test_non_utf8_caption_not_rewritten_by_create_missing(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"\xff\xfe", "1_a/2.png": None})
    ok(capsys, root, "add", "mira", "--create-missing")
    assert cap(root, "1_a/1.png") == b"\xff\xfe"
    assert cap(root, "1_a/2.png") == b"mira\n"


def test_files_left_alone_while_applying_exit_3_and_are_listed(tmp_path, capsys):
    """Exit 3 (partly applied) whenever the journal leaves a file out: read-only, a link out
    of the dataset; text and JSON alike."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"mira\n")
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira\n", "1_a/2.png": b"mira\n",
                                   "1_a/3.png": None})
    os.chmod(txt(root, "1_a/1.png"), 0o444)
    os.symlink(outside, txt(root, "1_a/3.png"))
    code, out, err = tags(capsys, root, "add", "solo", "--position", "last")
    assert code == 3
    assert "skipped: 1_a/1.txt: read-only: left alone (chmod u+w to let lorabake edit it)" \
        in err
    assert "skipped: 1_a/3.txt: is a link to a file outside the dataset: left alone" in err
    assert "changed 1 file(s)" in out
    assert cap(root, "1_a/1.png") == b"mira\n" and outside.read_bytes() == b"mira\n"
    assert cap(root, "1_a/2.png") == b"mira, solo\n"
    code, out, err = tags(capsys, root, "add", "hat", "--position", "last", "--json")
    assert code == 3
    assert json.loads(out)["skipped"] == [
        "1_a/1.txt: read-only: left alone (chmod u+w to let lorabake edit it)",
        "1_a/3.txt: is a link to a file outside the dataset: left alone"]


def test_an_edit_while_lorabake_writes_exits_3_and_survives_undo(tmp_path, capsys,
                                                                  monkeypatch):
    from lorabake_tui.core.base import atomic

    root = build(tmp_path / "ds", {"1_a/1.png": b"mira\n", "1_a/2.png": b"mira\n"})
    mine = txt(root, "1_a/2.png")

    def someone_saves(path):  # between lorabake's last check of the file and its rename
        if path == mine:
            mine.write_bytes(b"mira, my edit\n")

    monkeypatch.setattr(atomic, "after_final_check", someone_saves)
    code, _, err = tags(capsys, root, "add", "solo", "--position", "last")
    assert code == 3
    assert "skipped: 1_a/2.txt changed on disk since it was read" in err
    assert mine.read_bytes() == b"mira, my edit\n"
    assert cap(root, "1_a/1.png") == b"mira, solo\n"
    # and an edit during the undo itself: left alone, exit 3
    monkeypatch.setattr(atomic, "after_final_check",
                        lambda p: p.write_bytes(b"edited during undo\n"))
    code, _, err = run(capsys, "undo", root)
    assert code == 3 and "left alone: 1_a/1.txt was edited after this operation" in err
    assert cap(root, "1_a/1.png") == b"edited during undo\n"
    assert mine.read_bytes() == b"mira, my edit\n"


def test_a_redo_that_leaves_a_file_alone_exits_3(tmp_path, capsys, monkeypatch):
    from lorabake_tui.core.base import atomic

    root = build(tmp_path / "ds", {"1_a/1.png": b"mira\n", "1_a/2.png": b"mira\n"})
    ok(capsys, root, "add", "solo", "--position", "last")
    assert run(capsys, "undo", root)[0] == 0
    mine = txt(root, "1_a/1.png")
    monkeypatch.setattr(atomic, "after_final_check",
                        lambda p: p == mine and mine.write_bytes(b"mine, longer\n"))
    code, _, err = run(capsys, "redo", root)
    assert code == 3 and "left alone: 1_a/1.txt changed on disk since it was read" in err
    assert mine.read_bytes() == b"mine, longer\n"
    assert cap(root, "1_a/2.png") == b"mira, solo\n"


def test_undo_of_a_read_only_file_exits_3(tmp_path, capsys):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira\n", "1_a/2.png": b"mira\n"})
    ok(capsys, root, "add", "solo", "--position", "last")
    os.chmod(txt(root, "1_a/1.png"), 0o444)
    code, _, err = run(capsys, "undo", root)
    assert code == 3 and "left alone: 1_a/1.txt: read-only" in err
    assert cap(root, "1_a/1.png") == b"mira, solo\n"
    assert cap(root, "1_a/2.png") == b"mira\n"


def test_bom_and_crlf_are_kept(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": BOM + b"mira, tiara, smile\r\nhand-written note\r\n",
        "1_a/2.png": b"mira, tiara\r\n",
    })
    ok(capsys, root, "replace", "tiara", "circlet")
    assert cap(root, "1_a/1.png") == BOM + b"mira, circlet, smile\r\nhand-written note\r\n"
    assert cap(root, "1_a/2.png") == b"mira, circlet\r\n"
    ok(capsys, root, "add", "solo", "--position", "last")
    assert cap(root, "1_a/1.png") == BOM + b"mira, circlet, smile, solo\r\nhand-written note\r\n"


def test_escaped_tag_survives_unrelated_edits(tmp_path, capsys):
    escaped = b"mira, photo \\(medium\\), smile, 1girl\n"
    root = build(tmp_path / "ds", {"1_a/1.png": escaped, "1_a/2.png": b"smile\n"})
    ok(capsys, root, "remove", "smile")
    assert cap(root, "1_a/1.png") == b"mira, photo \\(medium\\), 1girl\n"
    ok(capsys, root, "add", "solo", "--position", "last")
    assert cap(root, "1_a/1.png") == b"mira, photo \\(medium\\), 1girl, solo\n"
    ok(capsys, root, "sort", "--by", "name")
    assert cap(root, "1_a/1.png") == b"mira, 1girl, photo \\(medium\\), solo\n"
    # matched by its key, either spelling
    assert as_json(capsys, root, "list", "--filter", "photo \\(medium\\)")["images"] == 1
    ok(capsys, root, "remove", "photo (medium)")
    assert cap(root, "1_a/1.png") == b"mira, 1girl, solo\n"


def test_only_changed_files_get_a_new_mtime(ds, capsys):
    before = snapshot(ds)
    ok(capsys, ds, "remove", "tree")
    after = snapshot(ds)
    changed = {rel for rel in before if before[rel] != after[rel]}
    assert changed == {"misc/d.txt"}
    assert after["misc/d.txt"][1] != OLD_NS


def test_undo_and_redo_are_byte_identical(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": BOM + b"mira, tiara\r\nnote\r\n",
        "1_a/2.png": b"caf\xe9, tiara\n",
        "1_a/3.png": b"photo \\(medium\\), tiara, tiara\n",
        "1_a/4.png": None,
        "misc/5.png": b"",
    })
    original = contents(root)
    ok(capsys, root, "add", "trigger", "--create-missing")
    applied = contents(root)
    assert applied["1_a/4.txt"] == b"trigger\n"
    assert applied["1_a/1.txt"] == BOM + b"trigger, mira, tiara\r\nnote\r\n"
    assert applied["1_a/2.txt"] == original["1_a/2.txt"]

    code, out, _ = run(capsys, "undo", root)
    assert code == 0 and out.startswith("undid: ")
    assert contents(root) == original
    assert not txt(root, "1_a/4.png").exists()

    code, out, _ = run(capsys, "redo", root)
    assert code == 0 and out.startswith("redid: ")
    assert contents(root) == applied

    code, _, _ = run(capsys, "undo", root)
    assert code == 0
    assert contents(root) == original


def test_second_operation_after_undo_drops_the_redo(ds, capsys):
    original = contents(ds)
    ok(capsys, ds, "remove", "smile")
    run(capsys, "undo", ds)
    assert contents(ds) == original
    ok(capsys, ds, "remove", "tree")
    after_second = contents(ds)
    assert after_second["misc/d.txt"] == b"scenery\n"
    assert after_second["10_mira/a.txt"] == original["10_mira/a.txt"]  # smile still there
    code, out, _ = run(capsys, "redo", ds)
    assert code == 0 and "nothing to redo" in out
    assert contents(ds) == after_second
    run(capsys, "undo", ds)
    assert contents(ds) == original


def test_each_operation_is_one_undo_step(ds, capsys):
    original = contents(ds)
    ok(capsys, ds, "remove", "*_background")
    step1 = contents(ds)
    ok(capsys, ds, "add", "solo", "--position", "last")
    assert contents(ds) != step1
    run(capsys, "undo", ds)
    assert contents(ds) == step1
    run(capsys, "undo", ds)
    assert contents(ds) == original


# ---- filters and scope --------------------------------------------------------------------

def test_filter_scopes_a_change(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "10_mira/1.png": b"mira, long hair\n",
        "10_mira/2.png": b"mira, short hair\n",
        "misc/3.png": b"long_hair, tree\n",
    })
    out = ok(capsys, root, "add", "solo", "--position", "last",
             "--filter", "long hair AND NOT folder:misc")
    assert "1 of 1 caption(s) change" in out
    assert cap(root, "10_mira/1.png") == b"mira, long hair, solo\n"
    assert mtime(root, "10_mira/2.png") == OLD_NS
    assert mtime(root, "misc/3.png") == OLD_NS


def test_filter_tag_count_scopes_a_change(tmp_path, capsys):
    many = ", ".join(f"tag{i:02d}" for i in range(21)).encode() + b"\n"
    root = build(tmp_path / "ds", {"1_a/1.png": many, "1_a/2.png": b"tag00, tag01\n"})
    ok(capsys, root, "remove", "tag00", "--filter", "tags>20")
    assert cap(root, "1_a/1.png") == many.replace(b"tag00, ", b"")
    assert cap(root, "1_a/2.png") == b"tag00, tag01\n"


def test_filter_empty_with_and_without_create_missing(tmp_path, capsys):
    root = build(tmp_path / "ds", {
        "1_a/1.png": b"mira\n",
        "1_a/2.png": b"",
        "1_a/3.png": b" , \n",
        "1_a/4.png": None,
    })
    out = ok(capsys, root, "add", "mira", "--filter", "empty")
    assert "2 of 3 caption(s) change" in out
    assert cap(root, "1_a/2.png") == b"mira"  # no line ending was there: none is added
    assert cap(root, "1_a/3.png") == b"mira\n"
    assert not txt(root, "1_a/4.png").exists()
    assert mtime(root, "1_a/1.png") == OLD_NS
    ok(capsys, root, "add", "mira", "--filter", "empty", "--create-missing")
    assert cap(root, "1_a/4.png") == b"mira\n"


def test_concept_scopes_a_change(ds, capsys):
    ok(capsys, ds, "add", "scenery", "--concept", "10_mira")
    assert cap(ds, "10_mira/c.png") == b"scenery, mira, short hair, blue eyes\n"
    assert cap(ds, "misc/d.png") == b"scenery, tree\n"
    assert mtime(ds, "misc/d.png") == OLD_NS


def test_malformed_filter_names_the_column_and_writes_nothing(ds, capsys):
    before = snapshot(ds)
    code, out, err = tags(capsys, ds, "remove", "smile", "--filter", "a AND (")
    line = assert_one_line_error(code, err)
    assert "column 8" in line
    assert "a AND (" in line
    assert out == ""
    code, _, err = tags(capsys, ds, "list", "--filter", "a AND (")
    assert "column 8" in assert_one_line_error(code, err)
    code, _, err = tags(capsys, ds, "list", "--filter", "(long hair")
    assert "column" in assert_one_line_error(code, err)
    assert_untouched(ds, before)


def test_unknown_concept_is_an_error(ds, capsys):
    before = snapshot(ds)
    code, out, err = tags(capsys, ds, "list", "--concept", "nope")
    assert "nope" in assert_one_line_error(code, err)
    assert out == ""
    code, _, err = tags(capsys, ds, "remove", "smile", "--concept", "nope")
    assert "nope" in assert_one_line_error(code, err)
    assert_untouched(ds, before)


@pytest.mark.parametrize("args", [
    ["replace", "--regex", "(", "x"],
    ["replace", "--regex", "a", r"\9"],
    ["replace", "", "x"],
    ["replace", "a,b", "x"],
    ["remove", "smile", "--filter", "a AND ("],
    ["list", "--filter", '"unterminated'],
    ["stats", "--concept", "nope"],
    ["prune"],
    ["prune", "--preset", "nope"],
    ["add", "x", "--position", "middle"],
    ["consolidate", "--into", "", "bow"],
    ["sort", "--keep", "-1"],
    ["list", "--caption-ext", " "],
])
def test_errors_are_one_line_and_write_nothing(ds, capsys, args):
    before = snapshot(ds)
    code, _, err = tags(capsys, ds, *args)
    assert_one_line_error(code, err)
    assert_untouched(ds, before)


def test_missing_dataset_dir_is_an_error(tmp_path, capsys):
    code, _, err = tags(capsys, tmp_path / "nowhere", "list")
    assert_one_line_error(code, err)


def test_other_caption_extension(tmp_path, capsys):
    root = tmp_path / "ds"
    make_image(root / "1_a" / "1.png", size=(8, 8))
    (root / "1_a" / "1.caption").write_bytes(b"mira, smile\n")
    (root / "1_a" / "1.txt").write_bytes(b"other, file\n")
    ok(capsys, root, "remove", "smile", "--caption-ext", "caption")
    assert (root / "1_a" / "1.caption").read_bytes() == b"mira\n"
    assert (root / "1_a" / "1.txt").read_bytes() == b"other, file\n"


def test_stats_json_smoke(freq_ds, capsys):
    data = as_json(capsys, freq_ds, "stats")
    assert isinstance(data, dict)


# ---- the real executable ------------------------------------------------------------------

def exe(*args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LORABAKE), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=os.environ.copy())


@pytest.mark.skipif(not LORABAKE.exists(), reason="lorabake is not installed in .venv")
def test_executable_list_change_undo_and_errors(tmp_path):
    root = build(tmp_path / "ds", {
        "10_mira/1.png": BOM + b"mira, long_hair, smile\r\n",
        "10_mira/2.png": b"mira, long_hair\n",
        "misc/3.png": b"caf\xe9, tiara\n",
    })
    original = contents(root)

    p = exe("tags", root, "list", "--json")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert json.loads(p.stdout) == {"images": 3, "tags": [{"tag": "long_hair", "count": 2},
                                                          {"tag": "mira", "count": 2},
                                                          {"tag": "smile", "count": 1}]}

    p = exe("tags", root, "replace", "long hair", "short_hair")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "2 of 3 caption(s) change" in p.stdout
    assert "left alone: misc/3.txt" in p.stderr
    assert cap(root, "10_mira/1.png") == BOM + b"mira, short_hair, smile\r\n"
    assert cap(root, "10_mira/2.png") == b"mira, short_hair\n"

    p = exe("undo", root)
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert contents(root) == original

    for args in (["tags", root, "list", "--filter", "a AND ("],
                 ["tags", root, "replace", "--regex", "(", "x"],
                 ["tags", root, "list", "--concept", "nope"],
                 ["tags", root, "prune"]):
        p = exe(*args)
        assert p.returncode == 1, (args, p.stderr)
        assert "Traceback" not in p.stderr
        assert p.stderr.strip().startswith("lorabake: error: ")
        assert len(p.stderr.strip().splitlines()) == 1
    assert contents(root) == original


@pytest.mark.skipif(not LORABAKE.exists(), reason="lorabake is not installed in .venv")
def test_module_entry_point_runs_tags(tmp_path):
    root = build(tmp_path / "ds", {"1_a/1.png": b"mira\n"})
    p = subprocess.run([sys.executable, "-m", "lorabake_tui", "tags", str(root), "list",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"images": 1, "tags": [{"tag": "mira", "count": 1}]}
