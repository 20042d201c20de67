"""The filter expression language that selects images for bulk caption operations."""

from __future__ import annotations

import random

import pytest

from lorabake_tui.core.captions.tagfilter import (
    MAX_NESTING,
    Filter,
    FilterError,
    Subject,
    parse_filter,
)
from lorabake_tui.core.captions.tags import tag_key


def subj(*tags: str, folder: str = "10_mira", has_caption: bool = True) -> Subject:
    return Subject.from_tags(tags, folder=folder, has_caption=has_caption)


def hits(expr: str, *tags: str, **kw) -> bool:
    return parse_filter(expr).matches(subj(*tags, **kw))


# ------------------------------------------------------------------------------- basics


def test_subject_from_tags_uses_tag_key():
    s = subj("long_hair", " photo \\(medium\\) ", "^_^", "")
    assert s.keys == {"long hair", "photo (medium)", "^_^"}
    assert s.count == 3 and s.has_caption and s.folder == "10_mira"


@pytest.mark.parametrize("expr", ["", "   ", "\t"])
def test_empty_expression_matches_everything(expr):
    f = parse_filter(expr)
    assert f.matches_everything
    assert f.matches(subj()) and f.matches(subj("a", has_caption=False))
    assert f.tag_terms() == set() and f.source == expr


def test_single_tag_and_source():
    f = parse_filter("solo")
    assert isinstance(f, Filter) and f.source == "solo" and not f.matches_everything
    assert f.matches(subj("solo", "1girl"))
    assert not f.matches(subj("1girl"))


@pytest.mark.parametrize(
    ("expr", "tags", "want"),
    [
        ("a AND b", ("a", "b"), True),
        ("a AND b", ("a",), False),
        ("a & b", ("a", "b"), True),
        ("a&b", ("b",), False),
        ("a OR b", ("b",), True),
        ("a | b", ("c",), False),
        ("a|b", ("a",), True),
        ("NOT a", ("b",), True),
        ("NOT a", ("a",), False),
        ("!a", ("a",), False),
        ("! a", ("b",), True),
        ("-a", ("a",), False),
        ("-a", ("b",), True),
        ("b AND -a", ("b",), True),
        ("b AND -a", ("a", "b"), False),
        ("-(a | b)", ("b",), False),
        ("-(a | b)", ("c",), True),
        ("--a", ("a",), True),
        ("NOT NOT a", ("a",), True),
        ('-"a b"', ("a b",), False),
    ],
)
def test_operators(expr, tags, want):
    assert hits(expr, *tags) is want


def test_lowercase_operator_words_are_ordinary_words():
    assert hits("black and white", "black and white")
    assert not hits("black and white", "black", "white")
    assert hits("not safe or sorry", "not safe or sorry")
    assert parse_filter("ANDROID").tag_terms() == {"ANDROID"}


def test_dash_and_bang_inside_a_word_are_literal():
    assert hits("t-shirt", "t-shirt")
    assert hits("hello!", "hello!")
    assert not hits("hello!", "hello")


# ---------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("expr", "tree"),
    [
        ("a OR b AND c", '("a" OR ("b" AND "c"))'),
        ("a AND b OR c", '(("a" AND "b") OR "c")'),
        ("NOT a AND b", '(NOT "a" AND "b")'),
        ("NOT a OR b", '(NOT "a" OR "b")'),
        ("(a OR b) AND c", '(("a" OR "b") AND "c")'),
        ("a | b & !c | d", '("a" OR ("b" AND NOT "c") OR "d")'),
        ("((a))", '"a"'),
        ("a AND (b OR (c AND NOT (d OR e)))", '("a" AND ("b" OR ("c" AND NOT ("d" OR "e"))))'),
    ],
)
def test_precedence_not_and_or(expr, tree):
    assert parse_filter(expr).explain() == tree


