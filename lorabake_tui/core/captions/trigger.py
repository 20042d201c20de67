"""Is a trigger word free? How CLIP splits it, what its pieces already mean, rarer spellings.

The guide's "negative contamination": a trigger such as "Bulma_DBZ" or "sksdog" is read by
the text encoder as its pieces, and pieces that are known words drag their meaning into the
LoRA ("dbz", "dog"). The tokenizer itself says which pieces those are; no word list is shipped:

- Byte-pair merges are learned most frequent first, so a token's id orders it by frequency in
  CLIP's training text. A word-final token (`dog</w>`) is the very token the stand-alone word
  uses, whatever comes before it in the trigger.
- A piece is a *common word* when it is a word-final token of letters, at least 3 long, with an
  id below COMMON_ID (10,000: "dog" 1929, "dragon" 5471, "shirt" 2523). Three-letter tokens
  must be below SHORT_COMMON_ID (5,000): above it they are mostly word endings ("uma" 9256 in
  the guide's own fix "Buruma"). Very frequent endings ("ing", "ers") still count: they are
  frequent tokens, and the report says which piece and id it objects to.
- A *known word* is a run of letters the vocabulary holds as one token at any id ("dbz",
  "sks", "ohwx", "mira"): CLIP has learnt something for it, so the trigger is already a
  concept. Check it renders noise.
- A *hidden word* is a common word of 4+ letters spelled inside a longer run that BPE split
  differently ("bluedragon" -> blu|ed|ragon, spelling "blue" and "dragon"): a milder risk.

Rarer alternatives change one to three of the trigger's letters (a vowel for a vowel, a
consonant for a similar one), with as few changes as give enough of them; they keep those that
read as 2 or 3 pieces, with none of the risks above and no piece that is a common word in
either form, and whose rarity (the mean token id of the pieces, higher is rarer) beats the
trigger's; rarest first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import regex

from .clip_tokenizer import ClipTokenizer, clip_tokenizer

COMMON_ID = 10_000
SHORT_COMMON_ID = 5_000
MIN_WORD = 3  # shorter word-final tokens ("ma", "ok") carry little meaning of their own
HIDDEN_MIN = 4
ALTERNATIVES = 5
_END = "</w>"
_LETTERS = regex.compile(r"\p{L}+")
_VOWELS = "aeiouy"
# consonants that sound alike, so an alternative still reads like the trigger
_SWAPS = {"b": "pv", "p": "b", "d": "t", "t": "d", "g": "k", "k": "gq", "c": "k", "q": "k",
          "v": "fw", "f": "v", "w": "v", "s": "z", "z": "sx", "x": "z", "m": "n", "n": "m",
          "l": "r", "r": "l", "j": "y", "h": ""}
MAX_EDITS = 3
_MAX_CANDIDATES = 8_000  # spellings tried at most: ~0.5 s for a long trigger


@dataclass(frozen=True, slots=True)
class Piece:
    token: str  # the vocab entry, e.g. "dog</w>"
    id: int
    common: bool  # a common word (see the module docstring)

    @property
    def text(self) -> str:
        return self.token.removesuffix(_END)

    @property
    def word_final(self) -> bool:
        return self.token.endswith(_END)

    def to_json(self) -> dict:
        return {"piece": self.text, "token": self.token, "id": self.id,
                "word_final": self.word_final, "common": self.common}


@dataclass(frozen=True, slots=True)
class Alternative:
    word: str
    pieces: tuple[Piece, ...]

    @property
    def rarity(self) -> float:
        return _rarity(self.pieces)

    def to_json(self) -> dict:
        return {"word": self.word, "pieces": [p.text for p in self.pieces],
                "ids": [p.id for p in self.pieces], "rarity": round(self.rarity, 1)}


@dataclass(slots=True)
class FolderUse:
    folder: str
    captions: int  # captions read in the folder
    exact: int  # captions having the trigger as a tag
    partial: int  # captions having it inside a longer tag only


@dataclass(slots=True)
class CaptionUse:
    dir: str
    captions: int
    exact: int
    partial: int
    folders: list[FolderUse]  # only folders where it occurs

    def to_json(self) -> dict:
        return {"dir": self.dir, "captions": self.captions, "exact": self.exact,
                "partial": self.partial,
                "folders": [{"folder": f.folder, "captions": f.captions, "exact": f.exact,
                             "partial": f.partial} for f in self.folders]}


@dataclass(slots=True)
class TriggerReport:
    word: str
    pieces: tuple[Piece, ...]
    common: list[str]  # pieces that are common words
    known: list[str]  # runs of letters the vocabulary knows as one token
    hidden: list[str]  # common words spelled inside, split apart by BPE
    alternatives: list[Alternative] = field(default_factory=list)
    use: CaptionUse | None = None

    @property
    def ids(self) -> list[int]:
        return [p.id for p in self.pieces]

    @property
    def rarity(self) -> float:
        return _rarity(self.pieces)

    @property
    def single_token(self) -> bool:
        """The whole trigger is one vocab token: already a concept for CLIP."""
        return len(self.pieces) == 1

    @property
    def risk(self) -> str:
        if self.common:
            return "high"
        if self.known or self.hidden:
            return "medium"
        return "low"

    @property
    def reasons(self) -> list[str]:
        out = []
        ids = {p.text: p.id for p in self.pieces}
        for w in self.common:
            out.append(f"'{w}' is a common word (token id {ids[w]}): the trigger carries its "
                       "meaning")
        for w in self.known:
            out.append(f"'{w}' is one known token (id {ids.get(w, '?')}): CLIP already has a "
                       "meaning for it; check that it renders noise")
        for w in self.hidden:
            out.append(f"'{w}' is spelled inside it: some of its meaning may bleed in")
        return out

    def to_json(self) -> dict:
        return {
            "word": self.word, "pieces": [p.to_json() for p in self.pieces], "ids": self.ids,
            "count": len(self.pieces), "single_token": self.single_token,
            "rarity": round(self.rarity, 1), "common": self.common, "known": self.known,
            "hidden": self.hidden, "risk": self.risk, "reasons": self.reasons,
            "alternatives": [a.to_json() for a in self.alternatives],
            "captions": self.use.to_json() if self.use else None,
        }


def _rarity(pieces: Iterable[Piece]) -> float:
    ids = [p.id for p in pieces]
    return sum(ids) / len(ids) if ids else 0.0


def is_common(token: str, token_id: int) -> bool:
    """A word-final token of letters that is a frequent word (see the module docstring)."""
    if not token.endswith(_END):
        return False
    text = token[: -len(_END)]
    if len(text) < MIN_WORD or not text.isalpha():
        return False
    return token_id < (SHORT_COMMON_ID if len(text) == MIN_WORD else COMMON_ID)


class _Analyser:
    def __init__(self, tokenizer: ClipTokenizer) -> None:
        self.tk = tokenizer

    def pieces(self, word: str) -> tuple[Piece, ...]:
        enc = self.tk.encoder
        return tuple(Piece(t, enc[t], is_common(t, enc[t])) for t in self.tk.tokens(word))

    def risks(self, word: str, pieces: tuple[Piece, ...]
              ) -> tuple[list[str], list[str], list[str]]:
        common = list(dict.fromkeys(p.text for p in pieces if p.common))
        known: list[str] = []
        hidden: list[str] = []
        for run in _LETTERS.findall(word.lower()):
            if len(self.tk.tokens(run)) == 1:  # the run is one token: a word CLIP knows
                if run not in common and len(run) >= MIN_WORD:
                    known.append(run)
                continue
            hidden.extend(self._hidden(run, common))
        return common, list(dict.fromkeys(known)), list(dict.fromkeys(hidden))

    def _hidden(self, run: str, common: list[str]) -> list[str]:
        enc = self.tk.encoder
        hits = []
        for i in range(len(run)):
            for j in range(i + HIDDEN_MIN, len(run) + 1):
                sub = run[i:j]
                tid = enc.get(sub + _END)
                if tid is not None and tid < COMMON_ID and sub not in common:
                    hits.append(sub)
        # "dragon" says it all; "drag" inside it adds nothing
        return [h for h in hits if not any(h != o and h in o for o in hits)]


def _edits(word: str) -> Iterable[str]:
    """One letter changed: a vowel for another vowel, a consonant for a similar one."""
    for i, ch in enumerate(word):
        subs = _VOWELS.replace(ch, "") if ch in _VOWELS else _SWAPS.get(ch, "")
        for s in subs:
            yield word[:i] + s + word[i + 1:]


def _candidates(base: str) -> Iterable[list[str]]:
    """Spellings of the trigger's letters, by letters changed: [base], then 1, 2, 3 changes."""
    seen = {base}
    level = [base]
    budget = _MAX_CANDIDATES
    yield level
    for _ in range(MAX_EDITS):
        nxt = []
        for w in level:
            for e in _edits(w):
                if e not in seen and budget > 0:
                    seen.add(e)
                    nxt.append(e)
                    budget -= 1
        if not nxt:
            return
        yield nxt
        level = nxt


