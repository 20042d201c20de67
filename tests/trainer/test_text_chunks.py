"""Long captions (150/225 tokens) in 77-token chunks: equal chunks (the padding after a short
caption) are encoded once, and the states and gradients are those of encoding every chunk."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lorabake_tui.trainer.base_model import load_base_model  # noqa: E402
from lorabake_tui.trainer.network import attach, lora_configs, trainable  # noqa: E402
from lorabake_tui.trainer.text import encode, tokenize  # noqa: E402


def rows_seen(te) -> list[int]:
    seen: list[int] = []
    te.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    return seen


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_padding_chunks_are_encoded_once_with_the_same_states_and_gradients(clip_skip):
    m = load_base_model("builtin:tiny-sd15")
    attach(lora_configs("lora", 4, 2, 0, 0, 0.0, unet=False, text_encoder=True), m.unet,
           m.text_encoder)
    for p in trainable(m.text_encoder):  # LoRA up weights start at 0: give them a value
        torch.nn.init.normal_(p, std=0.05)
    captions = ["mychar, 1girl, red hair", "mychar, " + ", ".join(["smile"] * 60)]
    ids = tokenize(m.tokenizer, captions, 225)  # 2 x 3 chunks: 1st 1 row + 2 pads, 2nd 2 + 1
    seen = rows_seen(m.text_encoder)
    results = []
    for dedupe in (True, False):
        m.text_encoder.zero_grad(set_to_none=True)
        states = encode(m.text_encoder, ids, clip_skip, dedupe=dedupe)
        states.pow(2).mean().backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone()  # clip skip: none
                 for p in trainable(m.text_encoder)]
        results.append((states.detach(), grads))
    assert seen == [4, 6]  # the two all-padding chunks are one row
    (s1, g1), (s2, g2) = results
    assert s1.shape == s2.shape == (2, 227, s1.shape[-1])
    assert (s1 - s2).abs().max() <= 1e-5
    assert max((a - b).abs().max().item() for a, b in zip(g1, g2, strict=True)) <= 1e-6
    assert any(g.abs().max() > 0 for g in g1)


def test_nothing_to_share_leaves_the_rows_as_they_are():
    m = load_base_model("builtin:tiny-sd15")
    seen = rows_seen(m.text_encoder)
    ids = tokenize(m.tokenizer, ["mychar, 1girl", "mychar, solo"], 75)
    with torch.no_grad():
        a = encode(m.text_encoder, ids, 1)
        b = encode(m.text_encoder, ids, 1, dedupe=False)
    assert seen == [2, 2] and torch.equal(a, b)
