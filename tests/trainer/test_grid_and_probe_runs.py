"""The bookkeeping of a render job (trainer/render/grid_run.py, probe_run.py) with a stand-in
engine: which images are drawn (the base model once per prompt and seed), what is written
after each one (cell, manifest, event), and what a stop leaves. The engine's own pixels are
tested against diffusers in test_render*.py."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from lorabake_tui.core.eval.layout import grid_cells, grid_folder, grid_manifest
from lorabake_tui.core.eval.manifest import read_grid
from lorabake_tui.core.eval.request import GridRequest, LoraChoice, ProbeRequest, RenderSettings
from lorabake_tui.core.run import exit_codes
from lorabake_tui.core.run.event_reader import read_all_events
from lorabake_tui.core.run.event_writer import EventWriter
from lorabake_tui.trainer.render.grid_run import run_grid
from lorabake_tui.trainer.render.probe_run import run_probe
from tests.support.render_stub import StubEngine

SMALL = RenderSettings(steps=2, width=64, height=64)


def _grid(tmp_path, weights=(0, 0.5, 1)):
    loras = [LoraChoice(str(tmp_path / f"a-00000{e}.safetensors"), f"epoch {e}", e)
             for e in (1, 2, 3)]
    return GridRequest(base="builtin:tiny-sd15", loras=loras, weights=list(weights),
                       prompts=["zxq, 1girl", "zxq, smile"], seeds=[7, 8],
                       out=str(tmp_path / "out" / "grid.png"), render=SMALL)


def _events(folder):
    return read_all_events(folder / "events.jsonl")


def test_a_grid_draws_the_base_once_per_prompt_and_seed_and_switches_in_place(tmp_path):
    req = _grid(tmp_path)
    engine = StubEngine()
    with EventWriter(grid_folder(req.out)) as ev:
        outcome = run_grid(engine, req, ev, lambda: False)
    assert outcome.code == exit_codes.DONE
    cells = grid_cells(req)
    assert all(c.path.is_file() for c in cells)
    # 4 base images (2 prompts x 2 seeds) + 3 files x 2 weights x 4
    assert len(engine.calls) == 4 + 3 * 2 * 4
    assert engine.switches == 1 + 3 * 2
    for c in cells:
        if c.weight == 0:
            first = next(o for o in cells if o.weight == 0 and o.row == 0 and
                         o.prompt_index == c.prompt_index and o.seed == c.seed)
            assert c.path.read_bytes() == first.path.read_bytes()
    w1 = [c for c in cells if c.weight == 1 and c.prompt_index == 0 and c.seed == 7]
    assert len({c.path.read_bytes() for c in w1}) == 3  # each epoch its own image
    view = read_grid(grid_manifest(req.out))
    assert view.complete and len(view.data["cells"]) == len(cells)
    with Image.open(w1[1].path) as im:
        assert "<lora:a-000002:1>" in im.text["parameters"]
        assert "Sampler: Euler a" in im.text["parameters"]
    evs = _events(grid_folder(req.out))
    assert evs[0]["type"] == "start" and evs[0]["total_steps"] == len(cells)
    assert [e["done"] for e in evs if e["type"] == "render"] == list(range(1, len(cells) + 1))
    assert evs[-1]["type"] == "end" and evs[-1]["status"] == "done"
    with Image.open(req.out) as im:
        assert im.width > 3 * 64 and im.height > 4 * 3 * 64


def test_a_stopped_grid_keeps_what_was_drawn_and_says_so(tmp_path):
    req = _grid(tmp_path)
    engine = StubEngine()
    asked = []

    def stop():
        asked.append(1)
        return len(engine.calls) >= 6

    with EventWriter(grid_folder(req.out)) as ev:
        outcome = run_grid(engine, req, ev, stop)
    assert outcome.code == exit_codes.STOPPED
    view = read_grid(grid_manifest(req.out))
    assert not view.complete
    drawn = view.data["cells"]
    assert drawn and len(drawn) < len(grid_cells(req))
    assert all(Path(c["path"]).is_file() for c in drawn)
    assert _events(grid_folder(req.out))[-1]["status"] == "stopped"
    assert Path(req.out).is_file()  # the partial grid, grey cells


def test_a_probe_measures_each_group_against_the_empty_prompt(tmp_path):
    req = ProbeRequest(base="builtin:tiny-sd15", word="zxq", seeds=[1, 2, 3, 4],
                       out_dir=str(tmp_path / "probe"), subject="1girl", render=SMALL)
    with EventWriter(req.out_dir) as ev:
        free = run_probe(StubEngine(), req, ev, lambda: False)
    assert free.code == exit_codes.DONE
    data = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert len(data["images"]) == 12
    assert {i["group"] for i in data["images"]} == {"baseline", "word", "with-subject"}
    assert data["reading"] == "free" and data["tokens"]["word"] == "zxq"
    assert all(Path(i["path"]).is_file() for i in data["images"])

    known = tmp_path / "probe2"
    req2 = ProbeRequest(base="b", word="cat", seeds=[1, 2, 3], out_dir=str(known),
                        render=SMALL)
    with EventWriter(known) as ev:
        run_probe(StubEngine(same_latents_for="cat"), req2, ev, lambda: False)
    data2 = json.loads((known / "probe.json").read_text())
    assert data2["diversity"] < 0.01 and data2["reading"] == "known"
    assert data2["subject_diversity"] is None
