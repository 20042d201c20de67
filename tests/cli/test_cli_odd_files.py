"""The `lorabake` command as a real process on datasets holding FIFOs, link loops, linked
concept folders and images too large to open: every command finishes (a timeout fails the
test instead of hanging the suite), says what is wrong and leaks no raw Pillow warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..support.crafted import png_claiming
from ..support.helpers import make_concept
from ..support.paths import REPO

TIMEOUT = 20


def lorabake(*args, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m lorabake_tui.cli ARGS` on this checkout; a command still running after
    `timeout` seconds raises subprocess.TimeoutExpired (and is killed)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "lorabake_tui.cli", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def json_of(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def fifos(tmp_path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs POSIX FIFOs")
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 2)
    (d / "img_000.txt").unlink()
    os.mkfifo(d / "img_000.txt")
    os.mkfifo(d / "x.png")
    return root


def not_regular(problems: list[dict]) -> dict[str, str]:
    return {p["path"]: p["message"] for p in problems if p["code"] == "not-regular"}


FIFO_MESSAGE = "not a regular file (a FIFO): skipped. remove or rename it"


def test_scan_reports_fifos_and_finishes(fifos):
    data = json_of(lorabake("scan", fifos, "--json", cwd=fifos.parent))
    assert not_regular(data["problems"]) == {"10_c/img_000.txt": FIFO_MESSAGE,
                                             "10_c/x.png": FIFO_MESSAGE}
    assert data["concepts"][0]["images"] == 2
    human = lorabake("scan", fifos, cwd=fifos.parent)
    assert f"10_c/x.png: {FIFO_MESSAGE}" in human.stdout


def test_buckets_finish_beside_fifos(fifos):
    data = json_of(lorabake("buckets", fifos, "--json", cwd=fifos.parent))
    assert sorted(i["path"] for i in data["images"]) == ["10_c/img_000.png",
                                                         "10_c/img_001.png"]


def test_tags_stats_finish_beside_fifos(fifos):
    r = lorabake("tags", fifos, "stats", "--json", cwd=fifos.parent, timeout=10)
    assert r.returncode == 0, r.stderr


def test_link_loops_and_dangling_links_fail_no_command(tmp_path):
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 2)
    os.symlink("loop", root / "loop")
    os.symlink("loop", d / "loop")
    os.symlink("b.png", d / "a.png")
    os.symlink("a.png", d / "b.png")
    os.symlink("..", d / "up")
    os.symlink("gone.png", d / "gone.png.link.png")
    data = json_of(lorabake("scan", root, "--json", cwd=tmp_path))
    codes = {p["path"]: p["code"] for p in data["problems"]}
    assert codes["loop"] == codes["10_c/loop"] == codes["10_c/a.png"] == "link-loop"
    assert codes["10_c/gone.png.link.png"] == "dangling-link"
    buckets = json_of(lorabake("buckets", root, "--json", cwd=tmp_path))
    assert buckets["summary"]["images"] == 2
    tags = lorabake("tags", root, "stats", "--json", cwd=tmp_path)
    assert tags.returncode == 0, tags.stderr


def test_balance_refuses_a_linked_folder_and_changes_nothing(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_c", 2)
    os.symlink("10_c", root / "20_alias")
    scan = json_of(lorabake("scan", root, "--json", cwd=tmp_path))
    assert {p["path"]: p["code"] for p in scan["problems"]}["20_alias"] == "linked-folder"
    r = lorabake("balance", root, "--target", "100", "--apply", cwd=tmp_path)
    assert r.returncode == 1
    assert "conflict: 20_alias is a link to 10_c: lorabake will not rename it" in r.stderr
    assert "Traceback" not in r.stderr
    assert {p.name for p in root.iterdir()} - {".lorabake"} == {"10_c", "20_alias"}
    assert os.readlink(root / "20_alias") == "10_c"
    journal = root / ".lorabake" / "journal"
    assert not journal.exists() or not any(journal.iterdir())


@pytest.fixture
def bomb(tmp_path) -> Path:
    root = tmp_path / "ds"
    d = make_concept(root, "10_c", 2, size=(512, 512))
    png_claiming(d / "big.png", 40000, 40000)
    return root


BIG = "40000x40000 = 1600 MP, over the 179 MP limit"


def test_scan_and_buckets_report_an_image_over_the_pixel_limit(bomb):
    data = json_of(lorabake("scan", bomb, "--json", cwd=bomb.parent))
    [p] = [p for p in data["problems"] if p["code"] == "too-many-pixels"]
    assert p["path"] == "10_c/big.png" and p["severity"] == "error"
    assert p["message"].startswith(BIG + ". ")
    buckets = json_of(lorabake("buckets", bomb, "--json", cwd=bomb.parent))
    assert "10_c/big.png" not in {i["path"] for i in buckets["images"]}
    assert f"10_c/big.png: {BIG}" in buckets["left_out"]
    assert buckets["summary"]["train_samples"] == 20
    [err] = buckets["errors"]
    assert BIG in err
    human = lorabake("buckets", bomb, cwd=bomb.parent)
    assert f"error: 1 image(s) too large to open, e.g. 10_c/big.png: {BIG}" in human.stdout
    assert "Warning" not in human.stderr


def test_config_check_reports_an_image_over_the_pixel_limit(bomb, tmp_path):
    cfg = tmp_path / "training.toml"
    r = lorabake("config", "new", bomb, "-o", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = lorabake("config", "check", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 1 and "Warning" not in r.stderr
    errors = [e["message"] for e in json.loads(r.stdout)["errors"]]
    assert any(f"10_c/big.png: {BIG}" in m for m in errors), errors


def test_buckets_say_why_repeats_below_one_are_skipped(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "2_a", 1)
    make_concept(root, "0_x", 1)
    make_concept(root, "-1_y", 1)
    data = json_of(lorabake("buckets", root, "--json", cwd=tmp_path))
    assert sorted(data["left_out"]) == [
        "-1_y/img_000.png: repeats -1: kohya skips folders with fewer than 1 repeat",
        "0_x/img_000.png: repeats 0: kohya skips folders with fewer than 1 repeat"]
    human = lorabake("buckets", root, cwd=tmp_path).stdout
    assert "no repeat prefix" not in human
