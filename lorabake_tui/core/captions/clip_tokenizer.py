"""CLIP's byte-level BPE tokenizer in pure Python, offline, with the data shipped in the package.

The workbench uses it to count caption tokens without importing torch or transformers; the
trainer uses `write_hf_files` to build the transformers tokenizer from the same data, so both
always agree. Normalisation follows transformers' CLIPTokenizer (what SD1.5 trainers and
A1111 feed the text encoder): NFC, whitespace collapsed, per-character lowercase, special
tokens split off first. OpenAI's reference code also un-escapes HTML and runs ftfy; the
transformers tokenizer does neither, and matching the trainer matters more here.
"""

from __future__ import annotations

import gzip
import json
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import regex

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "clip"
BPE_FILE = DATA_DIR / "bpe_simple_vocab_16e6.txt.gz"

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
# 49152 ids minus the 256 byte symbols minus the two special tokens
_N_MERGES = 49152 - 256 - 2
_END = "</w>"

_SPECIAL = regex.compile(r"(<\|startoftext\|>|<\|endoftext\|>)")
# CLIP's pre-tokenizer, minus the special tokens (split off before it runs)
_WORDS = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                       regex.IGNORECASE)
_SPACES = regex.compile(r"\s+")
# transformers' clean_up_tokenization: glue punctuation and contractions back on
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (BPE never sees raw bytes)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    # insertion order (printable first) is the vocab order CLIP uses
    return table


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    # str.lower() turns a word-final capital sigma into "ς"; the Rust lowercase transformers
    # uses works per character and gives "σ"
    return text.replace("Σ", "σ").lower()


class ClipTokenizer:
    """CLIP ViT-L/14's tokenizer (SD1.5's): 49,408 ids, BOS 49406, EOS 49407."""

    def __init__(self, merges: list[tuple[str, str]]) -> None:
        self._byte_map = bytes_to_unicode()
        self._byte_unmap = {c: b for b, c in self._byte_map.items()}
        self.merges = merges
        symbols = list(self._byte_map.values())
        vocab = symbols + [s + _END for s in symbols] + ["".join(m) for m in merges]
        vocab += [BOS, EOS]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: list[str] = vocab
        self._ranks = {pair: i for i, pair in enumerate(merges)}
        self._cache: dict[str, tuple[str, ...]] = {BOS: (BOS,), EOS: (EOS,)}

    @classmethod
    def from_file(cls, path: Path = BPE_FILE) -> ClipTokenizer:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:_N_MERGES + 1]]
        return cls(merges)  # type: ignore[arg-type]

    @staticmethod
    def load() -> ClipTokenizer:
        """The shared instance (parsing the merges takes a few hundred ms)."""
        return clip_tokenizer()

    @property
    def bos_id(self) -> int:
        return self.encoder[BOS]

    @property
    def eos_id(self) -> int:
        return self.encoder[EOS]

    @property
    def vocab_size(self) -> int:
        return len(self.decoder)

    def _bpe(self, word: str) -> tuple[str, ...]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = [*word[:-1], word[-1] + _END]
        ranks = self._ranks
        while len(parts) > 1:
            best = None
            best_rank = len(ranks)
            for pair in zip(parts, parts[1:], strict=False):
                r = ranks.get(pair)
                if r is not None and r < best_rank:
                    best, best_rank = pair, r
            if best is None:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            # merge every non-overlapping occurrence, left to right
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        out = tuple(parts)
        if len(self._cache) < 200_000:  # captions repeat words; bound it for huge datasets
            self._cache[word] = out
        return out

    def tokens(self, text: str) -> list[str]:
        """The BPE pieces as vocab strings, e.g. "a photo" -> ["a</w>", "photo</w>"]."""
        out: list[str] = []
        byte_map = self._byte_map
        for chunk in _SPECIAL.split(_normalize(text)):
            if chunk in (BOS, EOS):
                out.append(chunk)
                continue
            for word in _WORDS.findall(chunk):
                mapped = "".join(byte_map[b] for b in word.encode("utf-8"))
                out.extend(self._bpe(mapped))
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids without BOS/EOS."""
        enc = self.encoder
        return [enc[t] for t in self.tokens(text)]

    def count_tokens(self, text: str) -> int:
        """How many of the 75 usable positions (77 minus BOS/EOS) a caption takes."""
        return len(self.tokens(text))

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        """Text back from ids, spaced the way transformers' decode() spaces it."""
        pieces = [self.decoder[i] for i in ids]
        if skip_special:
            pieces = [p for p in pieces if p not in (BOS, EOS)]
        unmap = self._byte_unmap
        raw = bytearray()
        for ch in "".join(pieces):
            b = unmap.get(ch)
            raw.extend(ch.encode("utf-8") if b is None else (b,))
        text = raw.decode("utf-8", errors="replace").replace(_END, " ").strip()
        for old, new in _CLEANUP:
            text = text.replace(old, new)
        return text

    def write_hf_files(self, dest: Path) -> None:
        """vocab.json, merges.txt and configs that transformers' CLIPTokenizer loads as-is."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "vocab.json").write_text(json.dumps(self.encoder, ensure_ascii=False),
                                         encoding="utf-8")
        lines = ["#version: 0.2", *(" ".join(m) for m in self.merges)]
        (dest / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        special = {"lstrip": False, "rstrip": False, "normalized": True,
                   "single_word": False, "special": True}
        config = {
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": MODEL_MAX_LENGTH,
            "do_lower_case": True,
            "errors": "replace",
            "add_prefix_space": False,
            "clean_up_tokenization_spaces": True,
            "bos_token": BOS,
            "eos_token": EOS,
            "unk_token": EOS,
            "pad_token": EOS,
            "added_tokens_decoder": {
                str(self.bos_id): {"content": BOS, **special},
                str(self.eos_id): {"content": EOS, **special},
            },
        }
        (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                    encoding="utf-8")
        specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
        (dest / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n",
                                                      encoding="utf-8")


@lru_cache(maxsize=1)
def clip_tokenizer() -> ClipTokenizer:
    return ClipTokenizer.from_file()


def count_tokens(text: str) -> int:
    return clip_tokenizer().count_tokens(text)
