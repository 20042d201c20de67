"""Parsing and writing one caption file: tags, escapes, BOM, line endings, non-UTF-8."""

from __future__ import annotations

import pytest

from lorabake_tui.core.captions.caption_file import (
    CaptionDecodeError,
    format_caption,
    parse_caption,
    split_tags,
)
from lorabake_tui.core.captions.tags import styled, tag_key


def test_split_trims_drops_empty_and_keeps_order():
    assert split_tags(" b , a,,  c d ,") == ["b", "a", "c d"]
    assert split_tags("") == []


@pytest.mark.parametrize("raw", [
    b"a, b\n", b"a, b", b"a, b\r\n", b"\xef\xbb\xbfa, b\r\n", b"a, b\rsecond line\r", b"a\n",
    b"a, b\nline two\nline three\n", "caf\u00e9, \u65e5\u672c\n".encode(), b"\n",
])
def test_unchanged_tags_give_identical_bytes(raw):
    c = parse_caption(raw)
    assert format_caption(c, list(c.tags)) == raw


def test_bom_crlf_and_rest_survive_an_edit():
    c = parse_caption(b"\xef\xbb\xbfa, b\r\nnotes the user keeps\r\n")
    assert c.tags == ("a", "b") and c.bom and c.eol == "\r\n"
    assert format_caption(c, ["x"]) == b"\xef\xbb\xbfx\r\nnotes the user keeps\r\n"


def test_no_trailing_newline_stays_without_one():
    c = parse_caption(b"a,b")
    assert format_caption(c, ["a", "c"]) == b"a, c"


def test_new_caption_file_is_one_line_with_newline():
    assert format_caption(None, ["mira", "1girl"]) == b"mira, 1girl\n"


def test_escaped_parentheses_are_kept_verbatim():
    c = parse_caption(b"photo \\(medium\\), ^_^\n")
    assert c.tags == ("photo \\(medium\\)", "^_^")
    assert format_caption(c, list(c.tags)) == b"photo \\(medium\\), ^_^\n"


def test_non_utf8_is_refused_with_the_position():
    with pytest.raises(CaptionDecodeError) as exc:
        parse_caption(b"caf\xe9, b")
    assert exc.value.position == 3


def test_tag_identity():
    assert tag_key("long_hair") == tag_key("long hair") == tag_key(" long hair ")
    assert tag_key("photo \\(medium\\)") == tag_key("photo_(medium)") == "photo (medium)"
    assert tag_key("^_^") == "^_^" and tag_key("o_o") != tag_key("o o")
    assert tag_key("Long hair") != tag_key("long hair")  # case matters, as in prompts


def test_write_styles():
    assert styled("long_hair", "spaces") == "long hair"
    assert styled("long hair", "underscores") == "long_hair"
    assert styled("long hair", "keep") == "long hair"
    assert styled("^_^", "spaces") == "^_^"
    with pytest.raises(ValueError):
        styled("x", "camel")
