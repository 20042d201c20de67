"""The `lorabake` command, driven in-process through main(argv) and as a real executable."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from lorabake_tui import __version__
from lorabake_tui.cli import main

from ..support.paths import VENV_LORABAKE

LORABAKE = VENV_LORABAKE
DEMO_FOLDERS = {"10_mira_uniform", "10_mira_casual", "10_mira_swimsuit", "misc"}


def make_image(path: Path, size=(24, 16), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 160, 220)).save(path, format=fmt)
    return path


def make_folder(root: Path, folder: str, images: int, *, captions: bool = True) -> Path:
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        make_image(d / f"img{i}.png")
        if captions:
            (d / f"img{i}.txt").write_bytes(b"mira, 1girl\n")
    return d


@pytest.fixture
def ds(tmp_path) -> Path:
    """Three folders with 4, 2 and 1 images; `misc` has no repeat prefix, beta one caption gap."""
    root = tmp_path / "ds"
    make_folder(root, "5_alpha", 4)
    make_folder(root, "3_beta", 2)
    (root / "3_beta" / "img1.txt").unlink()
    make_folder(root, "misc", 1)
    return root


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in root.rglob("*")}


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lorabake: error:")
    assert "Traceback" not in err


# ---- scan ---------------------------------------------------------------------------------

def test_scan_json_contract(ds, capsys):
    code, out, _ = run(["scan", ds, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    concepts = {c["folder"]: c for c in data["concepts"]}
    assert set(concepts) == {"5_alpha", "3_beta", "misc"}
    for c in data["concepts"]:
        assert {"folder", "name", "repeats", "images", "captions_missing", "is_reg"} <= set(c)
        assert c["is_reg"] is False
    assert [(concepts[f]["name"], concepts[f]["repeats"], concepts[f]["images"],
             concepts[f]["captions_missing"]) for f in ("5_alpha", "3_beta", "misc")] == [
        ("alpha", 5, 4, 0), ("beta", 3, 2, 1), ("misc", None, 1, 0)]
    assert data["problems"], "misc has no prefix and beta lacks a caption"
    for p in data["problems"]:
        assert {"severity", "path", "message"} <= set(p)
        assert p["severity"] in ("error", "warning") and p["message"]
    by_path = {p["path"]: p["severity"] for p in data["problems"]}
    assert by_path == {"misc": "error", "3_beta": "warning"}


def test_scan_json_reg_root(ds, tmp_path, capsys):
    make_folder(tmp_path / "reg", "1_woman", 3)
    code, out, _ = run(["scan", ds, "--reg", tmp_path / "reg", "--json"], capsys)
    assert code == 0
    reg = [c for c in json.loads(out)["concepts"] if c["is_reg"]]
    assert [(c["folder"], c["images"]) for c in reg] == [("1_woman", 3)]


def test_scan_human_output_mentions_every_folder(ds, capsys):
    code, out, _ = run(["scan", ds], capsys)
    assert code == 0
    for folder in ("5_alpha", "3_beta", "misc"):
        assert folder in out
    assert "26 training samples per epoch" in out  # 4*5 + 2*3, misc is skipped
    assert "1 error(s), 1 warning(s)" in out


def test_scan_clean_dataset_says_no_problems(tmp_path, capsys):
    make_folder(tmp_path, "2_x", 2)
    code, out, _ = run(["scan", tmp_path], capsys)
    assert code == 0 and "no problems found" in out


def test_scan_caption_ext_option(tmp_path, capsys):
    d = make_folder(tmp_path, "2_x", 2, captions=False)
    for i in range(2):
        (d / f"img{i}.caption").write_bytes(b"mira\n")
    code, out, _ = run(["scan", tmp_path, "--json", "--caption-ext", "caption"], capsys)
    assert code == 0 and json.loads(out)["concepts"][0]["captions_missing"] == 0
    code, out, _ = run(["scan", tmp_path, "--json"], capsys)
    assert code == 0 and json.loads(out)["concepts"][0]["captions_missing"] == 2


# ---- balance ------------------------------------------------------------------------------

def balance_json(root: Path, capsys, *opts) -> dict:
    code, out, _ = run(["balance", root, *opts, "--json"], capsys)
    assert code == 0
    return json.loads(out)


def check_plan(data: dict, target: int) -> None:
    assert data["target"] == target
    assert isinstance(data["samples_per_epoch"], int)
    rows = {r["folder"]: r for r in data["plan"]}
    assert set(rows) == {"5_alpha", "3_beta", "misc"}
    expected = {"5_alpha": ("alpha", 4, 5), "3_beta": ("beta", 2, 3), "misc": ("misc", 1, None)}
    for folder, (name, images, before) in expected.items():
        r = rows[folder]
        assert {"folder", "images", "repeats_before", "repeats_after", "new_folder"} <= set(r)
        assert (r["images"], r["repeats_before"]) == (images, before)
        assert r["repeats_after"] == math.ceil(target / images)
        assert r["new_folder"] == f"{r['repeats_after']}_{name}"
    assert data["samples_per_epoch"] == sum(r["images"] * r["repeats_after"]
                                            for r in data["plan"])


@pytest.mark.parametrize(("opts", "target"), [
    (["--optimizer", "prodigy"], 500),
    (["--optimizer", "ia3"], 500),
    (["--optimizer", "adamw"], 1000),
    ([], 1000),  # adamw is the default
    (["--target", "1000"], 1000),
    (["--target", "7"], 7),
])
def test_balance_json_contract(ds, capsys, opts, target):
    before = snapshot(ds)
    data = balance_json(ds, capsys, *opts)
    check_plan(data, target)
    assert snapshot(ds) == before  # a dry run renames nothing


def test_balance_prodigy_values(ds, capsys):
    data = balance_json(ds, capsys, "--optimizer", "prodigy")
    assert {r["folder"]: r["new_folder"] for r in data["plan"]} == {
        "5_alpha": "125_alpha", "3_beta": "250_beta", "misc": "500_misc"}
    assert data["samples_per_epoch"] == 1500


def test_balance_dry_run_renames_nothing(ds, capsys):
    before = snapshot(ds)
    code, out, _ = run(["balance", ds, "--optimizer", "prodigy"], capsys)
    assert code == 0
    assert "dry run" in out and "--apply" in out
    assert "125_alpha" in out
    assert snapshot(ds) == before
    assert not (ds / ".lorabake").exists()


def test_balance_apply_undo_redo(ds, capsys):
    original = folders(ds)
    alpha_files = sorted(p.name for p in (ds / "5_alpha").iterdir())

    code, out, _ = run(["balance", ds, "--optimizer", "prodigy", "--apply"], capsys)
    assert code == 0
    balanced = {"125_alpha", "250_beta", "500_misc"}
    assert folders(ds) == balanced
    assert sorted(p.name for p in (ds / "125_alpha").iterdir()) == alpha_files
    assert "undo" in out

    code, out, _ = run(["balance", ds, "--optimizer", "prodigy"], capsys)
    assert code == 0 and "already balanced" in out

    code, out, _ = run(["undo", ds], capsys)
    assert code == 0 and "undid" in out
    assert folders(ds) == original
    assert sorted(p.name for p in (ds / "5_alpha").iterdir()) == alpha_files

    code, out, _ = run(["redo", ds], capsys)
    assert code == 0 and "redid" in out
    assert folders(ds) == balanced

    code, out, _ = run(["undo", ds], capsys)
    assert code == 0 and folders(ds) == original
    code, out, _ = run(["undo", ds], capsys)
    assert code == 0 and "nothing to undo" in out
    assert folders(ds) == original


def test_relative_dir_apply_and_undo_json(ds, capsys, monkeypatch):
    monkeypatch.chdir(ds.parent)
    code, _, _ = run(["balance", "ds", "--target", "4", "--apply"], capsys)
    assert code == 0
    assert folders(ds) == {"1_alpha", "2_beta", "4_misc"}
    code, out, _ = run(["undo", "ds", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["action"] == "undo"
    assert data["entry"]["op"] == "balance"
    assert folders(ds) == {"5_alpha", "3_beta", "misc"}


def test_interrupted_operation_is_reported_and_rolled_back(ds, capsys):
    code, _, _ = run(["balance", ds, "--target", "4", "--apply"], capsys)
    assert code == 0
    # simulate a crash after the renames, before the entry was marked done
    [entry_file] = (ds / ".lorabake" / "journal").glob("*.json")
    entry = json.loads(entry_file.read_text("utf-8"))
    entry_file.with_suffix(".state").write_text(json.dumps({"state": "applying"}), "utf-8")

    code, out, _ = run(["scan", ds, "--json"], capsys)
    assert code == 0
    assert json.loads(out)["interrupted_operation"] == entry["label"]
    code, out, _ = run(["scan", ds], capsys)
    assert code == 0 and "interrupted" in out

    code, _, err = run(["balance", ds, "--target", "8", "--apply"], capsys)
    assert_one_line_error(code, err)  # nothing new until the crash is dealt with
    assert folders(ds) == {"1_alpha", "2_beta", "4_misc"}

    code, out, _ = run(["undo", ds], capsys)
    assert code == 0 and "rolled back" in out
    assert folders(ds) == {"5_alpha", "3_beta", "misc"}
    code, out, _ = run(["scan", ds, "--json"], capsys)
    assert json.loads(out)["interrupted_operation"] is None


def test_balance_apply_json(ds, capsys):
    code, out, _ = run(["balance", ds, "--target", "8", "--apply", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["applied"] is True
    assert folders(ds) == {r["new_folder"] for r in data["plan"]} == {
        "2_alpha", "4_beta", "8_misc"}


def test_undo_with_nothing_to_undo(ds, capsys):
    before = folders(ds)
    code, out, err = run(["undo", ds], capsys)
    assert code == 0
    assert "nothing to undo" in out
    assert "Traceback" not in err
    assert folders(ds) == before


def test_redo_with_nothing_to_redo(ds, capsys):
    code, out, _ = run(["redo", ds], capsys)
    assert code == 0 and "nothing to redo" in out


def test_balance_refuses_two_folders_onto_one_name(tmp_path, capsys):
    make_folder(tmp_path, "1_a", 2)
    make_folder(tmp_path, "2_a", 2)
    before = snapshot(tmp_path)
    code, out, err = run(["balance", tmp_path, "--target", "10", "--apply"], capsys)
    assert code == 1
    assert "1_a" in err and "2_a" in err and "5_a" in err
    assert "Traceback" not in err
    assert folders(tmp_path) == {"1_a", "2_a"}
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(".")} == before

    code, out, _ = run(["balance", tmp_path, "--target", "10", "--apply", "--json"], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["applied"] is False and data["conflicts"]
    assert folders(tmp_path) == {"1_a", "2_a"}


def test_balance_refuses_to_rename_onto_existing_folder(tmp_path, capsys):
    make_folder(tmp_path, "1_a", 2)
    (tmp_path / "5_a").mkdir()  # empty, so not in the plan, but in the way
    code, _, err = run(["balance", tmp_path, "--target", "10", "--apply"], capsys)
    assert code == 1 and "5_a" in err
    assert folders(tmp_path) == {"1_a", "5_a"}
    assert not any((tmp_path / "5_a").iterdir())


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["scan", "balance", "undo", "redo"])
def test_missing_dir_is_one_line_error(tmp_path, capsys, cmd):
    code, out, err = run([cmd, tmp_path / "nope"], capsys)
    assert_one_line_error(code, err)
    assert "nope" in err
    assert not (tmp_path / "nope").exists()


def test_open_missing_dir_is_one_line_error(tmp_path, capsys):
    code, _, err = run([tmp_path / "nope"], capsys)
    assert_one_line_error(code, err)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_balance_target_below_one(ds, capsys, value):
    code, _, err = run(["balance", ds, "--target", value], capsys)
    assert_one_line_error(code, err)
    assert "--target" in err


def test_balance_epochs_below_one(ds, capsys):
    code, _, err = run(["balance", ds, "--epochs", "0"], capsys)
    assert_one_line_error(code, err)


@pytest.mark.parametrize("argv", [
    ["balance", "{ds}", "--target", "abc"],
    ["balance", "{ds}", "--optimizer", "sgd"],
    ["balance", "{ds}", "--target", "5", "--optimizer", "adamw"],
    ["scan"],
    ["--bogus"],
    ["buckets", "{ds}", "--resolution", "512x768"],
])
def test_bad_arguments_exit_2_with_two_lines(ds, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([a.format(ds=ds) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "error:" in lines[0] and "--help` lists" in lines[1], err


@pytest.mark.parametrize("cmd", ["scan", "balance"])
@pytest.mark.parametrize("ext", ["", "   "])
def test_empty_caption_ext_is_one_line_error(ds, capsys, cmd, ext):
    before = snapshot(ds)
    code, _, err = run([cmd, ds, "--caption-ext", ext], capsys)
    assert_one_line_error(code, err)
    assert snapshot(ds) == before


# ---- demo ---------------------------------------------------------------------------------

def test_demo_builds_then_reuses(tmp_path, capsys):
    where = tmp_path / "demo"
    code, out, err = run(["demo", "--dir", where, "--no-tui"], capsys)
    assert code == 0
    assert "built" in err
    assert Path(out.strip()) == where.resolve()
    assert folders(where) == DEMO_FOLDERS
    assert len(list((where / "10_mira_uniform").glob("*.png"))) > 0
    before = snapshot(where)

    code, out, err = run(["demo", "--dir", where, "--no-tui"], capsys)
    assert code == 0
    assert "using existing" in err
    assert Path(out.strip()) == where.resolve()
    assert snapshot(where) == before

    code, out, _ = run(["scan", where, "--json"], capsys)
    assert code == 0
    assert {c["folder"] for c in json.loads(out)["concepts"]} == DEMO_FOLDERS


def test_demo_refuses_non_demo_dir(tmp_path, capsys):
    where = tmp_path / "mine"
    make_folder(where, "3_mine", 1)
    (where / "notes.md").write_bytes(b"my own things\n")
    before = snapshot(where)
    code, _, err = run(["demo", "--dir", where, "--no-tui"], capsys)
    assert_one_line_error(code, err)
    assert snapshot(where) == before


# ---- help and version ---------------------------------------------------------------------

def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--reg", "--caption-ext", "--images", "--theme", "--version"):
        assert word in out
    from lorabake_tui.cli.main import COMMANDS

    for command in COMMANDS:  # a command added without a line in the overview fails here
        assert f"\nlorabake {command} " in out, command


def test_balance_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["balance", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--target", "--optimizer", "--epochs", "--apply", "--json", "--reg",
                 "--caption-ext", "prodigy", "adamw", "ia3"):
        assert word in out


def test_both_train_helps_list_every_exit_code_and_the_same_arguments(capsys):
    from lorabake_tui.core.run import exit_codes
    from lorabake_tui.trainer.__main__ import main as trainer_main

    outs = []
    for run in (lambda: main(["train", "--help"]), lambda: trainer_main(["--help"])):
        with pytest.raises(SystemExit) as exc:
            run()
        assert exc.value.code == 0
        outs.append(" ".join(capsys.readouterr().out.split()))  # argparse wraps lines
    for out in outs:
        for code, name in exit_codes.NAMES.items():
            assert f"{code} {name}" in out
        assert "--run-dir RUN_DIR where this run writes" in out
        assert "--resume RUN_DIR continue a stopped or crashed run" in out
    assert "--detach" in outs[0] and "--detach" not in outs[1]  # lorabake train's own


def test_train_without_config_or_resume_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "lorabake train: error: give a CONFIG or --resume RUN_DIR" in err


# ---- the real executable ------------------------------------------------------------------

def lorabake(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LORABAKE), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_executable_version(tmp_path):
    r = lorabake("--version", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.strip() == f"lorabake {__version__}"
    assert "Traceback" not in r.stderr


def test_executable_scan_missing_dir_fails_cleanly(tmp_path):
    r = lorabake("scan", tmp_path / "nope", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("lorabake: error:")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_executable_bad_target_exits_2(tmp_path):
    make_folder(tmp_path, "2_x", 1)
    r = lorabake("balance", tmp_path, "--target", "abc", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_executable_balance_apply_and_undo(ds):
    r = lorabake("balance", ds, "--optimizer", "prodigy", "--apply", cwd=ds.parent)
    assert r.returncode == 0, r.stderr
    assert folders(ds) == {"125_alpha", "250_beta", "500_misc"}
    r = lorabake("undo", ds, cwd=ds.parent)
    assert r.returncode == 0, r.stderr
    assert folders(ds) == {"5_alpha", "3_beta", "misc"}
    assert "Traceback" not in r.stderr


def test_every_json_output_writes_names_as_they_are(tmp_path, capsys):
    """One JSON writer for every command: UTF-8, never \\u-escaped (buckets and jobs escaped
    non-ASCII before)."""
    root = tmp_path / "ds"
    folder = make_folder(root, "3_ミラ", 2)
    (folder / "img0.txt").write_text("ミラ, 1girl\n", encoding="utf-8")
    commands = [["scan", str(root), "--json"], ["buckets", str(root), "--json"],
                ["balance", str(root), "--json"], ["tags", str(root), "list", "--json"]]
    for argv in commands:
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        assert "ミラ" in out and "\\u30df" not in out, argv
        json.loads(out)


def test_an_unknown_command_word_is_not_taken_for_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["frobnicate"]) == 1
    err = capsys.readouterr().err
    assert "frobnicate" in err and err.count("\n") == 1


def test_a_partly_applied_undo_exits_3_and_lists_what_it_left(ds, capsys):
    """0 done, 1 nothing changed, 3 partly applied (the files left alone on stderr)."""
    assert main(["tags", str(ds), "add", "mira_v2"]) == 0
    capsys.readouterr()
    edited = ds / "5_alpha" / "img0.txt"
    edited.write_text("mine now\n")  # someone edits one of the written captions
    assert main(["undo", str(ds)]) == 3
    err = capsys.readouterr().err
    assert "left alone" in err and "img0.txt" in err
    assert edited.read_text() == "mine now\n"
