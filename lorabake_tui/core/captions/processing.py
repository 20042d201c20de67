"""What kohya does to a caption each time an image is drawn for a step (train_util's
process_caption): the one definition the trainer uses and the UI can preview.

Order: prefix/suffix, whole-caption dropout, then (when shuffling, token warmup or tag
dropout is on) split on commas into a fixed part (the first `keep_tokens` tags, or the text
before `keep_tokens_separator`, which wins) and a flexible part; warmup truncates the flexible
part, it is shuffled, each flexible tag may be dropped, and everything is joined with ", ".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CaptionRules:
    shuffle: bool = False
    keep_tokens: int = 0
    keep_tokens_separator: str = ""
    caption_dropout_rate: float = 0.0
    caption_dropout_every_n_epochs: int = 0
    tag_dropout_rate: float = 0.0
    token_warmup_min: int = 1
    token_warmup_step: float = 0  # < 1: a fraction of the run's steps (kohya's convention)
    prefix: str = ""
    suffix: str = ""

    @property
    def deterministic(self) -> bool:
        """True when every draw of a caption gives the same text (text-encoder outputs can
        then be cached)."""
        return not (self.shuffle or self.caption_dropout_rate > 0
                    or self.caption_dropout_every_n_epochs > 0 or self.tag_dropout_rate > 0
                    or self.token_warmup_step > 0)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def warmup_steps(rules: CaptionRules, max_train_steps: int) -> int:
    w = rules.token_warmup_step
    return math.floor(w * max_train_steps) if 0 < w < 1 else int(w)


def process_caption(caption: str, rules: CaptionRules, rng: random.Random, *, epoch: int = 1,
                    step: int = 0, max_train_steps: int = 0) -> str:
    """`epoch` counts from 1 (as kohya's every-n-epochs dropout does); `step` from 0."""
    if rules.prefix:
        caption = f"{rules.prefix} {caption}"
    if rules.suffix:
        caption = f"{caption} {rules.suffix}"
    dropped = rules.caption_dropout_rate > 0 and rng.random() < rules.caption_dropout_rate
    every = rules.caption_dropout_every_n_epochs
    if dropped or (every > 0 and epoch % every == 0):
        return ""
    warmup = warmup_steps(rules, max_train_steps)
    if not (rules.shuffle or warmup > 0 or rules.tag_dropout_rate > 0):
        return caption
    sep = rules.keep_tokens_separator
    suffix: list[str] = []
    if sep and sep in caption:
        fixed_text, flex_text = caption.split(sep, 1)
        if sep in flex_text:  # a second separator closes a fixed tail
            flex_text, tail = flex_text.split(sep, 1)
            suffix = _split(tail)
        fixed, flex = _split(fixed_text), _split(flex_text)
    else:
        tags = [t.strip() for t in caption.strip().split(",")]
        keep = max(0, rules.keep_tokens)
        fixed, flex = tags[:keep], tags[keep:]
    if warmup > 0 and step < warmup:
        n = math.floor(step * (len(flex) - rules.token_warmup_min) / warmup) \
            + rules.token_warmup_min
        flex = flex[:n]
    if rules.shuffle:
        rng.shuffle(flex)
    if rules.tag_dropout_rate > 0:
        flex = [t for t in flex if rng.random() >= rules.tag_dropout_rate]
    return ", ".join(fixed + flex + suffix)
