"""Pure operations on one caption's tag list, and `Op`, a named, described operation.

Every function takes a list of tags and returns a new list; the input is never changed.
Tags are compared by `tag_key` (`long_hair` == `long hair`, `photo \\(medium\\)` ==
`photo (medium)`); a tag the operation does not touch keeps its position and its written
form. Where an operation adds or rewrites tags it never leaves an empty tag, and never
leaves two tags with the key it produced (the first position wins); duplicates the
operation did not produce are left to `dedupe`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from .tags import SHORT_TAG, WRITE_STYLES, styled, tag_key

POSITIONS = ("first", "last")
REPLACE_MODES = ("exact", "substring", "regex")
SORT_BY = ("name", "count")
NORMALIZE_STYLES = WRITE_STYLES

_GLOB_CHARS = frozenset("*?[")

Position = str | int


# ---------------------------------------------------------------- helpers


def _as_list(items: str | Iterable[str]) -> list[str]:
    """One tag given as a plain string is one tag, not a sequence of characters."""
    if isinstance(items, str):
        return [items]
    return list(items)


def _collapse(tags: list[str], keys: set[str]) -> list[str]:
    """Drop every repeat of a key in `keys`; the first of each stays."""
    seen: set[str] = set()
    out: list[str] = []
    for tag in tags:
        key = tag_key(tag)
        if key in keys:
            if key in seen:
                continue
            seen.add(key)
        out.append(tag)
    return out


def _quote_list(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(t) for t in items[:limit])
    more = len(items) - limit
    return f"{shown} and {more} more" if more > 0 else shown


# ---------------------------------------------------------------- replace


def replace_tag(tags: list[str], old: str, new: str) -> list[str]:
    """Every tag with `old`'s key becomes `new`; `new == ""` removes them.

    If `new` (by key) is already in the list, one copy remains, at the first position.
    """
    old_key = tag_key(old)
    new = new.strip()
    new_key = tag_key(new)
    if not old_key or not any(tag_key(t) == old_key for t in tags):
        return list(tags)
    if not new_key:
        return [t for t in tags if tag_key(t) != old_key]
    out = [new if tag_key(t) == old_key else t for t in tags]
    return _collapse(out, {new_key})


def _loose_pattern(text: str) -> str:
    """A regex for `text` where space and underscore match each other and parentheses
    match with or without their escaping backslash."""
    parts = []
    for ch in text:
        if ch in " _":
            parts.append("[ _]")
        elif ch in "()":
            parts.append(r"\\?" + re.escape(ch))
        else:
            parts.append(re.escape(ch))
    return "".join(parts)


def _fit_written_form(piece: str, tag: str) -> str:
    """`piece` written the way `tag` is: underscores or spaces, escaped parentheses."""
    if "_" in tag and " " not in tag:
        piece = piece.replace(" ", "_")
    elif " " in tag and "_" not in tag:
        piece = piece.replace("_", " ")
    if "\\(" in tag or "\\)" in tag:
        piece = re.sub(r"(?<!\\)([()])", r"\\\1", piece)
    return piece


def _tidy_separators(result: str, tag: str) -> str:
    """Separators left dangling by a deletion go: `red_bow` minus "red" is `bow`, not
    `_bow`; `blue red bow` minus "red" is `blue bow`. Whatever `tag` itself had stays."""
    if not re.search(r"[ _]{2}", tag):
        result = re.sub(r"([ _])[ _]+", r"\1", result)
    if not tag.startswith(("_", " ")):
        result = result.lstrip(" _")
    if not tag.endswith(("_", " ")):
        result = result.rstrip(" _")
    return result


def replace_substring(tags: list[str], old: str, new: str) -> list[str]:
    """Replace `old` inside each tag's written form, `new == ""` deletes it.

    In tags longer than three characters `old` also matches its underscore/space variant
    ("red" in `red_bow` and `red bow`, "red bow" in `red_bow`) and parentheses match with or
    without a backslash; `new` is written like the tag it goes into, and separators left
    dangling at the ends or doubled by a deletion are tidied. Short tags such as
    `^_^` only match literally. Tags that become empty are dropped; a rewritten tag that
    now has the key of another tag is merged into the first of them.
    """
    if not old:
        return list(tags)
    loose = re.compile(_loose_pattern(old.replace("\\(", "(").replace("\\)", ")")))
    new = new or ""
    out: list[str] = []
    touched: set[str] = set()
    for tag in tags:
        if len(tag.strip()) <= SHORT_TAG:
            if old not in tag:
                out.append(tag)
                continue
            result = tag.replace(old, new)
        else:
            if not loose.search(tag):
                out.append(tag)
                continue
            piece = _fit_written_form(new, tag)
            result = _tidy_separators(loose.sub(lambda _m, piece=piece: piece, tag), tag)
        result = result.strip()
        if result:
            out.append(result)
            touched.add(tag_key(result))
    return _collapse(out, touched) if touched else out


def compile_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled, or ValueError saying what is wrong with it."""
    if not pattern:
        raise ValueError("the regular expression is empty")
    try:
        return re.compile(pattern)
    except re.error as e:
        where = f" at position {e.pos}" if e.pos is not None else ""
        raise ValueError(f"invalid regular expression {pattern!r}: {e.msg}{where}") from None


