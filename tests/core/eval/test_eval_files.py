"""The files around a grid: cell names and order, the labelled image, the manifest the UI
browses, a run's LoRA files, keeping one without overwriting, the prompts from captions."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.captions.store import CaptionRecord
from lorabake_tui.core.eval.compose import compose_grid
from lorabake_tui.core.eval.diversity import diversity, reading
from lorabake_tui.core.eval.keep import keep_lora
from lorabake_tui.core.eval.layout import grid_cells, grid_folder, grid_manifest, new_grid_path
from lorabake_tui.core.eval.manifest import read_grid, write_grid_manifest
from lorabake_tui.core.eval.prompts import dataset_trigger, default_prompts, subject_tag
from lorabake_tui.core.eval.request import GridRequest, LoraChoice, RenderSettings
from lorabake_tui.core.eval.run_loras import run_loras


def _req(tmp_path, weights=(0, 0.5, 1), seeds=(1, 2)):
    loras = [LoraChoice(str(tmp_path / "a-000001.safetensors"), "epoch 1", 1),
             LoraChoice(str(tmp_path / "a.safetensors"), "final")]
    return GridRequest(base="b", loras=loras, weights=list(weights), prompts=["p one", "p two"],
                       seeds=list(seeds), out=str(tmp_path / "out" / "grid.png"),
                       render=RenderSettings(width=64, height=48))


def test_cells_cover_prompts_seeds_rows_weights_with_distinct_files(tmp_path):
    req = _req(tmp_path)
    cells = grid_cells(req)
    assert len(cells) == 2 * 2 * 2 * 3
    assert len({c.path for c in cells}) == len(cells)
    assert all(c.path.parent == grid_folder(req.out) for c in cells)
    assert grid_folder(req.out) == tmp_path / "out" / "grid"
    assert grid_manifest(req.out) == tmp_path / "out" / "grid.json"
    assert cells[0].path.name == "p0-s1-e000001-w0.png"
    assert cells[4].path.name == "p0-s1-final-w0.5.png"


def test_the_grid_image_has_a_cell_per_weight_and_row_and_grey_for_missing(tmp_path):
    req = _req(tmp_path, seeds=(1,))
    cells = grid_cells(req)
    grid_folder(req.out).mkdir(parents=True)
    Image.new("RGB", (64, 48), (255, 0, 0)).save(cells[0].path)
    img = compose_grid(req, cells)
    assert img.width > 3 * 64 and img.height > 2 * 2 * 48
    colours = {c for _, c in img.getcolors(1 << 20)}
    assert (255, 0, 0) in colours and (200, 200, 200) in colours


def test_the_manifest_answers_cell_lookups_and_refuses_other_json(tmp_path):
    req = _req(tmp_path)
    cells = grid_cells(req)
    path = write_grid_manifest(req, cells[:5], complete=False)
    view = read_grid(path)
    assert not view.complete
    assert len(view.blocks) == 4 and view.weights == [0, 0.5, 1]
    assert view.cell(0, 0, 0)["path"] == str(cells[0].path)
    assert view.cell(0, 1, 1)["path"] == str(cells[4].path)
    assert view.cell(0, 1, 2) is None  # not drawn yet
    (tmp_path / "x.json").write_text("[1]")
    with pytest.raises(LorabakeError, match="not a grid manifest"):
        read_grid(tmp_path / "x.json")


def test_a_runs_files_in_epoch_order_then_steps_then_final(tmp_path):
    for name in ("a-000010.safetensors", "a-000002.safetensors", "a.safetensors",
                 "a-step00000120.safetensors", "notes.txt", "other.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    got = [(c.label, c.epoch) for c in run_loras(tmp_path, "a")]
    assert got == [("epoch 2", 2), ("epoch 10", 10), ("step 120", None), ("final", None)]


def test_new_grid_paths_never_collide(tmp_path):
    first = new_grid_path(tmp_path, now=0)
    first.parent.mkdir(parents=True)
    first.write_bytes(b"")
    second = new_grid_path(tmp_path, now=0)
    assert second != first and second.parent == tmp_path / "grids"


def test_keep_copies_bytes_and_never_overwrites(tmp_path):
    src = tmp_path / "run" / "a-000003.safetensors"
    src.parent.mkdir()
    src.write_bytes(b"epoch three")
    other = tmp_path / "run2" / "a-000003.safetensors"
    other.parent.mkdir()
    other.write_bytes(b"another run")
    keep = tmp_path / "Lora"
    keep.mkdir()
    path, copied = keep_lora(src, keep)
    assert copied and path.read_bytes() == b"epoch three"
    assert os.stat(path).st_mtime == pytest.approx(os.stat(src).st_mtime)
    assert keep_lora(src, keep) == (path, False)  # already there: nothing new
    path2, copied2 = keep_lora(other, keep)
    assert copied2 and path2.name == "a-000003-2.safetensors"
    assert path.read_bytes() == b"epoch three" and path2.read_bytes() == b"another run"
    assert sorted(p.name for p in keep.iterdir()) == ["a-000003-2.safetensors",
                                                     "a-000003.safetensors"]
    with pytest.raises(LorabakeError, match="set it in the settings"):
        keep_lora(src, tmp_path / "nowhere")


def _rec(*tags):
    r = CaptionRecord("x.txt", "x.png", "1_x")
    r.set_tags(list(tags))
    return r


def test_prompts_start_with_the_trigger_and_skip_quality_words():
    recs = [_rec("zxq", "masterpiece", "1girl", "red hair"), _rec("zxq", "1girl", "smile"),
            _rec("zxq", "masterpiece", "1girl", "red hair", "smile")]
    assert dataset_trigger(recs) == "zxq"
    assert default_prompts(recs) == ["zxq, 1girl, red hair, smile"]
    assert subject_tag(recs, "zxq") == "1girl"
    assert dataset_trigger([_rec("a"), _rec("b"), _rec("c")]) is None


def test_diversity_reads_identical_as_zero_and_unrelated_as_about_one():
    rng = np.random.default_rng(0)
    same = [np.ones((4, 8, 8)) * rng.standard_normal((4, 8, 8))] * 4
    assert diversity(same) == pytest.approx(0.0, abs=1e-9)
    noise = [rng.standard_normal((4, 32, 32)) for _ in range(4)]
    assert diversity(noise) == pytest.approx(1.0, abs=0.05)
    assert reading(0.95, 1.0)[1] == "free"
    assert reading(0.7, 1.0)[1] == "partly known"
    assert reading(0.2, 1.0)[1] == "known"
