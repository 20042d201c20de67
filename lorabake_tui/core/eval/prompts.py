"""The prompts a grid starts with and the subject tag a probe pairs the word with, read from the
dataset's captions: the trigger is the tag most captions start with (the guide puts it first),
the subject the most common tag after it that says what the picture is of, not how good it is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..captions.store import CaptionRecord
from ..captions.tags import tag_key

# quality and meta words: common in captions, never the subject of the pictures
QUALITY = frozenset(tag_key(t) for t in (
    "masterpiece", "best quality", "high quality", "good quality", "normal quality",
    "low quality", "worst quality", "highres", "absurdres", "lowres", "amazing quality",
    "very aesthetic", "aesthetic", "score_9", "score_8_up", "score_7_up", "4k", "8k"))
TRIGGER_SHARE = 0.5  # the first tag of at least half the captions


def dataset_trigger(records: Iterable[CaptionRecord]) -> str | None:
    """The first tag of most captions (as written), if at least half of them start with it."""
    firsts: Counter[str] = Counter()
    forms: dict[str, str] = {}
    n = 0
    for rec in records:
        if rec.tags:
            n += 1
            key = tag_key(rec.tags[0])
            firsts[key] += 1
            forms.setdefault(key, rec.tags[0])
    if not firsts:
        return None
    key, count = firsts.most_common(1)[0]
    return forms[key] if count >= TRIGGER_SHARE * n else None


def top_tags(records: Iterable[CaptionRecord], n: int, *, skip: Iterable[str] = ()) -> list[str]:
    """The `n` most common tags (as first written), leaving out `skip` and quality words."""
    skipped = {tag_key(s) for s in skip} | QUALITY
    counts: Counter[str] = Counter()
    forms: dict[str, str] = {}
    for rec in records:
        for tag in rec.tags:
            key = tag_key(tag)
            if key not in skipped:
                forms.setdefault(key, tag)
        counts.update(k for k in rec.keys if k not in skipped)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [forms.get(k, k) for k, _ in ranked[:n]]


def subject_tag(records: list[CaptionRecord], word: str = "") -> str:
    """What a probe pairs the word with: the most common tag that is neither the trigger nor
    `word` nor a quality word; "" for a dataset without captions."""
    trigger = dataset_trigger(records)
    found = top_tags(records, 1, skip=[t for t in (trigger, word) if t])
    return found[0] if found else ""


def default_prompts(records: list[CaptionRecord], *, n_tags: int = 3) -> list[str]:
    """One prompt: the trigger, then the dataset's top tags (what the LoRA was taught)."""
    trigger = dataset_trigger(records)
    tags = top_tags(records, n_tags, skip=[trigger] if trigger else [])
    parts = ([trigger] if trigger else []) + tags
    return [", ".join(parts)] if parts else []
