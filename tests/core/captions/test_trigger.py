"""Trigger words: CLIP's pieces, contamination risk, rarer spellings, use in the captions."""

from __future__ import annotations

import json

import pytest

from lorabake_tui.cli import main
from lorabake_tui.core.captions.clip_tokenizer import clip_tokenizer
from lorabake_tui.core.captions.trigger import (
    COMMON_ID,
    alternatives,
    is_common,
    trigger_report,
)

from ...support.helpers import make_concept


def test_reference_ids_through_the_tokenizer():
    tk = clip_tokenizer()
    ids = [tk.bos_id, *tk.encode("a photo of a dog"), tk.eos_id]
    assert ids == [49406, 320, 1125, 539, 320, 1929, 49407]


def test_common_piece_heuristic():
    tk = clip_tokenizer()
    enc = tk.encoder
    assert is_common("dog</w>", enc["dog</w>"])  # 1929
    assert is_common("dragon</w>", enc["dragon</w>"])
    assert not is_common("dog", enc["dog"])  # not word-final: not the word's token
    assert not is_common("ma</w>", enc["ma</w>"])  # too short to mean much
    assert not is_common("uma</w>", enc["uma</w>"])  # 9256: a 3-letter ending ("Buruma")
    assert not is_common("_</w>", enc["_</w>"])
    assert not is_common("mira</w>", enc["mira</w>"])  # known, but above COMMON_ID
    assert enc["mira</w>"] >= COMMON_ID


def test_common_pieces_flag_high_risk():
    r = trigger_report("sksdog")
    assert [p.text for p in r.pieces] == ["sk", "s", "dog"]
    assert r.ids == [909, 82, 1929]
    assert r.common == ["dog"] and r.risk == "high"
    assert any("dog" in reason for reason in r.reasons)


def test_guide_example_bulma_dbz():
    r = trigger_report("Bulma_DBZ")
    assert [p.text for p in r.pieces] == ["bul", "ma", "_", "dbz"]
    assert "dbz" in r.known  # one token CLIP knows: a concept already
    assert r.risk == "medium"
    assert trigger_report("Buruma").risk == "low"  # the guide's fix


def test_words_spelled_inside_are_flagged():
    r = trigger_report("bluedragon")
    assert [p.text for p in r.pieces] == ["blu", "ed", "ragon"]  # no piece is a word ...
    assert {"blue", "dragon"} <= set(r.hidden)  # ... but it still spells two
    assert r.risk != "low"
    r = trigger_report("Green_Turtleneck_Shirt", n_alternatives=0)
    assert {"green", "shirt"} <= set(r.common) and r.risk == "high"


def test_single_known_token_is_already_a_concept():
    r = trigger_report("ohwx")
    assert r.single_token and r.known == ["ohwx"] and r.risk == "medium"
    assert r.alternatives  # clean spellings, though no 2-3 pieces beat one rare id


def test_made_up_word_not_flagged():
    r = trigger_report("vrelkasz")
    assert r.risk == "low" and not (r.common or r.known or r.hidden)
    assert len(r.pieces) > 1


@pytest.mark.parametrize("word", ["sksdog", "Bulma_DBZ", "bluedragon"])
def test_alternatives_are_rarer_and_clean(word):
    r = trigger_report(word)
    assert len(r.alternatives) >= 3
    for alt in r.alternatives:
        assert 2 <= len(alt.pieces) <= 3
        assert alt.rarity > r.rarity
        again = trigger_report(alt.word, n_alternatives=0)
        assert again.risk == "low", alt.word
        assert [p.id for p in again.pieces] == [p.id for p in alt.pieces]
    rarities = [a.rarity for a in r.alternatives]
    assert rarities == sorted(rarities, reverse=True)


def test_alternatives_are_deterministic():
    assert [a.word for a in alternatives("sksdog")] == [a.word for a in alternatives("sksdog")]


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_sks", 2, caption="sksdog, 1girl")
    make_concept(root, "5_costume", 2, caption="sksdog_costume, solo")
    make_concept(root, "3_misc", 1, caption="1girl")
    (root / "10_sks" / "img_001.txt").write_text("SKSDOG, smile\n")  # CLIP lowercases
    return root


def test_dir_finds_occurrences(dataset):
    use = trigger_report("sksdog", dir=dataset).use
    assert use is not None
    assert (use.captions, use.exact, use.partial) == (5, 2, 2)
    assert {f.folder: (f.exact, f.partial, f.captions) for f in use.folders} == {
        "10_sks": (2, 0, 2), "5_costume": (0, 2, 2)}


def test_cli_json_schema(dataset, capsys):
    assert main(["trigger", "Bulma_DBZ", "--dir", str(dataset), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"word", "pieces", "ids", "count", "single_token", "rarity", "common",
                         "known", "hidden", "risk", "reasons", "alternatives", "captions"}
    assert data["word"] == "Bulma_DBZ" and data["ids"] == [2572, 1226, 318, 49226]
    assert data["count"] == 4 and data["risk"] == "medium"
    assert set(data["pieces"][0]) == {"piece", "token", "id", "word_final", "common"}
    assert data["pieces"][3] == {"piece": "dbz", "token": "dbz</w>", "id": 49226,
                                 "word_final": True, "common": False}
    assert set(data["alternatives"][0]) == {"word", "pieces", "ids", "rarity"}
    assert data["captions"]["exact"] == 0 and data["captions"]["captions"] == 5
    assert main(["trigger", "sksdog", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["captions"] is None


def test_cli_text(dataset, capsys):
    assert main(["trigger", "sksdog", "--dir", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "sk (909) | s (82) | dog* (1929)" in out
    assert "contamination risk: high" in out
    assert "rarer alternatives:" in out
    assert "2 have it as a tag, 2 inside a longer tag" in out
    assert main(["trigger", "  "]) == 1
