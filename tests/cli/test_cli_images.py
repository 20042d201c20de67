"""`lorabake images DIR ACTION ...` end to end through `lorabake_tui.cli.main(argv)`: the
plan, --dry-run, --json contracts, one-line errors, undo via `lorabake undo DIR`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lorabake_tui.cli import main

from ..core.dataset.test_imagetools import _truncated_png, originals, picture, save, snapshot


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def images(capsys, root: Path, *args) -> tuple[int, str, str]:
    return run(capsys, "images", root, *args)


def as_json(capsys, root: Path, *args) -> dict:
    code, out, err = images(capsys, root, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def one_line_error(code: int, err: str) -> str:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lorabake: error: ")
    return lines[0]


@pytest.fixture
def ds(tmp_path) -> Path:
    root = tmp_path / "ds"
    save(root / "10_mira" / "a.webp", picture((40, 30), 1), "WEBP")
    (root / "10_mira" / "a.txt").write_text("mira, smile\n")
    save(root / "10_mira" / "b.png", picture((30, 30), 2))
    save(root / "10_mira" / "c.jpg", picture((20, 50), 3), "JPEG")
    save(root / "5_other" / "d.bmp", picture((64, 16), 4), "BMP")
    return root


def test_convert_dry_run_json_contract_and_nothing_written(ds, capsys):
    before = snapshot(ds)
    data = as_json(capsys, ds, "convert", "--dry-run")
    assert data["operation"] == "convert" and data["applied"] is False
    rows = {f["path"]: f for f in data["files"]}
    assert set(rows) == {"10_mira/a.webp", "10_mira/b.png", "10_mira/c.jpg", "5_other/d.bmp"}
    for row in data["files"]:
        assert {"path", "action", "new_path", "error"} <= set(row)
        assert isinstance(row["action"], str)
        assert row["new_path"] is None or isinstance(row["new_path"], str)
        assert row["error"] is None or isinstance(row["error"], str)
    assert rows["10_mira/a.webp"]["action"] == "convert"
    assert rows["10_mira/a.webp"]["new_path"] == "10_mira/a.png"
    assert rows["10_mira/b.png"] == {**rows["10_mira/b.png"], "action": "skip",
                                     "new_path": None, "error": None}
    assert snapshot(ds) == before
    assert not (ds / ".lorabake").exists()


def test_convert_prints_plan_applies_and_undo_restores(ds, capsys):
    before = snapshot(ds)
    code, out, err = images(capsys, ds, "convert", "--workers", "1")
    assert code == 0, err
    assert out.splitlines()[0] == "convert 4 image(s): 3 image(s) changed, 1 skipped"
    assert "  10_mira/a.webp -> 10_mira/a.png  (webp -> png)" in out
    assert "  skipped: 1 already png" in out
    assert out.rstrip().endswith(
        f"changed 3 file(s); originals in .lorabake/originals; undo with `lorabake undo {ds}`")
    assert (ds / "10_mira" / "a.png").exists() and not (ds / "10_mira" / "a.webp").exists()
    assert set(originals(ds)) == {"10_mira/a.webp", "10_mira/c.jpg", "5_other/d.bmp"}
    code, out, _ = run(capsys, "undo", ds)
    assert code == 0 and out.startswith("undid: convert 3 image(s) to png")
    assert snapshot(ds) == before
    code, out, _ = run(capsys, "redo", ds)
    assert code == 0 and (ds / "10_mira" / "a.png").exists()


def test_dry_run_human_lists_every_change(ds, capsys):
    code, out, _ = images(capsys, ds, "pad", "--dry-run", "--background", "#000000")
    assert code == 0
    assert "  10_mira/a.webp -> 10_mira/a.png  (40x30 -> 40x40)" in out
    assert "  10_mira/c.jpg -> 10_mira/c.png  (20x50 -> 50x50)" in out
    assert "  5_other/d.bmp -> 5_other/d.png  (64x16 -> 64x64)" in out
    assert "skipped: 1 already square" in out
    assert out.rstrip().endswith("dry run: nothing written")


def test_concept_option_limits_the_scope(ds, capsys):
    data = as_json(capsys, ds, "pad", "--concept", "5_other", "--workers", "2")
    assert [f["path"] for f in data["files"]] == ["5_other/d.bmp"]
    assert data["applied"] is True
    im = Image.open(ds / "5_other" / "d.png")
    assert im.size == (64, 64)


def test_resize_json_and_geometry(ds, capsys):
    data = as_json(capsys, ds, "resize", "--size", "32x48", "--mode", "fit")
    assert data["applied"] is True
    for f in data["files"]:
        assert f["action"] == "resize"
        assert Image.open(ds / f["new_path"]).size == (32, 48)


def test_upscale_without_a_model_says_so(ds, capsys):
    code, out, _ = images(capsys, ds, "upscale", "--min-side", "40", "--dry-run")
    assert code == 0
    assert "note: no --model given: plain Lanczos upscaling" in out
    assert "  10_mira/c.jpg -> 10_mira/c.png  (20x50 -> 40x100 (lanczos))" in out


def test_a_failing_file_is_listed_on_stderr_and_the_rest_applies(ds, capsys):
    (ds / "10_mira" / "z.png").write_bytes(_truncated_png())
    save(ds / "10_mira" / "a.png", picture((8, 8)))  # a.webp's output name is taken
    code, out, err = images(capsys, ds, "convert")
    assert code == 3  # partly applied
    assert "conflict: 10_mira/a.webp: 10_mira/a.png already exists; not overwritten" in err
    assert "changed 2 file(s)" in out
    code, out, err = images(capsys, ds, "pad", "--json")
    data = json.loads(out)
    bad = {f["path"]: f for f in data["files"]}["10_mira/z.png"]
    assert bad["action"] == "error" and "truncated" in bad["error"]
    assert code == 3 and data["applied"] is True


def test_nothing_to_change(ds, capsys):
    code, out, _ = images(capsys, ds, "resize", "--max-side", "1000")
    assert code == 0
    assert out.rstrip().endswith("nothing to change")


def test_dupes_json_contract(tmp_path, capsys):
    root = tmp_path / "ds"
    base = picture((200, 150), 21)
    save(root / "1_a" / "x.png", base)
    save(root / "1_a" / "y.jpg", base.resize((100, 75)), "JPEG", quality=80)
    save(root / "1_a" / "z.png", picture((200, 150), 22))
    data = as_json(capsys, root, "dupes", "--workers", "1")
    assert data["operation"] == "dupes"
    assert len(data["groups"]) == 1
    assert [m["path"] for m in data["groups"][0]] == ["1_a/x.png", "1_a/y.jpg"]
    assert all(isinstance(m["distance"], int) for m in data["groups"][0])
    code, out, _ = images(capsys, root, "dupes", "--threshold", "6")
    assert code == 0
    assert out.splitlines()[0] == "1 group(s) of near-duplicates among 3 image(s) " \
                                  "(threshold 6 bits)"
    assert "    1_a/y.jpg  (distance " in out
    assert not (root / ".lorabake").exists()


def test_lowres_json_contract(ds, capsys):
    data = as_json(capsys, ds, "lowres", "--min-side", "30")
    assert data["operation"] == "lowres"
    assert data["images"] == [{"path": "10_mira/c.jpg", "size": [20, 50]},
                              {"path": "5_other/d.bmp", "size": [64, 16]}]
    code, out, _ = images(capsys, ds, "lowres", "--min-side", "30")
    assert out.splitlines()[0] == "2 image(s) with a short side below 30 px"
    assert "  10_mira/c.jpg  20x50" in out


@pytest.mark.parametrize("args", [
    ("resize", "--size", "12xfoo"),
    ("pad", "--background", "notacolour"),
    ("pad", "--concept", "9_nope"),
    ("convert", "--workers", "0"),
    ("lowres", "--min-side", "0"),
    ("dupes", "--threshold", "99"),
    ("convert", "--caption-ext", " "),
])
def test_bad_options_are_one_line_errors(ds, capsys, args):
    before = snapshot(ds)
    one_line_error(*images(capsys, ds, *args)[::2])
    assert snapshot(ds) == before


def test_missing_dir_and_bad_model_are_one_line_errors(ds, tmp_path, capsys):
    line = one_line_error(*run(capsys, "images", tmp_path / "nope", "lowres")[::2])
    assert "does not exist" in line
    model = tmp_path / "m.onnx"
    model.write_bytes(b"garbage")
    before = snapshot(ds)
    line = one_line_error(*images(capsys, ds, "upscale", "--model", model)[::2])
    assert "cannot load upscaler model" in line
    assert snapshot(ds) == before


def test_help_lists_the_actions(capsys):
    with pytest.raises(SystemExit):
        main(["images", "--help"])
    out = capsys.readouterr().out
    for action in ("convert", "pad", "resize", "upscale", "dupes", "lowres"):
        assert action in out
