r"""Filter expressions that pick images for bulk caption operations (UI input, `--filter`).

Grammar (precedence NOT > AND > OR; parentheses group)::

    expr    := and  (("OR" | "|") and)*
    and     := unary (("AND" | "&") unary)*
    unary   := ("NOT" | "!" | "-") unary | "(" expr ")" | term
    term    := "..." | word+        consecutive words are ONE term: `long hair AND blue eyes`

- Operators are the upper-case words AND OR NOT and the symbols & | ! ; `and`/`or`/`not` are
  ordinary words. `-` directly before a term (`-solo`, `-(a | b)`) means NOT. `-` and `!`
  inside a word are literal (`t-shirt`, `hello!`); `&` and `|` always are operators.
- A term is the longest run of words up to an operator, a parenthesis, a quote or the end;
  its inner whitespace collapses to one space. `\(` and `\)` are literal parentheses of the
  tag (`photo \(medium\)`). Two terms with no operator between them are an error.
- `"..."` is a literal tag: no operators, no wildcards, no special terms (`\"` is `"`,
  `\\` is `\`). Write `"!?"`, `"-_-"`, `"empty"` or `"a AND b"` this way.
- `*` and `?` in an unquoted term are wildcards (fnmatch, case-sensitive) matched against the
  `tag_key` of every tag: `*_background` finds `white background`. `[` is literal.
- Special terms (lower-case): `folder:NAME` globs NAME (may be quoted) against the folder
  name and against it without its `N_` repeats prefix; `tags>N`, `tags>=N`, `tags<N`,
  `tags<=N`, `tags=N` compare the tag count; `tokens>N` (same operators) compares the
  caption's CLIP token count, which the caller supplies as `Subject.tokens` (core/tokens.py
  `matching_records`; see `Filter.uses_tokens`); `empty` is no caption file or zero tags;
  `caption:missing` is no caption file. Any other `xyz:` is part of a tag (`artist:foo`).
- An empty expression matches everything. Parentheses and NOTs nest at most MAX_NESTING deep.

Tags are compared only through `tag_key`, on both sides. An expression is parsed once into a
small tree, then compiled to one short-circuiting Python function (every value bound by name,
no user text in the generated code); wildcard and folder results are memoised, so one
evaluation costs a few set look-ups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import translate

from ..base.errors import LorabakeError
from ..dataset.folders import parse_folder_name
from .tags import SHORT_TAG, tag_key

__all__ = ["MAX_NESTING", "Filter", "FilterError", "Subject", "parse_filter"]


class FilterError(LorabakeError, ValueError):
    """A malformed expression. `position` is a 0-based offset into `expr`; `column` is 1-based."""

    def __init__(self, message: str, position: int, expr: str) -> None:
        super().__init__(message)
        self.position = position
        self.expr = expr

    @property
    def column(self) -> int:
        return self.position + 1

    def __str__(self) -> str:
        return f"{self.message} at column {self.column}: {self.expr}"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a filter is evaluated against: one image and its caption."""

    keys: frozenset[str]  # tag_key() of every tag in the caption
    folder: str  # concept folder name, e.g. "10_mira_uniform"
    count: int  # number of tags
    has_caption: bool  # False when the caption file is missing
    # CLIP tokens of the caption: only filters with `tokens>N` need it (and then must get it)
    tokens: int | None = None

    @classmethod
    def from_tags(cls, tags: Iterable[str], folder: str = "", has_caption: bool = True,
                  tokens: int | None = None) -> Subject:
        """A subject from the caption's tags as written (keys computed with `tag_key`)."""
        written = [t for t in tags if t.strip()]
        return cls(frozenset(tag_key(t) for t in written), folder, len(written), has_caption,
                   tokens)


Predicate = Callable[[Subject], bool]

# ---------------------------------------------------------------------------------- tokens

_AND, _OR, _NOT = "AND", "OR", "NOT"  # token kinds
_LP, _RP, _WORD, _QUOTED, _END = "(", ")", "word", "quoted", "end"
_OPERATOR_WORDS = {"AND": _AND, "OR": _OR, "NOT": _NOT}
_SYMBOLS = {"(": _LP, ")": _RP, "&": _AND, "|": _OR, "!": _NOT}
_WORD_STOP = frozenset('()&|"')


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str  # as written (for a quoted term: the content, quotes removed)
    pos: int
    end: int

    def describe(self) -> str:
        if self.kind == _END:
            return "the end"
        if self.kind == _QUOTED:
            return f'"{self.text}"'
        return f"'{self.text}'"


