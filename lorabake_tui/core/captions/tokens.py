"""Caption token counts as the trainer sees them: which tags the text encoder never reads.

The trainer reads a caption as its tags joined with ", " (kohya), tokenises it with CLIP's
tokenizer and keeps `max_token_length` tokens (75, 150 or 225; BOS and EOS not counted), read
as chunks of 75 that are each encoded on their own (trainer/text.py). So:

- tokens past the limit are cut: the tags they belong to are never (or only partly) read;
- a tag whose tokens straddle a 75-token chunk boundary is read as two halves that never
  attend to each other: worth moving;
- with shuffling on, the kept part (the first `keep_tokens` tags, or the text before
  `keep_tokens_separator`) is always read first, and the flexible tags after it take turns
  falling past the limit. `cut_worst` is how many flexible tags are cut when the longest come
  first; `cut_mean` estimates the average over random orders: a tag is cut when the tags drawn
  before it, about uniformly 0..n-1 of the others at their mean length, push its end past the
  budget (exact when the flexible tags are of equal length).

Speed: CLIP's pre-tokenizer never joins text across a space, so the tokens of ", "-joined tags
are the tokens of each "tag," in turn. Each distinct tag is tokenised once (with and without
its comma: "hello!," is one token) and a caption costs a few dict look-ups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clip_tokenizer import ClipTokenizer, clip_tokenizer
from .processing import CaptionRules

if TYPE_CHECKING:
    from .store import CaptionRecord, CaptionStore
    from .tagfilter import Filter

CHUNK = 75  # tokens per text-encoder pass (77 minus BOS and EOS)
MAX_LENGTHS = (75, 150, 225)
DEFAULT_MAX = 225
_CACHE_LIMIT = 200_000  # distinct tags remembered; a real vocabulary is far smaller


@dataclass(frozen=True, slots=True)
class TagTokens:
    tag: str
    start: int  # first token position (0-based, after BOS)
    end: int  # one past its last token, its comma excluded
    kept: bool  # in the fixed part that shuffling never moves

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class CaptionTokens:
    """One caption, in the order the trainer reads it (kept part first when shuffling)."""

    names: tuple[str, ...]  # the tags
    starts: tuple[int, ...]  # first token of each (0-based, after BOS)
    ends: tuple[int, ...]  # one past its last token, its comma excluded
    kept: int  # how many tags at the front shuffling never moves
    max_length: int
    shuffled: bool
    cut_mean: float  # tags not fully read, averaged over shuffles (the written order if not)
    cut_worst: int  # ... in the worst order

    @property
    def total(self) -> int:
        """Tokens of the whole caption."""
        return self.ends[-1] if self.ends else 0

    @property
    def tags(self) -> list[TagTokens]:
        return [TagTokens(n, s, e, i < self.kept) for i, (n, s, e)
                in enumerate(zip(self.names, self.starts, self.ends, strict=True))]

    @property
    def kept_total(self) -> int:
        """Tokens of the kept part (with its commas); 0 without shuffling."""
        return self.ends[self.kept - 1] if self.kept and self.shuffled else 0

    @property
    def over(self) -> int:
        """Tokens cut."""
        return max(0, self.total - self.max_length)

    @property
    def is_over(self) -> bool:
        return self.total > self.max_length

    @property
    def kept_over(self) -> bool:
        """The kept part alone does not fit: even the trigger may be cut."""
        return self.kept_total > self.max_length

    @property
    def cut_tags(self) -> list[str]:
        """Tags not fully read in the written order (with shuffling, in one of many orders)."""
        m = self.max_length
        return [n for n, e in zip(self.names, self.ends, strict=True) if e > m]

    @property
    def split_tags(self) -> list[tuple[str, int]]:
        """(tag, boundary) for tags read across a 75-token chunk boundary."""
        if self.total <= CHUNK:
            return []
        out = []
        for b in range(CHUNK, self.max_length, CHUNK):
            out.extend((n, b) for n, s, e in zip(self.names, self.starts, self.ends, strict=True)
                       if s < b < e)
        return out

    def to_json(self) -> dict:
        return {
            "tokens": self.total, "max_token_length": self.max_length,
            "cut_tokens": self.over, "cut_tags": self.cut_tags,
            "kept_tokens": self.kept_total, "kept_over": self.kept_over,
            "cut_tags_mean": round(self.cut_mean, 2), "cut_tags_worst": self.cut_worst,
            "split_tags": [{"tag": t, "boundary": b} for t, b in self.split_tags],
        }


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def read_parts(tags: Sequence[str], rules: CaptionRules | None
               ) -> tuple[list[str], list[str], list[str]]:
    """(kept, flexible, fixed tail) exactly as caption_processing.process_caption splits the
    caption when it shuffles; without shuffling everything is "flexible" in written order."""
    if rules is None or not (rules.shuffle or rules.tag_dropout_rate > 0
                             or rules.token_warmup_step > 0):
        return [], list(tags), []
    caption = ", ".join(tags)
    sep = rules.keep_tokens_separator
    if sep and sep in caption:
        fixed_text, flex_text = caption.split(sep, 1)
        tail: list[str] = []
        if sep in flex_text:  # a second separator closes a fixed tail
            flex_text, tail_text = flex_text.split(sep, 1)
            tail = _split(tail_text)
        return _split(fixed_text), _split(flex_text), tail
    parts = [t.strip() for t in caption.strip().split(",")]
    keep = max(0, rules.keep_tokens)
    return parts[:keep], parts[keep:], []


class TokenCounter:
    """Counts caption tokens with a per-tag cache; share one (`token_counter()`)."""

    def __init__(self, tokenizer: ClipTokenizer | None = None) -> None:
        self.tokenizer = tokenizer or clip_tokenizer()
        self._costs: dict[str, tuple[int, int]] = {}

    def cost(self, tag: str) -> tuple[int, int]:
        """(tokens of the tag, tokens of the tag followed by its comma)."""
        hit = self._costs.get(tag)
        if hit is None:
            count = self.tokenizer.count_tokens
            hit = (count(tag), count(tag + ","))
            if len(self._costs) > _CACHE_LIMIT:
                self._costs.clear()
            self._costs[tag] = hit
        return hit

    def count(self, tags: Sequence[str], rules: CaptionRules | None = None) -> int:
        """Tokens of the caption the trainer builds from `tags` (BOS/EOS not counted)."""
        if rules is not None:
            kept, flex, tail = read_parts(tags, rules)
            tags = kept + flex + tail
        if not tags:
            return 0
        cost = self.cost
        return sum(cost(t)[1] for t in tags) - cost(tags[-1])[1] + cost(tags[-1])[0]

    def analyse(self, tags: Sequence[str], max_length: int = DEFAULT_MAX,
                rules: CaptionRules | None = None) -> CaptionTokens:
        kept, flex, tail = read_parts(tags, rules)
        names = (*kept, *flex, *tail)
        cost = self.cost
        costs = [cost(t) for t in names]
        starts = [0]
        for _, with_comma in costs:
            starts.append(starts[-1] + with_comma)
        starts.pop()
        ends = [s + c[0] for s, c in zip(starts, costs, strict=True)]
        total = ends[-1] if ends else 0
        shuffled = rules is not None and rules.shuffle
        k = len(kept) if shuffled else 0
        if total <= max_length:
            mean: float = 0.0
            worst = 0
        elif not shuffled or not flex:
            worst = sum(1 for e in ends if e > max_length)
            mean = float(worst)
        else:
            # the kept part and the tail never move: only the flexible tags take turns
            f = len(flex)
            fixed_cut = sum(1 for e in ends[:k] + ends[k + f:] if e > max_length)
            budget = max_length - starts[k]
            flex_costs = costs[k:k + f]
            mean = fixed_cut + _mean_cut(flex_costs, budget)
            worst = fixed_cut + _worst_cut(flex_costs, budget)
        return CaptionTokens(names, tuple(starts), tuple(ends), k, max_length, shuffled,
                             mean, worst)


def _worst_cut(costs: list[tuple[int, int]], budget: int) -> int:
    """Flexible tags not fully read when the longest come first (fewest fit)."""
    pos = 0
    fit = 0
    for own, with_comma in sorted(costs, key=lambda c: -c[1]):
        if pos + own > budget:
            break
        fit += 1
        pos += with_comma
    return len(costs) - fit


def _mean_cut(costs: list[tuple[int, int]], budget: int) -> float:
    """Expected flexible tags cut over random orders (see the module docstring)."""
    n = len(costs)
    total = sum(c[1] for c in costs)
    cut = 0.0
    for own, with_comma in costs:
        room = budget - own  # tokens that may come before this tag for it to be read
        if room < 0:
            cut += 1.0
            continue
        others = n - 1
        if others == 0:
            continue
        mean_other = (total - with_comma) / others
        fits = math.floor(room / mean_other) + 1 if mean_other > 0 else others + 1
        cut += max(0, others + 1 - fits) / (others + 1)
    return cut


_shared: TokenCounter | None = None


def token_counter() -> TokenCounter:
    """The shared counter (its per-tag cache is what makes 10k captions cheap)."""
    global _shared
    if _shared is None:
        _shared = TokenCounter()
    return _shared


# ---- project settings -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenSettings:
    """What the trainer will use (the project model builds it from the config)."""

    max_length: int = DEFAULT_MAX
    rules: CaptionRules = field(default_factory=lambda: CaptionRules(shuffle=True,
                                                                     keep_tokens=1))
    source: str | None = None  # the config file read, if any


# ---- datasets -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CaptionTokenEntry:
    rel: str  # caption path relative to the dataset root
    image_rel: str
    folder: str
    tokens: CaptionTokens

    def to_json(self) -> dict:
        return {"path": self.rel, "image": self.image_rel, "folder": self.folder,
                **self.tokens.to_json()}


@dataclass(slots=True)
class TokenReport:
    max_length: int
    rules: CaptionRules
    entries: list[CaptionTokenEntry]  # every caption with tags, in dataset order

    def over(self, limit: int | None = None) -> list[CaptionTokenEntry]:
        n = self.max_length if limit is None else limit
        return [e for e in self.entries if e.tokens.total > n]

    def summary(self, limit: int | None = None) -> dict:
        totals = [e.tokens.total for e in self.entries]
        return {
            "captions": len(totals),
            "over": len(self.over(limit)),
            "max": max(totals, default=0),
            "mean": round(sum(totals) / len(totals), 2) if totals else 0.0,
            "kept_over": sum(1 for e in self.entries if e.tokens.kept_over),
            "split": sum(1 for e in self.entries if e.tokens.split_tags),
        }


def token_report(records: Iterable[CaptionRecord], settings: TokenSettings,
                 counter: TokenCounter | None = None) -> TokenReport:
    """Captions without tags (missing, empty, unreadable) are left out."""
    counter = counter or token_counter()
    entries = [CaptionTokenEntry(r.rel, r.image_rel, r.folder,
                                 counter.analyse(r.tags, settings.max_length, settings.rules))
               for r in records if r.tags]
    return TokenReport(settings.max_length, settings.rules, entries)


def matching_records(store: CaptionStore, flt: Filter | None, concept: str | None = None,
                     rules: CaptionRules | None = None,
                     counter: TokenCounter | None = None) -> list[CaptionRecord]:
    """store.matching, with token counts supplied when the filter asks for them."""
    if flt is None or not flt.uses_tokens:
        return store.matching(flt, concept)
    from .tagfilter import Subject

    counter = counter or token_counter()

    def match(r: CaptionRecord) -> bool:
        return flt.matches(Subject(r.keys, r.folder, len(r.tags), r.exists,
                                   counter.count(r.tags, rules)))

    return store.select(match, concept)
