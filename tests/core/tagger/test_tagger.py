"""The auto-tagger with a tiny ONNX model built here (tests/tagger_model.py): its tags follow the
image's colours, so every expected caption is known. Nothing is downloaded."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lorabake_tui.cli import main as cli_main
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.captions.store import CaptionStore
from lorabake_tui.core.dataset.scan import scan_dataset
from lorabake_tui.core.tagger.autotag import (
    ProbCache,
    Tagger,
    TagOptions,
    autotag,
    merge,
    open_tagger,
    written_form,
)
from lorabake_tui.core.tagger.inputs import prepare_image
from lorabake_tui.core.tagger.model import fingerprint

from ...support.tagger_model import P_CONST, write_tagger

RED, GREEN, BLUE, WHITE, DARK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (20, 20, 20)
BASE = ["megurine luka", "^_^", "solo", "simple background"]  # on every image (v2 defaults)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_tagger(tmp_path_factory.mktemp("models") / "wd-tiny-tagger-v2")


@pytest.fixture(scope="module")
def tagger(model_dir) -> Tagger:
    return open_tagger(str(model_dir))


def color_image(path: Path, color, size=(64, 64), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def ds(tmp_path) -> Path:
    """10_a: red, green, blue, white without captions; 5_b: a dark image with a caption, a
    green one with an empty caption."""
    root = tmp_path / "ds"
    for name, color in (("red", RED), ("green", GREEN), ("blue", BLUE), ("white", WHITE)):
        color_image(root / "10_a" / f"{name}.png", color)
    color_image(root / "5_b" / "dark.png", DARK)
    (root / "5_b" / "dark.txt").write_bytes(b"\xef\xbb\xbfmira, long_hair, smile\r\nnotes\n")
    color_image(root / "5_b" / "green2.png", GREEN, size=(48, 96))
    (root / "5_b" / "green2.txt").write_bytes(b"\n")
    return root


def load(root: Path) -> CaptionStore:
    return CaptionStore.load(scan_dataset(root))


def caption(root: Path, rel: str) -> list[str]:
    return [t.strip() for t in (root / rel).read_text("utf-8-sig").splitlines()[0].split(",")]


def tags_for(tagger, color, size=(64, 64), tmp=None, **opts) -> list[str]:
    path = color_image(tmp / f"img_{'_'.join(map(str, color))}_{size[0]}.png", color, size)
    return tagger.select(tagger.predict_file(path), TagOptions(**opts))


# ---- preprocessing ----------------------------------------------------------------------

def test_alpha_on_white_and_bgr_order():
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (32, 0, 64, 64))  # right half opaque red
    arr = prepare_image(img, 64)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.float32
    assert arr[10, 5].tolist() == [255.0, 255.0, 255.0]  # transparent -> white
    assert arr[10, 50].tolist() == [0.0, 0.0, 255.0]  # red in BGR order
    half = Image.new("LA", (64, 64), (0, 128))  # half-transparent black on white -> grey
    assert 120 <= prepare_image(half, 64)[0, 0, 0] <= 135


def test_padding_to_a_centred_square_then_resize():
    tall = prepare_image(Image.new("RGB", (32, 64), BLUE), 64)  # no resize: exact pixels
    assert tall[:, :16].min() == 255 and tall[:, 48:].min() == 255
    assert (tall[:, 16:48] == [255, 0, 0]).all()  # blue, BGR
    wide = prepare_image(Image.new("RGB", (400, 200), RED), 64)  # padded top and bottom
    assert wide[0, 32].tolist() == [255, 255, 255] and wide[63, 32].tolist() == [255] * 3
    assert wide[32, 0].tolist() == [0, 0, 255] and wide[32, 63].tolist() == [0, 0, 255]
    big = prepare_image(Image.new("RGB", (3000, 1000), GREEN), 64)  # box-reduced first
    assert big[32, 32].tolist() == [0, 255, 0] and big[2, 32].tolist() == [255] * 3


def test_an_exif_rotated_image_is_tagged_as_stored(tmp_path):
    # the tags describe what kohya trains (the stored pixels), as kohya's own tagger reads it
    from lorabake_tui.core.tagger.inputs import load_image

    from ...support.helpers import make_exif_rotated

    path = make_exif_rotated(tmp_path / "phone.png", (64, 32), orientation=6, fmt="PNG")
    with Image.open(path) as im:
        stored = prepare_image(im.convert("RGB"), 64)
    assert np.array_equal(load_image(path, 64), stored)


def test_input_size_is_read_from_the_model(tmp_path):
    t = open_tagger(str(write_tagger(tmp_path / "m32", size=32)))
    assert t.model.size == 32
    probs = t.predict_file(color_image(tmp_path / "r.png", RED, (100, 100)))
    assert "red theme" in t.select(probs, TagOptions())


@pytest.mark.parametrize("overlap", [False, True])  # CPU: take turns; GPU: decode ahead
def test_pipeline_keeps_input_order_around_failures(tmp_path, overlap):
    from lorabake_tui.core.tagger.inputs import predict_stream

    paths = []
    for i in range(7):
        p = tmp_path / f"{i}.png"
        if i == 3:
            p.write_bytes(b"broken")
        else:
            Image.new("RGB", (20, 30), (i * 30, 0, 0)).save(p)
        paths.append(p)
    seen_batches = []

    def run(arr):
        seen_batches.append(len(arr))
        return arr[:, 10, 10, 2:3]  # the red value at the centre: which image it was

    out = list(predict_stream(run, paths, 16, batch=2, workers=3, overlap=overlap))
    got = [(i, float(b.probs[row][0])) for b in out for row, i in enumerate(b.indices)]
    assert got == [(i, i * 30.0) for i in range(7) if i != 3]
    assert [f for b in out for f in b.failed][0][0] == 3
    assert seen_batches == [2, 2, 2]


# ---- choosing tags ----------------------------------------------------------------------

def test_colours_decide_the_tags_end_to_end(tagger, tmp_path):
    # a red image only gets "red theme" if the channels reach the model as BGR
    assert tags_for(tagger, RED, tmp=tmp_path) == ["megurine luka", "red theme", *BASE[1:]]
    assert tags_for(tagger, BLUE, tmp=tmp_path) == ["megurine luka", "blue theme", *BASE[1:]]
    green = tags_for(tagger, GREEN, tmp=tmp_path)
    assert green[:2] == ["hatsune miku", "megurine luka"] and "green theme" in green


def test_thresholds_per_category_and_per_model_defaults(tagger, tmp_path, model_dir):
    probs = tagger.predict_file(color_image(tmp_path / "r.png", RED))
    assert tagger.thresholds(TagOptions()) == (0.35, 0.85)  # a v2 model
    v2 = tagger.select(probs, TagOptions())
    assert "simple background" in v2 and "long hair" not in v2  # 0.40 kept, 0.30 not
    assert "megurine luka" in v2 and "kagamine rin" not in v2  # 0.90 kept, 0.80 not
    assert "long hair" in tagger.select(probs, TagOptions(general=0.29))
    assert "smile" not in tagger.select(probs, TagOptions(general=0.29))
    low_char = tagger.select(probs, TagOptions(character=0.75))
    assert low_char[:2] == ["megurine luka", "kagamine rin"]
    assert tagger.select(probs, TagOptions(character=0.95))[0] == "red theme"
    v3 = open_tagger(str(write_tagger(tmp_path / "wd-tiny-tagger-v3")))
    assert v3.thresholds(TagOptions()) == (0.27, 0.85)
    assert "long hair" in v3.select(probs, TagOptions())
    assert v3.scores(probs).general[0][0] == "red theme"
    assert dict(v3.scores(probs).character)["kagamine rin"] == pytest.approx(
        P_CONST["kagamine rin"], abs=1e-5)


def test_rating_tag_on_and_off(tagger, tmp_path):
    bright, dark = (tagger.predict_file(color_image(tmp_path / f"{n}.png", c))
                    for n, c in (("w", WHITE), ("d", DARK)))
    ratings = {"general", "sensitive", "questionable", "explicit"}
    assert not ratings & set(tagger.select(bright, TagOptions()))
    assert tagger.select(bright, TagOptions(rating=True))[0] == "general"
    assert tagger.select(dark, TagOptions(rating=True))[0] == "questionable"
    assert tagger.select(dark, TagOptions(rating=True, first=("mira",)))[:2] == [
        "mira", "questionable"]


def test_undesired_exact_glob_and_either_spelling(tagger, tmp_path):
    probs = tagger.predict_file(color_image(tmp_path / "w.png", WHITE))
    tags = tagger.select(probs, TagOptions(undesired=("simple_background", "*_theme", "^_^")))
    assert tags == ["hatsune miku", "megurine luka", "white background", "solo"]


def test_underscores_become_spaces_but_short_tags_keep_them(tagger, tmp_path):
    assert written_form("long_hair") == "long hair" and written_form("^_^") == "^_^"
    assert written_form("o_o") == "o_o" and written_form(">_<") == ">_<"
    tags = tags_for(tagger, RED, tmp=tmp_path)
    assert "^_^" in tags and "simple background" in tags
    assert not any("_" in t for t in tags if len(t) > 3)


def test_character_tags_first_or_by_probability(tagger, tmp_path):
    probs = tagger.predict_file(color_image(tmp_path / "g.png", GREEN))
    first = tagger.select(probs, TagOptions(character=0.75))
    assert first[:3] == ["hatsune miku", "megurine luka", "kagamine rin"]
    mixed = tagger.select(probs, TagOptions(character=0.75, character_first=False))
    assert set(mixed) == set(first)
    ps = [dict(tagger.scores(probs, 100).general + tagger.scores(probs, 100).character)[t]
          for t in mixed]
    assert ps == sorted(ps, reverse=True)  # one list by probability
    assert mixed.index("kagamine rin") < mixed.index("^_^")  # 0.8 before 0.6


def test_trigger_always_first_once_in_every_mode():
    old = ["1girl", "mira", "long_hair"]
    new = ["mira", "long hair", "smile"]
    first = ["mira"]
    assert merge(old, new, "missing", first) == ["mira", "long hair", "smile"]
    assert merge(old, new, "overwrite", first) == ["mira", "long hair", "smile"]
    assert merge(old, new, "append", first) == ["mira", "1girl", "long_hair", "smile"]
    assert merge(old, new, "prepend", first) == ["mira", "smile", "1girl", "long_hair"]
    assert merge(["a"], ["b"], "append") == ["a", "b"]
    assert merge(["a"], ["b", "a"], "prepend") == ["b", "a"]


# ---- runs over a dataset ----------------------------------------------------------------

def test_missing_mode_tags_only_images_without_a_caption(ds, tagger):
    before = (ds / "5_b" / "dark.txt").read_bytes()
    store = load(ds)
    res = autotag(store, store.records, tagger, TagOptions(first=("mira",)))
    assert res.total == 5 and res.done == 5 and res.applied.written == 5 and not res.cancelled
    assert (ds / "5_b" / "dark.txt").read_bytes() == before
    assert caption(ds, "10_a/red.txt") == ["mira", "megurine luka", "red theme", *BASE[1:]]
    assert caption(ds, "10_a/blue.txt")[2] == "blue theme"
    assert caption(ds, "5_b/green2.txt")[:3] == ["mira", "hatsune miku", "megurine luka"]
    assert (ds / "10_a" / "red.txt").read_bytes().endswith(b"long hair\n") is False
    assert (ds / "10_a" / "red.txt").read_bytes().endswith(b"background\n")
    entries = Journal(ds).entries()
    assert len(entries) == 1 and entries[0].label.startswith("autotag wd-tiny-tagger-v2")
    again = autotag(load(ds), load(ds).records, tagger, TagOptions())
    assert again.total == 0 and again.applied is None  # nothing left without a caption


def test_append_prepend_overwrite_keep_bom_line_ending_and_rest(ds, tagger):
    rel = "5_b/dark.txt"

    def run(mode, **kw):
        store = load(ds)
        return autotag(store, [store.by_rel[rel]], tagger, TagOptions(mode=mode, **kw))

    run("append", general=0.25)  # long hair (0.30) already there as long_hair: not doubled
    data = (ds / rel).read_bytes()
    assert data.startswith(b"\xef\xbb\xbfmira, long_hair, smile, megurine luka, ")
    assert data.endswith(b"simple background\r\nnotes\n") and b"long hair" not in data
    Journal(ds).undo()
    run("prepend")
    assert caption(ds, rel) == ["megurine luka", "^_^", "solo", "simple background", "mira",
                                "long_hair", "smile"]
    Journal(ds).undo()
    run("overwrite", first=("mira",), rating=True)
    assert caption(ds, rel) == ["mira", "questionable", "megurine luka", *BASE[1:]]
    assert (ds / rel).read_bytes().endswith(b"\r\nnotes\n")


def test_undo_of_a_run_is_byte_identical(ds, tagger):
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    store = load(ds)
    res = autotag(store, store.records, tagger, TagOptions(mode="overwrite", rating=True))
    assert res.applied.written == 6
    assert len(Journal(ds).entries()) == 1  # the whole run is one entry
    Journal(ds).undo()
    after = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()
             and ".lorabake" not in p.parts}
    assert after == {p: b for p, b in before.items() if ".lorabake" not in p.parts}


def test_cancel_writes_what_is_done_and_missing_mode_resumes(ds, tagger):
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 2:
            cancel.set()

    store = load(ds)
    res = autotag(store, store.records, tagger, TagOptions(batch=2), progress=progress,
                  cancel=cancel, workers=1)
    assert res.cancelled and res.done == 2 and res.total == 5
    assert "stopped at 2 of 5" in res.plan.label
    assert res.applied.written == 2
    uncaptioned = [r.rel for r in load(ds).records if not r.tags]
    assert len(uncaptioned) == 3
    res2 = autotag(load(ds), load(ds).records, tagger, TagOptions())
    assert res2.total == 3 and res2.done == 3 and not res2.cancelled
    assert all(load(ds).by_rel[r].tags for r in uncaptioned)
    assert [e.state for e in Journal(ds).entries()] == ["done", "done"]


def test_a_crashed_run_resumes_from_the_probability_cache(ds, tagger, monkeypatch):
    real_run = tagger.model.run
    calls = []

    def crashing(batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real_run(batch)

    monkeypatch.setattr(tagger.model, "run", crashing)
    store = load(ds)
    with pytest.raises(RuntimeError):
        autotag(store, store.records, tagger, TagOptions(batch=2), workers=1)
    assert Journal(ds).entries() == []  # nothing written ...
    cache = ProbCache(ds, fingerprint(tagger.model.files))
    assert len(cache.load()) == 2  # ... but the first batch is kept
    calls.clear()
    monkeypatch.setattr(tagger.model, "run", lambda b: calls.append(len(b)) or real_run(b))
    res = autotag(load(ds), load(ds).records, tagger, TagOptions(batch=2), workers=1)
    assert res.cached == 2 and sum(calls) == 3 and res.applied.written == 5
    assert caption(ds, "10_a/blue.txt")[1] == "blue theme"  # from the cache, same tags
    assert not cache.path.exists()  # complete: nothing left to resume
    # a lower threshold than the cache floor, or a changed image, is inferred again
    hit = {"stat": [1, 2], "floor": 0.05}
    assert ProbCache.usable(hit, (1, 2), 0.3) and not ProbCache.usable(hit, (1, 3), 0.3)
    assert not ProbCache.usable(hit, (1, 2), 0.01)


def test_unreadable_images_are_reported_and_the_rest_tagged(ds, tagger):
    (ds / "10_a" / "broken.png").write_bytes(b"not a png")
    store = load(ds)
    res = autotag(store, store.records, tagger, TagOptions(batch=2), workers=2)
    assert res.done == 5 and len(res.failures) == 1 and "broken.png" in res.failures[0]
    assert not (ds / "10_a" / "broken.txt").exists()
    assert caption(ds, "10_a/green.txt")[2] == "green theme"  # order kept around the failure


def test_dry_run_writes_nothing_and_concept_scope(ds, tagger):
    store = load(ds)
    res = autotag(store, store.select(concept="10_a"), tagger, TagOptions(), dry_run=True)
    assert res.plan.files == 4 and res.applied is None
    assert not list(ds.glob("10_a/*.txt")) and not Journal(ds).entries()


# ---- finding the model ------------------------------------------------------------------

def test_repo_id_from_a_fake_hugging_face_cache(tmp_path, monkeypatch):
    try:
        import huggingface_hub
    except ImportError:
        pass  # then nothing could download anyway
    else:
        def no_download(*a, **k):
            raise AssertionError("tests never download")

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    hub = tmp_path / "hf" / "hub"
    repo = hub / "models--Someone--wd-tiny-tagger-v3"
    write_tagger(repo / "snapshots" / "0123abc")
    write_tagger(repo / "snapshots" / "old999")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t = open_tagger("Someone/wd-tiny-tagger-v3")
    assert t.name == "Someone/wd-tiny-tagger-v3" and t.model.files.folder.name == "0123abc"
    assert t.thresholds(TagOptions()) == (0.27, 0.85)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert open_tagger("Someone/wd-tiny-tagger-v3").model.size == 64
    with pytest.raises(LorabakeError) as err:
        open_tagger("Someone/not-cached")
    assert "not in the Hugging Face cache" in str(err.value) and "--download" in str(err.value)


def test_errors_name_the_file(tmp_path, model_dir):
    with pytest.raises(LorabakeError, match="no such folder"):
        open_tagger(str(tmp_path / "nowhere"))
    half = tmp_path / "half"
    half.mkdir()
    (half / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes())
    with pytest.raises(LorabakeError, match="selected_tags.csv"):
        open_tagger(str(half))
    (half / "selected_tags.csv").write_text("tag_id,name,category,count\n1,a,zero,5\n")
    with pytest.raises(LorabakeError) as err:
        open_tagger(str(half))
    assert "selected_tags.csv: line 2" in str(err.value)
    (half / "selected_tags.csv").write_text("id,tag\n1,a\n")
    with pytest.raises(LorabakeError, match="header"):
        open_tagger(str(half))
    broken = write_tagger(tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(LorabakeError) as err:
        open_tagger(str(broken))
    assert str(broken / "model.onnx") in str(err.value)
    with pytest.raises(LorabakeError, match="NHWC"):
        open_tagger(str(write_tagger(tmp_path / "nchw", layout="nchw")))
    with pytest.raises(LorabakeError, match="predicts 10 tags"):
        open_tagger(str(write_tagger(tmp_path / "short", outputs=10)))


# ---- CLI --------------------------------------------------------------------------------

def test_cli_autotag_json_then_undo(ds, model_dir, capsys):
    rc = cli_main(["autotag", str(ds), "--model", str(model_dir), "--json", "--first", "mira",
                   "--undesired", "solo", "--concept", "10_a"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["applied"] and out["files"] == 4 and out["general"] == 0.35
    red = next(c for c in out["changes"] if c["path"] == "10_a/red.txt")
    assert red["after"] == ["mira", "megurine luka", "red theme", "^_^", "simple background"]
    assert cli_main(["undo", str(ds)]) == 0
    assert not list(ds.glob("10_a/*.txt"))


def test_cli_errors_and_dry_run(ds, model_dir, tmp_path, capsys):
    assert cli_main(["autotag", str(ds), "--model", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err
    assert cli_main(["autotag", str(ds), "--model", str(model_dir), "--general", "2"]) == 1
    assert cli_main(["autotag", str(ds), "--model", str(model_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "5 caption(s) change" in out and "dry run" in out
    assert not (ds / "10_a" / "red.txt").exists()


def test_cli_resume_command_is_the_same_run_in_missing_mode():
    from lorabake_tui.cli.autotag import _resume_command

    assert _resume_command(["d s", "--model", "m", "--mode", "append", "--first", "mira"]) == (
        "lorabake autotag 'd s' --model m --first mira --mode missing")
    assert _resume_command(["d", "--mode=overwrite"]) == "lorabake autotag d --mode missing"


# ---- the dialog, keys only --------------------------------------------------------------

async def test_dialog_preview_run_undo_keys_only(ds, model_dir):
    from textual.widgets import Input, Static

    from lorabake_tui.ui.app import make_app
    from lorabake_tui.ui.screens.autotag_dialog import AutotagDialog
    from lorabake_tui.ui.screens.tags import TagsScreen

    from ...support.helpers import settle

    app = make_app(ds, images="none", save_settings=False)
    async with app.run_test(size=(150, 50)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TagsScreen)
        await pilot.press("T")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, AutotagDialog)
        await pilot.press(*"wd", "enter")  # no such model: said in the dialog
        await settle(pilot)
        assert "no such folder" in str(dialog.query_one("#at-model-status", Static).render())
        # set rather than typed: 60 key presses take seconds
        dialog.query_one("#at-model", Input).value = str(model_dir)
        await pilot.press("enter")  # load the model: the preview appears
        await settle(pilot)
        scores = str(dialog.query_one("#at-general-scores", Static).render())
        assert "General (>= 0.35)" in scores and "──── 0.35 ────" in scores
        assert scores.index("simple background") < scores.index("0.35 ──")
        assert scores.index("0.35 ──") < scores.index("long hair")
        assert "megurine luka" in str(dialog.query_one("#at-character-scores", Static).render())
        assert "5 of 6 image(s) to tag" in str(dialog.query_one("#at-summary", Static).render())
        await pilot.press("tab", "0", ".", "2", "9")  # general threshold 0.29
        await settle(pilot)
        assert "──── 0.29 ────" in str(dialog.query_one("#at-general-scores", Static).render())
        await pilot.press("enter")  # run over the dataset
        await settle(pilot, rounds=8)
        assert isinstance(app.screen, TagsScreen)
        assert "long hair" in caption(ds, "10_a/red.txt")
        assert len(Journal(ds).entries()) == 1
        await pilot.press("u")
        await settle(pilot)
        assert not (ds / "10_a" / "red.txt").exists()
        assert (ds / "5_b" / "green2.txt").read_bytes() == b"\n"
