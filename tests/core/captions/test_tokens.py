"""Caption token counts as the trainer reads them: cut tags, kept part, chunk boundaries,
the `tokens>N` filter term and `lorabake tags DIR tokens`."""

from __future__ import annotations

import json
import random

import pytest

from lorabake_tui.cli import main
from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.captions.clip_tokenizer import clip_tokenizer
from lorabake_tui.core.captions.processing import CaptionRules, process_caption
from lorabake_tui.core.captions.tagfilter import FilterError, Subject, parse_filter
from lorabake_tui.core.captions.tokens import (
    TokenCounter,
    read_parts,
    token_counter,
)

from ...support.helpers import make_concept

SHUFFLE_KEEP1 = CaptionRules(shuffle=True, keep_tokens=1)


def single_token_words(n: int) -> list[str]:
    """n distinct words that are one token each (and two with their comma)."""
    tk = clip_tokenizer()
    out = []
    for tok in tk.decoder[1000:]:
        w = tok.removesuffix("</w>")
        if tok.endswith("</w>") and w.isascii() and w.isalpha() and len(w) > 2 \
                and tk.tokens(w) == [tok] and len(tk.tokens(w + ",")) == 2:
            out.append(w)
            if len(out) == n:
                return out
    raise AssertionError("vocabulary too small")


WORDS = single_token_words(60)


# ---- counting ---------------------------------------------------------------------------

@pytest.mark.parametrize("tags", [
    ["a photo of a dog"],
    ["1girl", "long_hair", "blue eyes"],
    ["hello!", "!?", "^_^", "photo \\(medium\\)", "it's", "café", "東方"],
    ["a...", "t-shirt", "red_skirt_blue_sweater_gray_thighhighs_green_highheels"],
])
def test_counts_match_the_tokenizer_on_the_joined_caption(tags):
    tk = clip_tokenizer()
    assert TokenCounter().count(tags) == len(tk.tokens(", ".join(tags)))


def test_known_counts():
    c = TokenCounter()
    assert c.count(["a photo of a dog"]) == 5
    assert c.count(["1girl", "long_hair"]) == 6  # 1 girl , long _ hair
    assert c.count([]) == 0
    t = c.analyse(["1girl", "long_hair"], 75)
    assert [(x.tag, x.start, x.end) for x in t.tags] == [("1girl", 0, 2), ("long_hair", 3, 6)]


def test_random_captions_agree_with_the_tokenizer():
    tk = clip_tokenizer()
    rng = random.Random(1)
    pool = WORDS + ["long_hair", "hello!", "a, b".replace(",", ""), "^_^", "x...", "ok?!"]
    c = TokenCounter()
    for _ in range(200):
        tags = [rng.choice(pool) + rng.choice(["", "_x", " y"]) for _ in range(rng.randint(1, 50))]
        assert c.count(tags) == len(tk.tokens(", ".join(tags)))


def test_cut_tags_in_written_order():
    tags = WORDS[:40]  # 40 tokens + 39 commas = 79
    t = TokenCounter().analyse(tags, 75)
    assert t.total == 79 and t.over == 4 and t.is_over
    # tag i takes position 2i; the last two end past 75
    assert t.cut_tags == WORDS[38:40]
    assert t.cut_mean == 2 and t.cut_worst == 2
    assert not TokenCounter().analyse(tags, 150).is_over


def test_separator_removed_and_kept_part_counted():
    rules = CaptionRules(shuffle=True, keep_tokens_separator="|||")
    tags = ["mira", f"{WORDS[0]} ||| {WORDS[1]}", WORDS[2]]
    kept, flex, tail = read_parts(tags, rules)
    assert kept == ["mira", WORDS[0]] and flex == [WORDS[1], WORDS[2]] and tail == []
    t = TokenCounter().analyse(tags, 75, rules)
    assert t.kept == 2 and t.kept_total == 3  # mira , word
    assert t.total == 7  # the separator is not read
    assert TokenCounter().count(tags, rules) == 7
    assert TokenCounter().count(tags) == 8  # unshuffled, "|||" stays in the text