def test_precedence_by_evaluation():
    f = parse_filter("a OR b AND c")
    assert f.matches(subj("a"))  # a OR (b AND c), not (a OR b) AND c
    assert not f.matches(subj("b"))
    assert f.matches(subj("b", "c"))
    g = parse_filter("(a OR b) AND c")
    assert not g.matches(subj("a"))
    assert g.matches(subj("a", "c"))


def test_nested_parentheses():
    f = parse_filter("((a | b) & (c | (d & -e)))")
    assert f.matches(subj("a", "c"))
    assert f.matches(subj("b", "d"))
    assert not f.matches(subj("b", "d", "e"))
    assert not f.matches(subj("c", "d"))


def test_explain_round_trips():
    for expr in [
        "a OR b AND c",
        'folder:"10_*" & tags>=3',
        '*_background | -"x y"',
        "photo \\(*\\) OR empty OR caption:missing",
    ]:
        once = parse_filter(expr).explain()
        assert parse_filter(once).explain() == once


# ----------------------------------------------------------------------- multiword terms


def test_consecutive_words_form_one_term():
    f = parse_filter("long hair AND blue eyes")
    assert f.explain() == '("long hair" AND "blue eyes")'
    assert f.matches(subj("long hair", "blue eyes"))
    assert not f.matches(subj("long", "hair", "blue", "eyes"))


def test_inner_whitespace_collapses():
    assert parse_filter("  long \t  hair  ").tag_terms() == {"long hair"}
    assert hits("long   hair", "long_hair")


def test_underscores_and_spaces_are_the_same_tag():
    for expr in ["long_hair", "long hair", "long_hair AND blue_eyes"]:
        assert hits(expr, "long hair", "blue eyes")
        assert hits(expr, "long_hair", "blue_eyes")
    # short tags keep their underscores: ^_^ is not "^ ^"
    assert hits("^_^", "^_^")
    assert not hits("^_^", "^ ^")


def test_colon_prefixes_other_than_special_ones_are_tags():
    assert hits("artist:foo", "artist:foo")
    assert hits("xyz:bar AND solo", "xyz:bar", "solo")
    assert parse_filter("artist:foo").tag_terms() == {"artist:foo"}


# ------------------------------------------------------------------ quotes and escapes


def test_quoted_terms_are_literal_tags():
    assert hits('"photo (medium)"', "photo \\(medium\\)")
    assert hits('"black AND white"', "black AND white")
    assert hits('"a, b | c"', "a, b | c")
    assert hits('"empty"', "empty")
    assert not hits('"empty"')  # the tag, not the special term
    assert hits('"-_-"', "-_-")
    assert hits('"!?"', "!?")
    assert not hits('"!?"', "!!")  # a quoted ? is not a wildcard
    assert hits('"folder:x"', "folder:x")
    assert hits('"tags>3"', "tags>3")
    assert hits('"say \\"hi\\""', 'say "hi"')


def test_quoted_term_goes_through_tag_key():
    assert hits('"long_hair"', "long hair")
    assert hits('"  solo "', "solo")


def test_escaped_parentheses_are_part_of_an_unquoted_term():
    f = parse_filter("photo \\(medium\\) AND solo")
    assert f.explain() == '("photo (medium)" AND "solo")'
    assert f.matches(subj("photo (medium)", "solo"))
    assert f.matches(subj("photo_\\(medium\\)", "solo"))
    assert parse_filter("mira \\(uniform\\)").tag_terms() == {"mira (uniform)"}


def test_quoted_term_next_to_a_word_is_an_error():
    with pytest.raises(FilterError) as e:
        parse_filter('"a" b')
    assert e.value.position == 4


# ------------------------------------------------------------------------------ wildcards