def _check_replacement(regex: re.Pattern[str], repl: str) -> None:
    try:
        regex.sub(repl, "")
    except re.error as e:
        raise ValueError(f"invalid replacement {repl!r} for /{regex.pattern}/: {e.msg}") from None


def replace_regex(tags: list[str], pattern: str | re.Pattern[str], repl: str) -> list[str]:
    """`re.sub(pattern, repl, tag)` on each tag's written form.

    Tags that become empty are dropped; a rewritten tag that now has the key of another
    tag is merged into the first of them. ValueError for an invalid pattern or replacement.
    """
    regex = pattern if isinstance(pattern, re.Pattern) else compile_regex(pattern)
    _check_replacement(regex, repl)
    out: list[str] = []
    touched: set[str] = set()
    for tag in tags:
        result = regex.sub(repl, tag)
        if result == tag:
            out.append(tag)
            continue
        result = result.strip()
        if result:
            out.append(result)
            touched.add(tag_key(result))
    return _collapse(out, touched) if touched else out


# ---------------------------------------------------------------- remove / add


def _is_glob(key: str) -> bool:
    return any(c in _GLOB_CHARS for c in key)


def _matcher(patterns: Iterable[str], glob: bool) -> Callable[[str], bool]:
    keys = {tag_key(p) for p in patterns} - {""}
    globs = [k for k in keys if _is_glob(k)] if glob else []
    exact = keys.difference(globs)

    def matches(key: str) -> bool:
        return key in exact or any(fnmatch.fnmatchcase(key, g) for g in globs)

    return matches


def remove_tags(tags: list[str], patterns: str | Iterable[str], *, glob: bool = True) -> list[str]:
    """Drop every tag whose key matches one of `patterns`.

    A pattern is a tag or, with `glob` (the default), a glob on keys (`*_background`,
    `?girl`; the pattern goes through `tag_key` too). `glob=False` matches exactly.
    """
    matches = _matcher(_as_list(patterns), glob)
    return [t for t in tags if not matches(tag_key(t))]


def _check_position(position: object) -> None:
    bad_type = isinstance(position, bool) or not isinstance(position, str | int)
    if bad_type or (isinstance(position, str) and position not in POSITIONS):
        raise ValueError(f"bad position {position!r}: use 'first', 'last' or a 0-based index")


def add_tags(tags: list[str], new: str | Iterable[str], position: Position = "first") -> list[str]:
    """Insert `new` (in its order) at `position`: "first", "last" or a 0-based index,
    clamped to the list. A tag already present (by key) is moved there, keeping the
    form it was written in, instead of being added twice.
    """
    _check_position(position)
    present: dict[str, str] = {}
    for t in tags:
        present.setdefault(tag_key(t), t)
    block: list[str] = []
    block_keys: set[str] = set()
    for t in _as_list(new):
        key = tag_key(t)
        if not key or key in block_keys:
            continue
        block_keys.add(key)
        block.append(present.get(key, t.strip()))
    if not block:
        return list(tags)
    rest = [t for t in tags if tag_key(t) not in block_keys]
    if position == "first":
        at = 0
    elif position == "last":
        at = len(rest)
    else:
        at = min(max(int(position), 0), len(rest))
    return rest[:at] + block + rest[at:]


