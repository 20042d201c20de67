"""kohya's per-step caption processing (kohya-compat section 4)."""

import random

from lorabake_tui.core.captions.processing import CaptionRules, process_caption

CAP = "mychar, 1girl, red hair, smile, outdoors"


def run(rules, caption=CAP, seed=0, **kw):
    return process_caption(caption, rules, random.Random(seed), **kw)


def test_nothing_on_returns_the_caption_untouched():
    assert run(CaptionRules()) == CAP
    assert CaptionRules().deterministic


def test_shuffle_keeps_the_first_tokens_and_permutes_the_rest():
    rules = CaptionRules(shuffle=True, keep_tokens=1)
    seen = set()
    for seed in range(30):
        tags = run(rules, seed=seed).split(", ")
        assert tags[0] == "mychar"
        assert sorted(tags[1:]) == sorted(["1girl", "red hair", "smile", "outdoors"])
        seen.add(tuple(tags))
    assert len(seen) > 5
    assert not rules.deterministic


def test_separator_wins_over_keep_tokens_and_a_second_one_fixes_a_tail():
    rules = CaptionRules(shuffle=True, keep_tokens=3, keep_tokens_separator="|||")
    for seed in range(20):
        out = run(rules, "mychar, red hair ||| smile, outdoors, sky ||| masterpiece", seed)
        tags = out.split(", ")
        assert tags[:2] == ["mychar", "red hair"]
        assert tags[-1] == "masterpiece"
        assert sorted(tags[2:-1]) == ["outdoors", "sky", "smile"]


def test_caption_dropout_rate_and_every_n_epochs():
    rules = CaptionRules(caption_dropout_rate=0.5)
    outs = [run(rules, seed=s) for s in range(200)]
    empty = outs.count("")
    assert 60 < empty < 140 and set(outs) == {"", CAP}
    every = CaptionRules(caption_dropout_every_n_epochs=3)
    assert run(every, epoch=1) == CAP and run(every, epoch=3) == "" and run(every, epoch=6) == ""


def test_tag_dropout_only_drops_flexible_tags():
    rules = CaptionRules(keep_tokens=1, tag_dropout_rate=1.0)
    assert run(rules) == "mychar"
    rules = CaptionRules(keep_tokens=1, tag_dropout_rate=0.5)
    lens = {len(run(rules, seed=s).split(", ")) for s in range(50)}
    assert min(lens) >= 1 and len(lens) > 2


def test_token_warmup_grows_the_flexible_part_with_the_step():
    rules = CaptionRules(keep_tokens=1, token_warmup_min=1, token_warmup_step=8)
    # 4 flexible tags: floor(step * (4 - 1) / 8) + 1 of them
    assert run(rules, step=0) == "mychar, 1girl"
    assert run(rules, step=3) == "mychar, 1girl, red hair"
    assert run(rules, step=7) == "mychar, 1girl, red hair, smile"
    assert run(rules, step=8) == CAP
    # a fraction is a share of the run
    frac = CaptionRules(keep_tokens=1, token_warmup_step=0.5)
    assert run(frac, step=0, max_train_steps=16) == "mychar, 1girl"
    assert run(frac, step=8, max_train_steps=16) == CAP


def test_prefix_and_suffix_are_added_before_everything():
    rules = CaptionRules(prefix="trig,", suffix=", end", shuffle=True, keep_tokens=1)
    tags = run(rules).split(", ")
    assert tags[0] == "trig" and "end" in tags