def test_read_parts_matches_process_caption():
    rng = random.Random(3)
    for rules in (SHUFFLE_KEEP1, CaptionRules(shuffle=True, keep_tokens=3),
                  CaptionRules(shuffle=True, keep_tokens_separator="|||")):
        tags = ["trigger ||| a", *WORDS[:10]] if rules.keep_tokens_separator else WORDS[:12]
        kept, flex, tail = read_parts(tags, rules)
        out = process_caption(", ".join(tags), rules, rng).split(", ")
        assert out[:len(kept)] == kept
        assert sorted(out[len(kept):]) == sorted(flex + tail)


def test_kept_part_alone_overflows():
    huge = " ".join(WORDS[:40] * 2)  # one tag of 80 tokens
    t = TokenCounter().analyse([huge, *WORDS[:5]], 75, SHUFFLE_KEEP1)
    assert t.kept_total == 80 and t.kept_over
    assert t.cut_worst == 6 and t.cut_mean == 6  # the kept tag and every flexible one
    assert not TokenCounter().analyse([huge, *WORDS[:5]], 150, SHUFFLE_KEEP1).kept_over


def test_shuffled_equal_tags_mean_is_exact():
    # kept tag + comma = 2 tokens, budget 73: flexible tag k ends at 2k + 1 -> 37 fit
    t = TokenCounter().analyse(WORDS[:46], 75, SHUFFLE_KEEP1)
    assert t.cut_worst == 45 - 37
    assert t.cut_mean == pytest.approx(45 - 37)


def test_shuffled_mean_estimate_is_close_to_simulation():
    rng = random.Random(7)
    long_tags = [" ".join(rng.sample(WORDS, rng.randint(2, 6))) for _ in range(20)]
    c = TokenCounter()
    for _ in range(3):
        tags = ["mira", *rng.sample(long_tags + WORDS[:20], 25)]
        t = c.analyse(tags, 75, SHUFFLE_KEEP1)
        assert t.is_over
        counts = []
        for _ in range(400):
            flex = tags[1:]
            rng.shuffle(flex)
            counts.append(len(c.analyse([tags[0], *flex], 75).cut_tags))
        assert abs(sum(counts) / len(counts) - t.cut_mean) < 0.6
        assert max(counts) <= t.cut_worst


def test_chunk_boundary_split_flagged():
    three = " ".join(WORDS[50:53])  # a 3-token tag
    # 37 one-token tags end at 73; their comma is 73, so the next tag starts at 74
    tags = [*WORDS[:37], three, *WORDS[37:40]]
    t = TokenCounter().analyse(tags, 150)
    assert [(x.start, x.end) for x in t.tags if x.tag == three] == [(74, 77)]
    assert t.split_tags == [(three, 75)]
    assert not t.is_over
    assert TokenCounter().analyse(tags, 75).split_tags == []  # at 75 it is cut, not split
    assert TokenCounter().analyse(WORDS[:40], 225).split_tags == []  # 74 is a comma


def test_many_random_captions_share_one_cache_and_agree_with_a_fresh_counter():
    # the speed of this is bench/bench_tokens.py's; here: the cache never changes an answer
    rng = random.Random(0)
    vocab = WORDS + [f"tag{i}_{rng.choice(WORDS)}" for i in range(300)]
    caps = [[rng.choice(vocab) for _ in range(rng.randint(5, 35))] for _ in range(2_000)]
    shared = TokenCounter()
    results = [shared.analyse(tags, 75, SHUFFLE_KEEP1) for tags in caps]
    assert any(r.is_over for r in results) and not all(r.is_over for r in results)
    for n in rng.sample(range(len(caps)), 50):
        fresh = TokenCounter().analyse(caps[n], 75, SHUFFLE_KEEP1)
        assert (fresh.is_over, fresh.split_tags) == (results[n].is_over, results[n].split_tags)


# ---- filter -----------------------------------------------------------------------------

def test_filter_tokens_term():
    f = parse_filter("tokens>75")
    assert f.uses_tokens and f.explain() == "tokens>75"
    assert f.matches(Subject.from_tags(["a"], tokens=80))
    assert not f.matches(Subject.from_tags(["a"], tokens=75))
    assert parse_filter("tokens <= 10").matches(Subject.from_tags(["a"], tokens=10))
    g = parse_filter("mira AND NOT tokens>=100")
    assert g.uses_tokens
    assert g.matches(Subject.from_tags(["mira"], tokens=99))
    assert not g.matches(Subject.from_tags(["mira"], tokens=100))
    assert not parse_filter("tags>3 OR mira").uses_tokens
    assert parse_filter("tokens").matches(Subject.from_tags(["tokens"]))  # a plain tag