@pytest.mark.parametrize(
    ("expr", "tags", "want"),
    [
        ("*_background", ("white background",), True),
        ("*_background", ("white_background",), True),
        ("* background", ("white_background",), True),
        ("*background", ("background",), True),
        ("*_background", ("background",), False),
        ("*_hair", ("long hair", "solo"), True),
        ("*_hair", ("hairband",), False),
        ("blue_*", ("blue eyes",), True),
        ("blue_?yes", ("blue eyes",), True),
        ("blue_?", ("blue eyes",), False),
        ("?", ("1", "solo"), True),
        ("?", ("solo",), False),
        ("Solo*", ("solo",), False),  # case-sensitive
        ("*_*", ("long hair",), True),  # short pattern, "_" still means space for long tags
        ("*_*", ("^_^",), True),
        ("*_*", ("solo",), False),
        ("?_?", ("o_o",), True),
        ("photo \\(*\\)", ("photo (medium)",), True),
        ("[abc]*", ("[abc] tag",), True),  # only * and ? are special
        ("[abc]*", ("a tag",), False),
    ],
)
def test_wildcards(expr, tags, want):
    assert hits(expr, *tags) is want


def test_wildcards_are_not_tag_terms():
    f = parse_filter("*_hair AND solo AND NOT blue_* AND NOT NOT smile")
    assert f.tag_terms() == {"solo", "smile"}


def test_wildcard_memo_is_per_filter_and_stays_correct():
    f = parse_filter("*_eyes")
    s1, s2 = subj("blue eyes"), subj("blue eyes", "red eyes")
    assert f.matches(s1) and f.matches(s1) and f.matches(s2)
    assert not f.matches(subj("eyes"))
    assert not parse_filter("red*").matches(s1)


# ------------------------------------------------------------------------ special terms


@pytest.mark.parametrize(
    ("expr", "folder", "want"),
    [
        ("folder:10_mira_uniform", "10_mira_uniform", True),
        ("folder:mira_uniform", "10_mira_uniform", True),  # without the repeats prefix
        ("folder:10_*", "10_mira_uniform", True),
        ("folder:10_*", "5_mira", False),
        ("folder:*uniform", "10_mira_uniform", True),
        ("folder:mira", "10_mira_uniform", False),
        ("folder:mira*", "10_mira_uniform", True),
        ("folder:Mira*", "10_mira_uniform", False),
        ("folder:mira", "mira", True),  # no prefix: kohya skips it, but the name still matches
        ("folder:_mira", "x_mira", False),  # "x" is not a repeats prefix
        ('folder:"10_my folder"', "10_my folder", True),
        ('folder:"my folder"', "10_my folder", True),
        ('folder:"my*"', "10_my folder", True),
        ("folder: my folder", "10_my folder", True),
        ("folder:mira AND solo", "10_mira", False),  # no solo tag
    ],
)
def test_folder(expr, folder, want):
    assert hits(expr, "1girl", folder=folder) is want


def test_folder_combined_with_tags():
    f = parse_filter("folder:10_* AND (solo OR NOT 1girl)")
    assert f.matches(subj("solo", folder="10_mira"))
    assert not f.matches(subj("solo", folder="3_mira"))
    assert not f.matches(subj("1girl", folder="10_mira"))
    assert f.tag_terms() == {"solo"}


@pytest.mark.parametrize(
    ("expr", "n", "want"),
    [
        ("tags>3", 4, True),
        ("tags>3", 3, False),
        ("tags>=3", 3, True),
        ("tags>=3", 2, False),
        ("tags<3", 2, True),
        ("tags<3", 3, False),
        ("tags<=3", 3, True),
        ("tags<=3", 4, False),
        ("tags=3", 3, True),
        ("tags=3", 4, False),
        ("tags = 0", 0, True),
        ("tags >= 10", 12, True),
        ("tags< 10", 12, False),
    ],
)
def test_tag_count(expr, n, want):
    assert hits(expr, *(f"tag{i}" for i in range(n))) is want


def test_tag_count_combined():
    f = parse_filter("tags>2 AND NOT tags>4 OR empty")
    assert [f.matches(subj(*(f"t{i}" for i in range(n)))) for n in range(7)] == [
        True,
        False,
        False,
        True,
        True,
        False,
        False,
    ]


def test_a_plain_tags_tag_is_still_a_tag():
    assert hits("tags", "tags")
    assert hits("tagsfoo>3", "tagsfoo>3")


