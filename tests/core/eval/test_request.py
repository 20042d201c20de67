"""What a grid or probe asks for: the user's texts parsed or refused in one line, and the
request surviving its trip through request.json."""

from __future__ import annotations

import pytest

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.eval.request import (
    GridRequest,
    LoraChoice,
    ProbeRequest,
    RenderSettings,
    parse_size,
    parse_weights,
    read_request,
    seed_list,
    select_loras,
    write_request,
)

RUN = [LoraChoice("/r/a-000001.safetensors", "epoch 1", 1),
       LoraChoice("/r/a-000002.safetensors", "epoch 2", 2),
       LoraChoice("/r/a-000003.safetensors", "epoch 3", 3),
       LoraChoice("/r/a.safetensors", "final")]


def test_weights_keep_their_order_and_drop_repeats():
    assert parse_weights("0, 0.4,0.7,1,0.4") == [0.0, 0.4, 0.7, 1.0]
    assert parse_weights("-0.5") == [-0.5]


@pytest.mark.parametrize("text,says", [("0,x", "'x' is not a number"), ("", "no weights"),
                                       ("nan", "out of range"), ("9", "out of range")])
def test_bad_weights_are_one_message(text, says):
    with pytest.raises(LorabakeError, match=says):
        parse_weights(text)


def test_sizes():
    assert parse_size("512x768") == (512, 768)
    assert parse_size("640") == (640, 640)
    with pytest.raises(LorabakeError, match="WIDTHxHEIGHT"):
        parse_size("big")
    with pytest.raises(LorabakeError, match="multiple of 8"):
        RenderSettings(width=500).check()


def test_epoch_selection():
    assert select_loras("all", RUN) == RUN
    assert select_loras("last", RUN) == [RUN[3]]
    assert select_loras("last", RUN[:3]) == [RUN[2]]
    assert select_loras("3,1,final", RUN) == [RUN[2], RUN[0], RUN[3]]
    with pytest.raises(LorabakeError, match="no file for epoch 7") as e:
        select_loras("1,7", RUN)
    assert "epoch 1, epoch 2" in e.value.hint
    with pytest.raises(LorabakeError, match="no saved LoRA"):
        select_loras("all", [])


def test_seeds_count_from_the_first():
    assert seed_list(5, 3) == [5, 6, 7]


def test_requests_round_trip_and_a_damaged_one_is_named(tmp_path):
    grid = GridRequest(base="builtin:tiny-sd15", loras=RUN[:2], weights=[0, 1],
                       prompts=["a cat"], seeds=[1, 2], out=str(tmp_path / "g.png"),
                       render=RenderSettings(steps=4, width=64, height=64))
    probe = ProbeRequest(base="b", word="zxqv", seeds=[1, 2], out_dir=str(tmp_path / "p"),
                         subject="1girl")
    for req in (grid, probe):
        path = tmp_path / f"{req.kind}.json"
        write_request(req, path)
        assert read_request(path) == req
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "grid"}')
    with pytest.raises(LorabakeError, match="bad.json: not a render request"):
        read_request(bad)


def test_a_grid_too_big_is_refused_before_anything_is_queued(tmp_path):
    req = GridRequest(base="b", loras=RUN, weights=[0, 1], prompts=["x"],
                      seeds=list(range(1000)), out=str(tmp_path / "g.png"))
    with pytest.raises(LorabakeError, match="8000 images"):
        req.check()