def test_filter_tokens_needs_counts_and_numbers():
    with pytest.raises(LorabakeError):
        parse_filter("tokens>5").matches(Subject.from_tags(["a"]))
    with pytest.raises(FilterError) as exc:
        parse_filter("tokens>many")
    assert "after 'tokens>'" in str(exc.value)


# ---- CLI --------------------------------------------------------------------------------

@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    make_concept(root, "10_mira", 3, caption="mira, 1girl, smile")
    long = ", ".join(["mira", *WORDS[:45]])  # 45 + 45 + 1 = 91 tokens
    (root / "10_mira" / "img_001.txt").write_text(long + "\n")
    make_concept(root, "5_misc", 1, caption="1girl, outdoors")
    return root


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_tokens_json(dataset, capsys):
    data = run_json(capsys, "tags", str(dataset), "tokens", "--max", "75", "--json")
    assert data["max_token_length"] == 75 and data["over"] == 75
    assert data["shuffle"] is True and data["keep_tokens"] == 1
    assert data["summary"] == {"captions": 4, "over": 1, "max": 91, "mean": 26.75,
                               "kept_over": 0, "split": 0}
    [cap] = data["captions"]
    assert set(cap) == {"path", "image", "folder", "tokens", "max_token_length", "cut_tokens",
                        "cut_tags", "kept_tokens", "kept_over", "cut_tags_mean",
                        "cut_tags_worst", "split_tags"}
    assert cap["path"] == "10_mira/img_001.txt" and cap["folder"] == "10_mira"
    assert cap["tokens"] == 91 and cap["cut_tokens"] == 16
    assert cap["cut_tags"] == WORDS[37:45]  # "mira," is 2, tag k ends at 2k + 3
    assert cap["cut_tags_worst"] == 8 and cap["kept_tokens"] == 1


def test_cli_tokens_over_keep_and_text(dataset, capsys):
    data = run_json(capsys, "tags", str(dataset), "tokens", "--over", "5", "--json")
    assert data["max_token_length"] == 225 and data["summary"]["over"] == 3
    assert [c["tokens"] for c in data["captions"]] == [91, 6, 6]  # most first
    assert data["split"] == []  # one-token tags never straddle a chunk boundary
    data = run_json(capsys, "tags", str(dataset), "tokens", "--max", "75", "--keep-tokens",
                    "0", "--no-shuffle", "--json")
    assert data["shuffle"] is False and data["keep_tokens"] == 0
    assert main(["tags", str(dataset), "tokens", "--max", "75"]) == 0
    out = capsys.readouterr().out
    assert "91  10_mira/img_001.txt  cut 16 token(s)" in out
    assert "1 over 75 tokens, max 91" in out


def test_cli_tokens_split_listed(dataset, capsys):
    three = " ".join(WORDS[50:53])
    (dataset / "5_misc" / "img_000.txt").write_text(", ".join([*WORDS[:37], three]) + "\n")
    data = run_json(capsys, "tags", str(dataset), "tokens", "--json")
    assert data["split"] == [{"path": "5_misc/img_000.txt",
                              "tags": [{"tag": three, "boundary": 75}]}]
    assert data["summary"]["split"] == 1 and data["captions"] == []
    assert main(["tags", str(dataset), "tokens"]) == 0
    assert f"5_misc/img_000.txt: {three} (at 75)" in capsys.readouterr().out


def test_cli_tokens_reads_project_config(dataset, capsys):
    cfg = dataset / ".lorabake" / "training.toml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text("[general]\nmax_token_length = 75\n")
    data = run_json(capsys, "tags", str(dataset), "tokens", "--json")
    assert data["max_token_length"] == 75 and data["summary"]["over"] == 1


def test_cli_filter_tokens(dataset, capsys):
    data = run_json(capsys, "tags", str(dataset), "list", "--filter", "tokens>75", "--json")
    assert data["images"] == 1
    data = run_json(capsys, "tags", str(dataset), "list", "--filter", "tokens<=4", "--json")
    assert data["images"] == 1  # "1girl, outdoors"


def test_shared_counter_is_reused():
    assert token_counter() is token_counter()