# ---------------------------------------------------------------- consolidate / synonyms


def consolidate(tags: list[str], group: str | Iterable[str], into: str) -> list[str]:
    """If any tag of `group` is present, all of them go and `into` takes the place of the
    first one found; if `into` is already present it stays where it is instead.
    A blank `into` just removes the group.
    """
    group_keys = {tag_key(g) for g in _as_list(group)} - {""}
    into = into.strip()
    into_key = tag_key(into)
    group_keys.discard(into_key)
    if not any(tag_key(t) in group_keys for t in tags):
        return list(tags)
    into_present = bool(into_key) and any(tag_key(t) == into_key for t in tags)
    out: list[str] = []
    placed = into_present or not into_key
    for t in tags:
        if tag_key(t) in group_keys:
            if not placed:
                out.append(into)
                placed = True
            continue
        out.append(t)
    return _collapse(out, {into_key}) if into_key else out


def apply_synonyms(tags: list[str], mapping: Mapping[str, str]) -> list[str]:
    """Each tag whose key is a synonym in `mapping` (key -> canonical written tag) becomes
    its canonical tag; one copy of each canonical tag remains, at the first position.
    """
    table = {tag_key(k): v.strip() for k, v in mapping.items()}
    table = {k: v for k, v in table.items() if k and tag_key(v) != k}
    if not table:
        return list(tags)
    out: list[str] = []
    touched: set[str] = set()
    for t in tags:
        canonical = table.get(tag_key(t))
        if canonical is None:
            out.append(t)
        elif canonical:
            out.append(canonical)
            touched.add(tag_key(canonical))
    return _collapse(out, touched) if touched else out


def dedupe(tags: list[str]) -> list[str]:
    """One tag per key, the first written form and position win; blank tags go."""
    return _collapse([t for t in tags if tag_key(t)], {tag_key(t) for t in tags})


# ---------------------------------------------------------------- sort / normalize


def _check_sort(by: str, keep: int, counts: Mapping[str, int] | None) -> None:
    if by not in SORT_BY:
        raise ValueError(f"unknown sort {by!r} (use {', '.join(SORT_BY)})")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"keep must be a whole number >= 0, not {keep!r}")
    if by == "count" and counts is None:
        raise ValueError("sorting by count needs the tag counts")


def sort_tags(
    tags: list[str],
    by: str = "name",
    keep: int = 0,
    counts: Mapping[str, int] | None = None,
) -> list[str]:
    """The first `keep` tags (the trigger) stay; the rest sorted by name (key, ignoring
    case) or by descending `counts[key]`, then name. `counts` may be keyed by any written
    form; forms of one tag are added up.
    """
    _check_sort(by, keep, counts)
    head, rest = list(tags[:keep]), list(tags[keep:])

    def name(tag: str) -> tuple[str, str]:
        key = tag_key(tag)
        return (key.casefold(), key)

    if by == "name":
        rest.sort(key=name)
    else:
        totals: dict[str, int] = {}
        for k, n in (counts or {}).items():
            totals[tag_key(k)] = totals.get(tag_key(k), 0) + n
        rest.sort(key=lambda t: (-totals.get(tag_key(t), 0), *name(t)))
    return head + rest


def normalize(tags: list[str], style: str) -> list[str]:
    """Every tag written with spaces or underscores (`tags.styled`): tags of three
    characters or fewer (`^_^`) and escaped parentheses are left alone; "keep" changes
    nothing. Then one tag per key remains (`dedupe`): `long_hair` and `long hair` become one.
    """
    if style not in NORMALIZE_STYLES:
        raise ValueError(f"unknown style {style!r} (use {', '.join(NORMALIZE_STYLES)})")
    if style == "keep":
        return list(tags)
    return dedupe([styled(t.strip(), style) for t in tags])


# ---------------------------------------------------------------- implications