def _tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    n = len(expr)
    i = 0
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in _SYMBOLS:
            tokens.append(_Token(_SYMBOLS[c], c, i, i + 1))
            i += 1
        elif c == "-":  # at a token boundary: negation; inside a word it is literal
            nxt = expr[i + 1] if i + 1 < n else ""
            if not nxt or nxt.isspace() or nxt in ")&|":
                raise FilterError("expected a term directly after '-'", i, expr)
            tokens.append(_Token(_NOT, c, i, i + 1))
            i += 1
        elif c == '"':
            i = _quoted(expr, i, tokens)
        else:
            j = i
            while j < n:
                ch = expr[j]
                if ch == "\\" and j + 1 < n and expr[j + 1] in "()":
                    j += 2
                elif ch.isspace() or ch in _WORD_STOP:
                    break
                else:
                    j += 1
            word = expr[i:j]
            tokens.append(_Token(_OPERATOR_WORDS.get(word, _WORD), word, i, j))
            i = j
    end = len(expr.rstrip())
    tokens.append(_Token(_END, "", end, end))
    return tokens


def _quoted(expr: str, start: int, tokens: list[_Token]) -> int:
    chars: list[str] = []
    j = start + 1
    n = len(expr)
    while j < n:
        ch = expr[j]
        if ch == "\\" and j + 1 < n and expr[j + 1] in '"\\':
            chars.append(expr[j + 1])
            j += 2
        elif ch == '"':
            break
        else:
            chars.append(ch)
            j += 1
    else:
        raise FilterError("unterminated quote", start, expr)
    text = "".join(chars)
    if not text.strip():
        raise FilterError("empty quoted term", start, expr)
    tokens.append(_Token(_QUOTED, text, start, j + 1))
    return j + 1


# ------------------------------------------------------------------------------------ tree


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _glob(pattern: str) -> re.Pattern[str]:
    """fnmatch with only `*` and `?` special (`[` is literal)."""
    return re.compile(translate(pattern.replace("[", "[[]")))


_MEMO_LIMIT = 200_000  # distinct keys remembered per pattern; a real vocabulary is far less


class _Memo(dict[str, bool]):
    """Per-string results of one test, computed on first sight; bounded against abuse."""

    def __init__(self, compute: Callable[[str], bool]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: str) -> bool:
        if len(self) > _MEMO_LIMIT:
            self.clear()
        hit = self[key] = self.compute(key)
        return hit


class _Code:
    """Values a compiled filter refers to by name: no user text ever enters generated code."""

    def __init__(self) -> None:
        self.namespace: dict[str, object] = {}

    def bind(self, value: object) -> str:
        name = f"_v{len(self.namespace)}"
        self.namespace[name] = value
        return name


class _Node:
    def emit(self, code: _Code) -> str:
        """A Python expression over `s` (the Subject) and `keys` (its key set)."""
        raise NotImplementedError

    def explain(self) -> str:
        raise NotImplementedError

    def plain_tags(self, positive: bool, out: set[str]) -> None:
        """Collect plain tag keys that appear under an even number of NOTs."""


