"""`lorabake lora info` and `lorabake lora resize`, in-process through main(argv), on files of
every type written at test time."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from lorabake_tui.cli import main
from lorabake_tui.cli.lora import INFO_HELP

from ..support.lora_files import kohya_meta, lora_tensors, make_all, write


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("loras"))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["lora", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind,first,dims", [
    ("lora", "lora (from the metadata)", "dim 4, alpha 2"),
    ("locon", "locon (from the metadata)", "dim 4, alpha 2; conv_dim 2, conv_alpha 1"),
    ("loha", "loha (from the metadata)", "dim 4, alpha 2; conv_dim 2, conv_alpha 1"),
    ("lokr", "lokr (from the metadata)", "dim 4, alpha 2; conv_dim full, conv_alpha 2"),
    ("ia3", "ia3 (from the metadata)", None),
    ("dylora", "dylora (from the metadata, unit 4)", "dim 16, alpha 8"),
])
def test_info_text(files, capsys, kind, first, dims):
    code, out, err = run(capsys, "info", files[kind])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"{files[kind]}: {first}")
    assert lines[1].startswith("modules: ") and "UNet" in lines[1]
    if dims:
        assert lines[2] == dims
    else:
        assert not any(line.startswith("dim ") for line in lines)
    assert "comment (triggers): trigger: mychar" in out
    assert "base model:         anything-v5.safetensors" in out
    assert "steps:              1200" in out and "epochs:             10" in out
    assert "tags in 10_mychar (5 distinct): 1girl (12), mychar (12), red hair (9)" in out


@pytest.mark.parametrize("kind", ["lora", "locon", "loha", "lokr", "ia3", "dylora"])
def test_info_json(files, capsys, kind):
    code, out, _ = run(capsys, "info", files[kind], "--json", "--tags", "1")
    assert code == 0
    j = json.loads(out)
    assert j["type"] == kind and j["type_from"] == "metadata"
    assert j["comment"] == "trigger: mychar" and j["base_model"] == "anything-v5.safetensors"
    assert j["training"]["steps"] == 1200
    assert j["tags"][0] == {"folder": "10_mychar", "distinct": 5,
                            "top": [{"tag": "1girl", "count": 12}]}
    # every field the --help epilog names is in the object, and no other
    for key in j:
        assert key in INFO_HELP, key
    for key in j["training"]:
        assert key in INFO_HELP, key


def test_info_without_metadata(tmp_path, capsys):
    f = write(tmp_path / "bare.safetensors", lora_tensors(conv_dim=2), None)
    code, out, _ = run(capsys, "info", f)
    assert code == 0
    assert out.splitlines()[0].startswith(f"{f}: locon (from the tensor keys)")
    assert "no metadata" in out and "comment" not in out


def test_info_notes_a_disagreement(tmp_path, capsys):
    f = write(tmp_path / "x.safetensors", lora_tensors(), kohya_meta("networks.lora", 8, 2.0))
    code, out, _ = run(capsys, "info", f)
    assert code == 0
    assert "note: ss_network_dim says 8 but the linear modules' ranks have 4" in out


@pytest.mark.parametrize("content,words", [
    (b"hello, not tensors", "is not a safetensors file"),
    (pickle.dumps({"w": 1}, protocol=4), "is a pickle file"),
    (None, "is truncated"),
])
def test_bad_files_give_one_line_and_exit_1(files, tmp_path, capsys, content, words):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(files["lora"].read_bytes()[:-10] if content is None else content)
    code, out, err = run(capsys, "info", bad)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"lorabake: error: {bad}") and words in err


def test_resize_one_and_all(files, tmp_path, capsys):
    out = tmp_path / "r8.safetensors"
    code, _, err = run(capsys, "resize", files["dylora"], "--dim", "8", "-o", out)
    assert code == 0 and err == f"wrote {out} (rank 8)\n"
    code, text, _ = run(capsys, "info", out, "--json")
    j = json.loads(text)
    assert j["dim"] == 8 and j["alpha"] == 8.0 and j["notes"] == [
        "split from DyLoRA, rank 16 to 8"]
    code, _, err = run(capsys, "resize", files["dylora"], "--all", "-o", tmp_path / "cut")
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("cut-*")) == [
        "cut-rank12.safetensors", "cut-rank4.safetensors", "cut-rank8.safetensors"]
    assert err.count("wrote") == 3


def test_resize_refusals(files, tmp_path, capsys):
    out = tmp_path / "o.safetensors"
    code, _, err = run(capsys, "resize", files["dylora"], "--dim", "32", "-o", out)
    assert code == 1 and "--dim 32 is outside 1..16" in err and not out.exists()
    code, _, err = run(capsys, "resize", files["loha"], "--dim", "2", "-o", out)
    assert code == 1 and "is not a kohya LoRA file" in err and not out.exists()
    out.write_bytes(b"x")
    code, _, err = run(capsys, "resize", files["dylora"], "--dim", "4", "-o", out)
    assert code == 1 and f"{out} exists" in err and out.read_bytes() == b"x"


def test_resize_usage_errors(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lora", "resize", str(files["dylora"]), "-o", "x"])  # neither --dim nor --all
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["lora", "resize", str(files["dylora"]), "--dim", "4", "--all", "-o", "x"])
    assert exc.value.code == 2


def test_info_and_resize_never_import_torch(files, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r4.safetensors"
    probe = ("import sys\nfrom lorabake_tui.cli.main import main\n"
             f"assert main(['lora', 'info', {str(files['lora'])!r}]) == 0\n"
             f"assert main(['lora', 'resize', {str(files['dylora'])!r}, '--dim', '4', "
             f"'-o', {str(out)!r}]) == 0\n"
             "print('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-1] == "False True"
    assert out.is_file()


def test_info_shows_kohyas_timestamps_in_utc(tmp_path, capsys):
    meta = kohya_meta("networks.lora", 4, 2.0, ss_training_started_at="1700000000.25",
                      ss_training_finished_at="None")
    code, out, _ = run(capsys, "info", write(tmp_path / "t.safetensors", lora_tensors(), meta))
    assert code == 0
    assert "started at:         2023-11-14 22:13:20 UTC" in out
    assert "finished at" not in out  # kohya's "None": not shown