def implication_closure(rules: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """specific key -> every key it implies, directly or through other rules.

    ValueError naming the loop when the rules imply a tag from itself.
    """
    graph: dict[str, set[str]] = {}
    for specific, general in rules:
        s, g = tag_key(specific), tag_key(general)
        if not s or not g:
            raise ValueError(f"empty tag in implication {specific!r} -> {general!r}")
        graph.setdefault(s, set()).add(g)
    cycle = find_cycle(graph)
    if cycle:
        raise ValueError("implication cycle: " + " -> ".join(cycle))
    closure: dict[str, frozenset[str]] = {}

    def visit(key: str) -> frozenset[str]:
        if key not in closure:
            found: set[str] = set()
            for g in graph.get(key, ()):
                found.add(g)
                found |= visit(g)
            closure[key] = frozenset(found)
        return closure[key]

    for key in graph:
        visit(key)
    return closure


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A loop in `graph` as [a, b, ..., a], or None."""
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph.get(start, ())))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if child in on_path:
                return path[path.index(child) :] + [child]
            if child in done:
                continue
            stack.append((child, iter(graph.get(child, ()))))
            path.append(child)
            on_path.add(child)
    return None


def _drop_implied(tags: list[str], closure: Mapping[str, frozenset[str]]) -> list[str]:
    keys = [tag_key(t) for t in tags]
    implied: set[str] = set()
    for k in set(keys):
        implied |= closure.get(k, frozenset())
    if not implied:
        return list(tags)
    return [t for t, k in zip(tags, keys, strict=True) if k not in implied]


def apply_implications(tags: list[str], rules: Iterable[tuple[str, str]]) -> list[str]:
    """Drop each general tag implied by a more specific one present, also through chains
    (`absurdly long hair` -> `very long hair` -> `long hair`). `rules` are
    (specific, general) pairs; ValueError if they loop.
    """
    return _drop_implied(tags, implication_closure(rules))


# ---------------------------------------------------------------- Op


@dataclass(frozen=True)
class Op:
    """One tag-list operation: a short name, a human description, and the function."""

    name: str
    describe: str
    fn: Callable[[list[str]], list[str]]

    def __call__(self, tags: list[str]) -> list[str]:
        return self.fn(tags)


def _tag_arg(tag: object, what: str) -> str:
    if not isinstance(tag, str):
        raise ValueError(f"{what} must be a tag (text), not {tag!r}")
    tag = tag.strip()
    if not tag_key(tag):
        raise ValueError(f"{what} is empty")
    if "," in tag:
        raise ValueError(f"{what} {tag!r} contains a comma: give one tag per entry")
    return tag


def _tags_arg(tags: str | Iterable[str], what: str) -> list[str]:
    out = [_tag_arg(t, what) for t in _as_list(tags)]
    if not out:
        raise ValueError(f"no {what}s given")
    return out


def op_replace(old: str, new: str, mode: str = "exact") -> Op:
    """Replace a tag (`exact`), text inside tags (`substring`) or a regex (`regex`).
    An empty `new` removes the tag / deletes the text."""
    if mode not in REPLACE_MODES:
        raise ValueError(f"unknown replace mode {mode!r} (use {', '.join(REPLACE_MODES)})")
    if not isinstance(new, str):
        raise ValueError(f"replacement must be text, not {new!r}")
    if "," in new:
        # a comma would split one tag into several behind the operation's back
        raise ValueError("the replacement contains a comma: replace with one tag, "
                         "then add the others with `add`")
    if mode == "regex":
        regex = compile_regex(old)
        _check_replacement(regex, new)
        text = f"replace /{old}/ with {new!r}" if new else f"delete /{old}/"
        return Op("replace", text + " (regex)", lambda tags: replace_regex(tags, regex, new))
    if mode == "substring":
        if not isinstance(old, str) or not old.strip():
            raise ValueError("the text to replace is empty")
        text = f"replace {old!r} with {new!r}" if new else f"delete {old!r}"
        text += " inside tags"
        return Op("replace", text, lambda tags: replace_substring(tags, old, new))
    old = _tag_arg(old, "tag to replace")
    new = new.strip()
    if new:
        new = _tag_arg(new, "replacement tag")
    text = f"replace {old!r} with {new!r}" if new else f"remove {old!r}"
    return Op("replace", text, lambda tags: replace_tag(tags, old, new))


def op_remove(patterns: str | Iterable[str]) -> Op:
    """Remove tags matching any of `patterns` (tags or globs such as `*_background`)."""
    pats = _tags_arg(patterns, "pattern")
    for p in pats:
        if _is_glob(p):
            try:
                re.compile(fnmatch.translate(tag_key(p)))
            except re.error as e:  # pragma: no cover - fnmatch escapes almost everything
                raise ValueError(f"bad pattern {p!r}: {e.msg}") from None
    return Op("remove", f"remove {_quote_list(pats)}", lambda tags: remove_tags(tags, pats))


def op_add(tags: str | Iterable[str], position: Position = "first") -> Op:
    """Add `tags` at `position` ("first", "last" or a 0-based index >= 0)."""
    new = _tags_arg(tags, "tag to add")
    _check_position(position)
    if isinstance(position, int) and position < 0:
        raise ValueError(f"bad position {position}: an index counts from 0")
    where = {"first": "first", "last": "last"}.get(str(position), f"at position {position}")
    return Op("add", f"add {_quote_list(new)} {where}", lambda t: add_tags(t, new, position))


def op_consolidate(group: str | Iterable[str], into: str) -> Op:
    """Replace any of `group` by the single tag `into`."""
    members = _tags_arg(group, "tag to consolidate")
    into = _tag_arg(into, "tag to consolidate into")
    text = f"consolidate {_quote_list(members)} into {into!r}"
    return Op("consolidate", text, lambda tags: consolidate(tags, members, into))


def op_synonyms(mapping: Mapping[str, str]) -> Op:
    """Replace every synonym (key) by its canonical tag (value)."""
    table: dict[str, str] = {}
    for syn, canonical in mapping.items():
        syn_key = tag_key(_tag_arg(syn, "synonym"))
        table[syn_key] = _tag_arg(canonical, f"canonical tag for {syn!r}")
    if not table:
        raise ValueError("no synonyms given")
    if len(table) == 1:
        ((syn, canonical),) = table.items()
        text = f"replace synonym {syn!r} with {canonical!r}"
    else:
        text = f"replace {len(table)} synonyms with their canonical tags"
    return Op("synonyms", text, lambda tags: apply_synonyms(tags, table))


def op_implications(rules: Iterable[tuple[str, str]]) -> Op:
    """Drop general tags implied by more specific ones (transitively)."""
    rules = list(rules)
    closure = implication_closure(rules)
    n = len(rules)
    text = f"drop tags implied by a more specific tag ({n} rule{'s' if n != 1 else ''})"
    return Op("implications", text, lambda tags: _drop_implied(tags, closure))


def op_dedupe() -> Op:
    return Op("dedupe", "remove duplicate tags", dedupe)


def op_sort(by: str = "name", keep: int = 0, counts: Mapping[str, int] | None = None) -> Op:
    """Sort tags by name or count, the first `keep` staying in place."""
    _check_sort(by, keep, counts)
    frozen_counts = dict(counts) if counts is not None else None
    text = f"sort tags by {by}"
    if keep:
        text += f", keeping the first {keep} in place" if keep > 1 else ", keeping the first"
    return Op("sort", text, lambda tags: sort_tags(tags, by, keep, frozen_counts))


def op_normalize(style: str) -> Op:
    """Write every tag with spaces or underscores."""
    if style not in NORMALIZE_STYLES:
        raise ValueError(f"unknown style {style!r} (use {', '.join(NORMALIZE_STYLES)})")
    text = {
        "spaces": "write tags with spaces",
        "underscores": "write tags with underscores",
        "keep": "keep tags as written",
    }[style]
    return Op("normalize", text, lambda tags: normalize(tags, style))


def op_prune(tags: str | Iterable[str]) -> Op:
    """Remove exactly these tags (no globs), e.g. a character's intrinsic traits."""
    pruned = _tags_arg(tags, "tag to prune")
    n = len(pruned)
    text = f"prune {_quote_list(pruned)}" if n <= 4 else f"prune {n} tags ({_quote_list(pruned)})"
    return Op("prune", text, lambda t: remove_tags(t, pruned, glob=False))