def test_empty_and_caption_missing():
    missing = subj(has_caption=False)
    blank = subj()
    full = subj("solo")
    e, m = parse_filter("empty"), parse_filter("caption:missing")
    assert e.matches(missing) and e.matches(blank) and not e.matches(full)
    assert m.matches(missing) and not m.matches(blank) and not m.matches(full)
    assert parse_filter("-empty").matches(full)
    assert parse_filter("empty OR solo").tag_terms() == {"solo"}


def test_subject_built_directly():
    s = Subject(frozenset({tag_key("long_hair")}), "2_x", 1, True)
    assert parse_filter("long hair AND folder:x AND tags=1").matches(s)


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("expr", "position", "words"),
    [
        ("a AND", 5, "after 'AND'"),
        ("a AND   ", 5, "after 'AND'"),
        ("a &", 3, "after '&'"),
        ("OR b", 0, "before 'OR'"),
        ("| b", 0, "before '|'"),
        ("NOT", 3, "after 'NOT'"),
        ("!", 1, "after '!'"),
        ("a AND OR b", 6, "after 'AND', found 'OR'"),
        ("a OR AND b", 5, "after 'OR', found 'AND'"),
        ("NOT )", 4, "after 'NOT', found ')'"),
        ("(a", 2, "expected ')'"),
        ("a AND (b", 8, "expected ')'"),
        ("((a) OR b", 9, "expected ')'"),
        ("a)", 1, "unmatched ')'"),
        (")", 0, "unmatched ')'"),
        ("(a)) OR b", 3, "unmatched ')'"),
        ("()", 1, "empty parentheses"),
        ("(a b c", 6, "expected ')'"),
        ('""', 0, "empty quoted term"),
        ('a AND "  "', 6, "empty quoted term"),
        ('"abc', 0, "unterminated quote"),
        ('a OR "abc\\"', 5, "unterminated quote"),
        ("tags>", 5, "number after 'tags>'"),
        ("tags>=", 6, "number after 'tags>='"),
        ("tags<x", 5, "number after 'tags<'"),
        ("a AND tags > many", 13, "number after 'tags>'"),
        ("tags=3 girls", 5, "number after 'tags='"),
        ("folder:", 7, "folder name"),
        ("x OR folder:", 12, "folder name"),
        ("a NOT b", 2, "before 'NOT'"),
        ('"a" b', 4, "before 'b'"),
        ("a (b)", 2, "before '('"),
        ("(a) b", 4, "before 'b'"),
        ("(a b", 4, "expected ')'"),
        ("(a NOT b)", 3, "or ')' before 'NOT'"),
        ("long hair -solo", 10, "before '-'"),
        ("- a", 0, "after '-'"),
        ("a AND -", 6, "after '-'"),
        ("-)", 0, "after '-'"),
    ],
)
def test_errors_name_the_position(expr, position, words):
    with pytest.raises(FilterError) as e:
        parse_filter(expr)
    err = e.value
    assert err.position == position, str(err)
    assert err.column == position + 1
    assert words in err.message
    assert err.expr == expr
    assert str(err) == f"{err.message} at column {position + 1}: {expr}"
    assert "\n" not in str(err)


def test_filter_error_is_a_value_error_and_a_user_error():
    from lorabake_tui.core.base.errors import LorabakeError

    with pytest.raises(ValueError):
        parse_filter("a AND")
    with pytest.raises(LorabakeError):
        parse_filter("(")


def test_error_message_example_shape():
    with pytest.raises(FilterError) as e:
        parse_filter("a AND (b")
    assert str(e.value) == "expected ')' at column 9: a AND (b"


# -------------------------------------------------------------------------- performance


class CountingKeys(frozenset):
    """A key set that counts membership tests and iterations, to check the work done."""

    contains = 0
    iterations = 0

    def __contains__(self, item):
        CountingKeys.contains += 1
        return frozenset.__contains__(self, item)

    def __iter__(self):
        CountingKeys.iterations += 1
        return frozenset.__iter__(self)