def alternatives(word: str, n: int = ALTERNATIVES,
                 tokenizer: ClipTokenizer | None = None) -> list[Alternative]:
    """Rarer spellings (higher mean id than the trigger's, unless it is one token): 2-3
    pieces (more only for a long trigger), no common, known or hidden words; the fewest
    letters changed that give `n` of them, rarest first."""
    a = _Analyser(tokenizer or clip_tokenizer())
    base = "".join(_LETTERS.findall(word.lower()))
    if not base or n <= 0:
        return []
    original = word.lower()
    own = a.pieces(word)
    # a single known token has no rarer 2-3 piece spelling by mean id: any clean one will do
    floor = _rarity(own) if len(own) > 1 else 0.0
    flagged = {w for ws in a.risks(word, own) for w in ws}
    enc = a.tk.encoder
    # 2-3 pieces; a long trigger cannot get there, so it may keep as many as it has now
    most = max(3, len(a.pieces(base)))
    scored: list[tuple[bool, float, int, str, tuple[Piece, ...]]] = []
    for changed, level in enumerate(_candidates(base)):
        for cand in level:
            if cand == original:
                continue
            pieces = a.pieces(cand)
            if not 2 <= len(pieces) <= most or _rarity(pieces) <= floor:
                continue
            # stricter than the report: no piece of 3+ letters that is a common word in
            # either form ("mud" inside "bulmudpz" is not the token "mud</w>", but reads as
            # mud), and nothing the original was flagged for
            if any(p.text in flagged or (len(p.text) >= MIN_WORD
                                         and enc.get(p.text + _END, COMMON_ID) < COMMON_ID)
                   for p in pieces):
                continue
            if any(a.risks(cand, pieces)):
                continue
            scored.append((len(pieces) > 3, -_rarity(pieces), changed, cand, pieces))
        if len(scored) >= n:
            break
    scored.sort(key=lambda s: s[:4])
    return [Alternative(cand, pieces) for *_, cand, pieces in scored[:n]]