def _compile(node: _Node) -> Predicate:
    """One function for the whole tree: a single call per image, short-circuiting."""
    code = _Code()
    source = f"def _match(s):\n    keys = s.keys\n    return {node.emit(code)}\n"
    exec(compile(source, "<tagfilter>", "exec"), code.namespace)  # the source holds names only
    return code.namespace["_match"]  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class _Everything(_Node):
    def emit(self, code: _Code) -> str:
        return "True"

    def explain(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class _Tag(_Node):
    key: str

    def emit(self, code: _Code) -> str:
        return f"({code.bind(self.key)} in keys)"

    def explain(self) -> str:
        return _quote(self.key)

    def plain_tags(self, positive: bool, out: set[str]) -> None:
        if positive:
            out.add(self.key)


@dataclass(frozen=True, slots=True)
class _Wildcard(_Node):
    pattern: str  # tag_key of the pattern as written

    def matcher(self) -> Callable[[frozenset[str]], bool]:
        # A key longer than SHORT_TAG never holds "_" (tag_key made them spaces), so against
        # such keys a "_" of the pattern can only mean a space, even in a short pattern
        # (`*_*`). Short keys (emoticons such as `^_^`) meet the pattern's own tag_key.
        long_rx = _glob(self.pattern.replace("_", " ")).match
        short_rx = _glob(self.pattern).match
        seen: set[str] = set()  # every key tested so far ...
        hits: set[str] = set()  # ... and those that match: the rest is C set operations

        def test(keys: frozenset[str]) -> bool:
            if not seen.issuperset(keys):
                if len(seen) > _MEMO_LIMIT:
                    seen.clear()
                    hits.clear()
                for k in keys.difference(seen):
                    if (long_rx if len(k) > SHORT_TAG else short_rx)(k):
                        hits.add(k)
                    seen.add(k)
            return not hits.isdisjoint(keys)

        return test

    def emit(self, code: _Code) -> str:
        return f"{code.bind(self.matcher())}(keys)"

    def explain(self) -> str:
        return self.pattern.replace("(", "\\(").replace(")", "\\)")


@dataclass(frozen=True, slots=True)
class _Folder(_Node):
    pattern: str

    def emit(self, code: _Code) -> str:
        rx = _glob(self.pattern).match

        def compute(folder: str) -> bool:
            if rx(folder):
                return True
            parsed = parse_folder_name(folder)  # also match the name without "N_"
            return parsed.repeats is not None and rx(parsed.name) is not None

        return f"{code.bind(_Memo(compute))}[s.folder]"

    def explain(self) -> str:
        return "folder:" + _quote(self.pattern)


_COMPARISONS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=="}


@dataclass(frozen=True, slots=True)
class _Count(_Node):
    op: str  # a key of _COMPARISONS
    n: int

    def emit(self, code: _Code) -> str:
        return f"(s.count {_COMPARISONS[self.op]} {code.bind(self.n)})"

    def explain(self) -> str:
        return f"tags{self.op}{self.n}"


def _subject_tokens(s: Subject) -> int:
    if s.tokens is None:  # a silent non-match would select the wrong captions
        raise LorabakeError("this filter counts caption tokens, but none were supplied",
                            "evaluate it through core.tokens.matching_records")
    return s.tokens


@dataclass(frozen=True, slots=True)
class _TokenCount(_Node):
    op: str  # a key of _COMPARISONS
    n: int

    def emit(self, code: _Code) -> str:
        return f"({code.bind(_subject_tokens)}(s) {_COMPARISONS[self.op]} {code.bind(self.n)})"

    def explain(self) -> str:
        return f"tokens{self.op}{self.n}"


@dataclass(frozen=True, slots=True)
class _Empty(_Node):
    def emit(self, code: _Code) -> str:
        return "(not s.has_caption or s.count == 0)"

    def explain(self) -> str:
        return "empty"


@dataclass(frozen=True, slots=True)
class _Missing(_Node):
    def emit(self, code: _Code) -> str:
        return "(not s.has_caption)"

    def explain(self) -> str:
        return "caption:missing"


@dataclass(frozen=True, slots=True)
class _Not(_Node):
    child: _Node

    def emit(self, code: _Code) -> str:
        return f"(not {self.child.emit(code)})"

    def explain(self) -> str:
        return f"NOT {self.child.explain()}"

    def plain_tags(self, positive: bool, out: set[str]) -> None:
        self.child.plain_tags(not positive, out)


@dataclass(frozen=True, slots=True)
class _And(_Node):
    children: tuple[_Node, ...]

    def emit(self, code: _Code) -> str:
        return "(" + " and ".join(c.emit(code) for c in self.children) + ")"

    def explain(self) -> str:
        return "(" + " AND ".join(c.explain() for c in self.children) + ")"

    def plain_tags(self, positive: bool, out: set[str]) -> None:
        for c in self.children:
            c.plain_tags(positive, out)


@dataclass(frozen=True, slots=True)
class _Or(_Node):
    children: tuple[_Node, ...]

    def emit(self, code: _Code) -> str:
        return "(" + " or ".join(c.emit(code) for c in self.children) + ")"

    def explain(self) -> str:
        return "(" + " OR ".join(c.explain() for c in self.children) + ")"

    def plain_tags(self, positive: bool, out: set[str]) -> None:
        for c in self.children:
            c.plain_tags(positive, out)


# ---------------------------------------------------------------------------------- parser

MAX_NESTING = 32  # parentheses and NOTs inside one another; far beyond any real filter
_TAGS_RE = re.compile(r"(tags|tokens)\s*(<=|>=|<|>|=)\s*")
_NUMBER_RE = re.compile(r"[0-9]+")


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.i = 0
        self.depth = 0  # open parentheses around the current position
        self.nesting = 0  # open parentheses and NOTs: bounds recursion and generated code

    def error(self, message: str, position: int) -> FilterError:
        return FilterError(message, position, self.expr)

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def parse(self) -> _Node:
        if self.tok.kind == _END:
            return _Everything()
        node = self.parse_or()
        t = self.tok
        if t.kind == _RP:
            raise self.error("unmatched ')'", t.pos)
        if t.kind != _END:
            raise self.error(f"expected AND or OR before {t.describe()}", t.pos)
        return node

    def parse_or(self) -> _Node:
        children = [self.parse_and()]
        while self.tok.kind == _OR:
            self.operand_after(self.take())
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def parse_and(self) -> _Node:
        children = [self.parse_unary()]
        while self.tok.kind == _AND:
            self.operand_after(self.take())
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else _And(tuple(children))

    def parse_unary(self) -> _Node:
        if self.tok.kind == _NOT:
            op = self.take()
            self.operand_after(op)
            self.nest(op)
            node = _Not(self.parse_unary())
            self.nesting -= 1
            return node
        return self.parse_primary()

    def nest(self, t: _Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"nested more than {MAX_NESTING} deep", t.pos)

    def operand_after(self, op: _Token) -> None:
        """Fail early, naming `op`, when no operand follows it."""
        t = self.tok
        if t.kind == _END:
            raise self.error(f"expected a term after '{op.text}'", t.pos)
        if t.kind in (_AND, _OR, _RP):
            raise self.error(f"expected a term after '{op.text}', found {t.describe()}", t.pos)

    def parse_primary(self) -> _Node:
        t = self.tok
        if t.kind == _LP:
            self.take()
            if self.tok.kind == _RP:
                raise self.error("empty parentheses", self.tok.pos)
            self.nest(t)
            self.depth += 1
            node = self.parse_or()
            self.depth -= 1
            self.nesting -= 1
            close = self.tok
            if close.kind == _END:
                raise self.error("expected ')'", close.pos)
            if close.kind != _RP:
                raise self.error(f"expected AND, OR or ')' before {close.describe()}", close.pos)
            self.take()
            return node
        if t.kind == _QUOTED:
            self.take()
            return _Tag(tag_key(t.text))
        if t.kind == _WORD:
            return self.parse_term()
        if t.kind == _RP and not self.depth:
            raise self.error("unmatched ')'", t.pos)
        raise self.error(f"expected a term before {t.describe()}", t.pos)

    def parse_term(self) -> _Node:
        words: list[_Token] = []
        while self.tok.kind == _WORD:
            words.append(self.take())
        text = " ".join(w.text for w in words)
        if text == "empty":
            return _Empty()
        if text == "caption:missing":
            return _Missing()
        if text.startswith("folder:"):
            name = text[len("folder:") :].strip()
            if not name and self.tok.kind == _QUOTED:
                name = self.take().text
            if not name:
                raise self.error("expected a folder name after 'folder:'", words[0].pos + 7)
            return _Folder(name)
        m = _TAGS_RE.match(text)
        if m:
            rest = text[m.end() :]
            if not _NUMBER_RE.fullmatch(rest):
                where = self.source_pos(words, m.end())
                raise self.error(f"expected a whole number after '{m.group(1)}{m.group(2)}'",
                                 where)
            node = _Count if m.group(1) == "tags" else _TokenCount
            return node(m.group(2), int(rest))
        key = tag_key(text)
        if "*" in key or "?" in key:
            return _Wildcard(key)
        return _Tag(key)

    @staticmethod
    def source_pos(words: list[_Token], offset: int) -> int:
        """Map an offset in the space-joined words back to the expression."""
        for w in words:
            if offset <= len(w.text):
                return w.pos + offset
            offset -= len(w.text) + 1
        return words[-1].end


# ---------------------------------------------------------------------------------- public


class Filter:
    """A parsed expression; `matches` is cheap, parse once and call it for every image."""

    def __init__(self, source: str, node: _Node) -> None:
        self.source = source
        self._node = node
        self._match = _compile(node)

    def matches(self, s: Subject) -> bool:
        """True when the image described by `s` is selected."""
        return self._match(s)

    def tag_terms(self) -> set[str]:
        """Plain (non-wildcard) tag keys mentioned outside any NOT, for highlighting."""
        out: set[str] = set()
        self._node.plain_tags(True, out)
        return out

    @property
    def uses_tokens(self) -> bool:
        """True when a `tokens>N` term needs `Subject.tokens` filled in."""
        stack = [self._node]
        while stack:
            node = stack.pop()
            if isinstance(node, _TokenCount):
                return True
            stack.extend(getattr(node, "children", ()))
            if isinstance(node, _Not):
                stack.append(node.child)
        return False

    @property
    def matches_everything(self) -> bool:
        """True for an empty expression."""
        return isinstance(self._node, _Everything)

    def explain(self) -> str:
        """The expression fully parenthesised, tags quoted as keys ("" for everything)."""
        return self._node.explain()

    def __repr__(self) -> str:
        return f"Filter({self.source!r})"


def parse_filter(expr: str) -> Filter:
    """Parse `expr` (see the module docstring); raises FilterError naming the column."""
    return Filter(expr, _Parser(expr).parse())