def make_subjects(n: int, seed: int = 7) -> list[tuple[list[str], str]]:
    rng = random.Random(seed)
    vocab = [f"tag {i}" for i in range(300)] + [
        "long hair",
        "blue eyes",
        "solo",
        "1girl",
        "white background",
        "simple background",
        "smile",
        "photo (medium)",
    ]
    rows = []
    for _ in range(n):
        tags = rng.sample(vocab, rng.randint(0, 25))
        rows.append((tags, rng.choice(["10_mira", "5_mira_uniform", "1_reg"])))
    return rows


def brute(tags: list[str], folder: str) -> bool:
    keys = {t for t in tags}
    return bool(
        ("long hair" in keys and "blue eyes" not in keys)
        or (any(k.endswith(" background") for k in keys) and len(tags) > 5)
        or (folder in ("5_mira_uniform",) and "solo" in keys)
    )


def test_evaluation_over_10k_subjects_is_linear_and_correct():
    expr = "long_hair AND -blue_eyes OR *_background AND tags>5 OR folder:mira_uniform AND solo"
    f = parse_filter(expr)
    rows = make_subjects(10_000)
    subjects = [
        Subject(CountingKeys(tag_key(t) for t in tags), folder, len(tags), True)
        for tags, folder in rows
    ]
    CountingKeys.contains = CountingKeys.iterations = 0
    got = sum(f.matches(s) for s in subjects)
    want = sum(brute(tags, folder) for tags, folder in rows)
    assert got == want and 0 < got < len(rows)
    # each plain tag costs at most one set look-up per subject; the wildcard never loops in Python
    assert CountingKeys.contains <= 3 * len(subjects)
    assert CountingKeys.iterations <= len(subjects)
    # a second pass (memo warm) gives the same answer
    assert sum(f.matches(s) for s in subjects) == got


# ------------------------------------------------------------------- robustness limits


def test_deep_nesting_up_to_the_limit_works():
    depth = MAX_NESTING
    f = parse_filter("(" * depth + "a OR b AND c" + ")" * depth)
    assert f.matches(subj("a")) and not f.matches(subj("b"))
    nots = parse_filter("NOT " * depth + "a")
    assert nots.matches(subj("a")) is (depth % 2 == 0)
    # every level holding OR, AND and NOT still compiles
    mixed = "a"
    for _ in range(depth // 2):
        mixed = f"x OR y AND NOT (z OR {mixed})"
    assert parse_filter(mixed).matches(subj("x"))


@pytest.mark.parametrize(
    ("expr", "position"),
    [
        ("(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1), MAX_NESTING),
        ("-" * (MAX_NESTING + 1) + "a", MAX_NESTING),
        ("NOT " * (MAX_NESTING + 1) + "a", 4 * MAX_NESTING),
        ("(" * 5000 + "a", MAX_NESTING),  # never a RecursionError
    ],
)
def test_nesting_beyond_the_limit_is_a_filter_error(expr, position):
    with pytest.raises(FilterError) as e:
        parse_filter(expr)
    assert e.value.position == position
    assert "nested" in e.value.message


def test_long_flat_expressions():
    terms = [f"tag {i}" for i in range(3000)]
    f = parse_filter(" OR ".join(terms))
    assert f.matches(subj("tag 2999")) and not f.matches(subj("tag 3000"))
    g = parse_filter(" & ".join(terms))
    assert g.matches(subj(*terms)) and not g.matches(subj(*terms[1:]))
    assert len(g.tag_terms()) == 3000


@pytest.mark.parametrize(
    "tag",
    ['") or True or ("', "'; import os; '", "keys", "s.count", "_v0", "__import__('os')", "\\"],
)
def test_hostile_tag_text_is_only_ever_data(tag):
    quoted = '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'
    f = parse_filter(f"{quoted} OR folder:{quoted}")
    assert not f.matches(subj("solo"))
    assert f.matches(subj(tag))
    assert f.matches(subj("x", folder=tag))