def trigger_report(word: str, *, dir: Path | str | None = None, n_alternatives: int = ALTERNATIVES,
                   tokenizer: ClipTokenizer | None = None) -> TriggerReport:
    word = word.strip()
    tk = tokenizer or clip_tokenizer()
    a = _Analyser(tk)
    pieces = a.pieces(word)
    common, known, hidden = a.risks(word, pieces)
    report = TriggerReport(word, pieces, common, known, hidden)
    report.alternatives = alternatives(word, n_alternatives, tk)
    if dir is not None:
        report.use = caption_use(word, dir)
    return report


def caption_use(word: str, dir: Path | str) -> CaptionUse:
    """Where the trigger already is: as a tag, or inside longer tags (CLIP lowercases, and
    underscores and spaces are the same tag)."""
    from ..dataset.scan import scan_dataset
    from .store import CaptionStore
    from .tags import tag_key

    ds = scan_dataset(dir)
    store = CaptionStore.load(ds)
    needle = tag_key(word).lower()
    per: dict[str, Counter[str]] = {}
    for rec in store.records:
        c = per.setdefault(rec.folder, Counter())
        c["captions"] += 1
        keys = {k.lower() for k in rec.keys}
        if needle in keys:
            c["exact"] += 1
        elif any(needle in k for k in keys):
            c["partial"] += 1
    folders = [FolderUse(f, c["captions"], c["exact"], c["partial"])
               for f, c in per.items() if c["exact"] or c["partial"]]
    return CaptionUse(str(ds.root), len(store.records), sum(f.exact for f in folders),
                      sum(f.partial for f in folders), folders)
