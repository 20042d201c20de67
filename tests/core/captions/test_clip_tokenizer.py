"""The pure-Python CLIP tokenizer agrees with transformers' and stays light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lorabake_tui.core.captions.clip_tokenizer import ClipTokenizer, clip_tokenizer, count_tokens

from ...support.paths import REPO

ROOT = REPO

SAMPLES = [
    "a photo of a dog",
    "1girl, hatsune_miku, (smile:1.2)",
    "masterpiece, best quality, ((highres)), [lowres:0.5], {blue eyes}",
    "score_9, score_8_up, rating_safe",
    "solo, long_hair, looking_at_viewer, blue_eyes, 2boys, 3d",
    "3.14159 12345 1e-5 2024-01-31",
    "Café crème brûlée, naïve résumé, ÉCOLE",
    "e\u0301 combining accent, NFC folds it",
    "ΟΔΟΣ Σίσυφος",
    "İstanbul straße ẞ ǅungla ﬁne ﬀ",
    "日本語のテキスト、中文，한국어",
    "emoji 🐶🔥 party 🎉 flags 🇯🇵",
    "¯\\_(ツ)_/¯",
    "&amp; &lt;b&gt; fish &amp;amp; chips &#39;",
    "  lots   of\twhite\nspace\r\n  ",
    "a\u00a0b\u2003c\u200bd",
    "it's they're we've I'm you'll he'd don't 'tis O'Neil",
    "a <|endoftext|> b <|startoftext|>c",
    "!<|endoftext|>x <|ENDOFTEXT|>",
    "email@example.com http://x.y/z?q=1#f",
    "Ⅻ ½ ² ٣ ߂",
    "\u0000null\x7f and x\x1cy\x85w",
    "",
    "   ",
    "mira_(character), by artist, <lora:thing:0.8>",
    "A close-up portrait of an elderly woman with silver hair, soft window light, shallow depth "
    "of field, 85mm lens, film grain, muted colour palette, looking out at a rainy street",
    "very long caption with many words " * 20,
    "UPPER lower MiXeD",
    "-_-;;; ...!!! ???",
    "tab\tsep, comma,,double,, end.",
]


@pytest.fixture(scope="module")
def tok() -> ClipTokenizer:
    return clip_tokenizer()


def test_known_ids(tok):
    assert tok.encode("a photo of a dog") == [320, 1125, 539, 320, 1929]
    ids = [tok.bos_id, *tok.encode("a photo of a dog"), tok.eos_id]
    assert ids == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert tok.tokens("a photo of a dog") == ["a</w>", "photo</w>", "of</w>", "a</w>", "dog</w>"]
    assert tok.vocab_size == 49408
    assert count_tokens("a photo of a dog") == 5
    assert ClipTokenizer.load() is tok


def test_decode_round_trip(tok):
    assert tok.decode(tok.encode("A Photo of a DOG")) == "a photo of a dog"
    ids = [tok.bos_id, *tok.encode("hi"), tok.eos_id]
    assert tok.decode(ids) == "hi"


# tokenizers deprecates building BPE from vocab/merges files, which transformers still does
@pytest.mark.filterwarnings("ignore:Deprecated in 0.9.0:DeprecationWarning")
def test_matches_transformers(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    tok.write_hf_files(tmp_path)
    assert (tmp_path / "merges.txt").read_text().startswith("#version: 0.2\n")
    hf = transformers.CLIPTokenizer.from_pretrained(tmp_path, model_max_length=77)
    assert hf.model_max_length == 77
    assert hf.pad_token == "<|endoftext|>" and hf.pad_token_id == 49407
    assert (hf.bos_token_id, hf.eos_token_id, len(hf)) == (49406, 49407, 49408)
    for text in SAMPLES:
        want = hf(text, truncation=False)["input_ids"]
        assert [tok.bos_id, *tok.encode(text), tok.eos_id] == want, text
        assert tok.decode(want) == hf.decode(want, skip_special_tokens=True), text
    padded = hf("a dog", padding="max_length", max_length=77, truncation=True)["input_ids"]
    assert len(padded) == 77 and padded[-1] == 49407


def test_import_stays_light():
    probe = ("import sys, lorabake_tui.core.captions.clip_tokenizer as m; "
             "m.clip_tokenizer().encode('x');"
             "print(' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    mods = set(out.stdout.split())
    assert "lorabake_tui.core.captions.clip_tokenizer" in mods
    assert not {"torch", "transformers", "diffusers", "tokenizers", "textual"} & mods
