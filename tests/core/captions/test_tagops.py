"""Tag-list operations (`core.tagops`) and their rule data (`core.tagrules`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorabake_tui.core.captions import tagrules
from lorabake_tui.core.captions.tagops import (
    Op,
    add_tags,
    apply_implications,
    apply_synonyms,
    compile_regex,
    consolidate,
    dedupe,
    find_cycle,
    implication_closure,
    normalize,
    op_add,
    op_consolidate,
    op_dedupe,
    op_implications,
    op_normalize,
    op_prune,
    op_remove,
    op_replace,
    op_sort,
    op_synonyms,
    remove_tags,
    replace_regex,
    replace_substring,
    replace_tag,
    sort_tags,
)
from lorabake_tui.core.captions.tags import tag_key

from ...support.paths import PACKAGE


def frozen(fn, tags, *args, **kwargs):
    """Call `fn` and check it left its input alone and returned a new list."""
    before = list(tags)
    out = fn(tags, *args, **kwargs)
    assert tags == before, "input list was changed"
    assert out is not tags
    return out


# ---------------------------------------------------------------- replace_tag


def test_replace_tag_exact_by_key_keeps_others_in_place():
    tags = ["mira", "tiara", "long_hair", "smile"]
    assert frozen(replace_tag, tags, "tiara", "circlet") == [
        "mira",
        "circlet",
        "long_hair",
        "smile",
    ]


def test_replace_tag_matches_underscore_and_space_forms():
    tags = ["a", "long_hair", "smile"]
    assert replace_tag(tags, "long hair", "very long hair") == ["a", "very long hair", "smile"]
    assert replace_tag(["long hair"], "long_hair", "short_hair") == ["short_hair"]


def test_replace_tag_matches_escaped_parentheses():
    tags = ["photo \\(medium\\)", "1girl"]
    assert replace_tag(tags, "photo (medium)", "photo") == ["photo", "1girl"]
    assert replace_tag(["photo (medium)"], "photo \\(medium\\)", "x") == ["x"]


def test_replace_tag_is_not_a_substring_match():
    assert replace_tag(["red bow", "bow"], "bow", "ribbon") == ["red bow", "ribbon"]


def test_replace_tag_into_present_tag_keeps_first_position():
    # the replaced tag comes first: it wins, written as `new`
    assert replace_tag(["tiara", "a", "circlet"], "tiara", "circlet") == ["circlet", "a"]
    # `new` already earlier: it stays, in its written form
    assert replace_tag(["circ_let", "a", "tiara"], "tiara", "circ let") == ["circ_let", "a"]


def test_replace_tag_empty_new_removes_every_copy():
    assert replace_tag(["a", "meme", "b", "meme"], "meme", "") == ["a", "b"]


def test_replace_tag_absent_returns_equal_copy():
    tags = ["a", "b"]
    out = frozen(replace_tag, tags, "zzz", "y")
    assert out == tags


def test_replace_tag_same_key_rewrites_written_form():
    assert replace_tag(["x", "long_hair"], "long hair", "long hair") == ["x", "long hair"]


def test_replace_tag_leaves_unrelated_duplicates():
    assert replace_tag(["a", "a", "tiara"], "tiara", "b") == ["a", "a", "b"]


# ---------------------------------------------------------------- replace_substring


def test_replace_substring_matches_both_written_forms_and_keeps_each_style():
    tags = ["red_bow", "red bow tie", "bored", "smile"]
    out = frozen(replace_substring, tags, "red", "blue")
    assert out == ["blue_bow", "blue bow tie", "boblue", "smile"]


def test_replace_substring_old_with_space_matches_underscore():
    assert replace_substring(["red_bow", "red bow"], "red bow", "dark blue bow") == [
        "dark_blue_bow"
    ]


def test_replace_substring_parentheses_with_or_without_backslash():
    tags = ["photo \\(medium\\)", "traditional (medium)"]
    out = replace_substring(tags, "(medium)", "(style)")
    assert out == ["photo \\(style\\)", "traditional (style)"]
    assert replace_substring(["photo \\(medium\\)"], "\\(medium\\)", "") == ["photo"]


def test_replace_substring_drops_empty_and_dedupes_by_key():
    tags = ["ribbon", "hair ribbon", "x", "hair_ribbon"]
    # removing "hair " turns both hair ribbons into ribbon, which is already first
    assert replace_substring(tags, "hair ", "") == ["ribbon", "x"]
    assert replace_substring(["meme", "a"], "meme", "") == ["a"]


def test_replace_substring_deletion_tidies_separators():
    tags = ["red_bow", "blue red bow", "bow_red", "x"]
    assert replace_substring(tags, "red", "") == ["bow", "blue bow", "x"]
    # separators the tag had itself are not touched
    assert replace_substring(["a__b_red"], "red", "") == ["a__b"]


def test_replace_substring_short_tags_only_literal():
    tags = ["^_^", "o_o", "long_hair"]
    assert replace_substring(tags, "_", "-") == ["^-^", "o-o", "long-hair"]
    # a space never stands for the underscore of an emoticon
    assert replace_substring(["^_^", "a b"], " ", "+") == ["^_^", "a+b"]


def test_replace_substring_noop():
    tags = ["a", "b"]
    assert frozen(replace_substring, tags, "zz", "y") == tags
    assert replace_substring(tags, "", "y") == tags


# ---------------------------------------------------------------- replace_regex


def test_replace_regex_on_written_form():
    tags = ["red_bow", "blue bow", "bowtie"]
    out = frozen(replace_regex, tags, r"^(\w+)[ _]bow$", r"\1 ribbon")
    assert out == ["red ribbon", "blue ribbon", "bowtie"]


def test_replace_regex_drops_empty_and_dedupes():
    assert replace_regex(["meme", "a", "parody"], r"^(meme|parody)$", "") == ["a"]
    assert replace_regex(["a", "b", "a_x"], r"_x$", "") == ["a", "b"]


def test_replace_regex_accepts_compiled_pattern():
    assert replace_regex(["ab"], re.compile("b"), "c") == ["ac"]


def test_compile_regex_invalid_is_value_error():
    assert compile_regex("a+").pattern == "a+"
    with pytest.raises(ValueError, match=r"invalid regular expression '\(unclosed'"):
        compile_regex("(unclosed")
    with pytest.raises(ValueError, match="empty"):
        compile_regex("")
    with pytest.raises(ValueError, match="invalid regular expression"):
        replace_regex(["a"], "[", "")


def test_replace_regex_bad_group_reference():
    with pytest.raises(ValueError, match="invalid replacement"):
        replace_regex(["a"], "a", r"\2")


# ---------------------------------------------------------------- remove_tags


def test_remove_tags_exact_and_glob_on_keys():
    tags = ["1girl", "white_background", "simple background", "meme", "long hair", "2girls"]
    out = frozen(remove_tags, tags, ["*_background", "meme"])
    assert out == ["1girl", "long hair", "2girls"]
    assert remove_tags(tags, ["?girl"]) == [t for t in tags if t != "1girl"]
    assert remove_tags(tags, "*hair") == [t for t in tags if t != "long hair"]


def test_remove_tags_escaped_parentheses_and_glob_off():
    tags = ["photo \\(medium\\)", "sailor_moon_redraw_challenge_(meme)", "a*b"]
    assert remove_tags(tags, ["photo (medium)", "*\\(meme\\)"]) == ["a*b"]
    assert remove_tags(tags, ["a*"], glob=False) == tags
    assert remove_tags(tags, ["a*b"], glob=False) == tags[:2]


def test_remove_tags_short_tags_match_literally():
    assert remove_tags(["^_^", "o_o", "^ ^"], ["^_^"]) == ["o_o", "^ ^"]


# ---------------------------------------------------------------- add_tags


def test_add_tags_first_last_index():
    tags = ["a", "b", "c"]
    assert frozen(add_tags, tags, ["t1", "t2"]) == ["t1", "t2", "a", "b", "c"]
    assert add_tags(tags, ["t"], "last") == ["a", "b", "c", "t"]
    assert add_tags(tags, ["t"], 1) == ["a", "t", "b", "c"]
    assert add_tags(tags, "t", 99) == ["a", "b", "c", "t"]
    assert add_tags(tags, "t", -5) == ["t", "a", "b", "c"]


def test_add_tags_moves_present_tags_keeping_written_form():
    tags = ["1girl", "my_trigger", "smile"]
    assert add_tags(tags, ["my trigger"]) == ["my_trigger", "1girl", "smile"]
    assert add_tags(tags, ["smile", "new"], 0) == ["smile", "new", "1girl", "my_trigger"]
    # the index counts in the list without the moved tags
    assert add_tags(["a", "b", "c", "d"], ["a"], 2) == ["b", "c", "a", "d"]


def test_add_tags_dedupes_new_and_skips_blank():
    assert add_tags(["x"], ["t", "", "t", " "]) == ["t", "x"]
    assert add_tags(["x"], []) == ["x"]


def test_add_tags_bad_position():
    with pytest.raises(ValueError, match="bad position"):
        add_tags(["a"], ["b"], "middle")
    with pytest.raises(ValueError, match="bad position"):
        add_tags(["a"], ["b"], True)


# ---------------------------------------------------------------- consolidate


def test_consolidate_puts_into_at_first_found():
    tags = ["1girl", "bow", "smile", "red_bow", "bowtie"]
    out = frozen(consolidate, tags, ["bow", "red bow", "bowtie"], "red bowtie")
    assert out == ["1girl", "red bowtie", "smile"]


def test_consolidate_keeps_present_into_where_it_is():
    tags = ["bow", "1girl", "red_bowtie", "red bow"]
    assert consolidate(tags, ["bow", "red bow"], "red bowtie") == ["1girl", "red_bowtie"]


def test_consolidate_nothing_present_or_into_in_group():
    tags = ["a", "b"]
    assert frozen(consolidate, tags, ["x", "y"], "z") == tags
    assert consolidate(["circlet"], ["tiara", "circlet"], "circlet") == ["circlet"]
    assert consolidate(["tiara", "circlet"], ["tiara", "circlet"], "circlet") == ["circlet"]


# ---------------------------------------------------------------- synonyms / dedupe


def test_apply_synonyms_replaces_and_dedupes_first_wins():
    mapping = {"tiara": "circlet", "blond_hair": "blonde hair"}
    tags = ["1girl", "blond hair", "tiara", "circlet", "blonde_hair"]
    out = frozen(apply_synonyms, tags, mapping)
    assert out == ["1girl", "blonde hair", "circlet"]


def test_apply_synonyms_leaves_canonical_form_and_others_alone():
    assert apply_synonyms(["long_hair", "a"], {"long hair": "long hair"}) == ["long_hair", "a"]
    assert apply_synonyms(["x", "x"], {"tiara": "circlet"}) == ["x", "x"]


def test_dedupe_first_written_form_wins():
    tags = ["long_hair", "a", "long hair", "photo (medium)", "photo \\(medium\\)", "", "a"]
    assert frozen(dedupe, tags) == ["long_hair", "a", "photo (medium)"]


def test_dedupe_short_tags_are_not_spaces():
    assert dedupe(["^_^", "^ ^", "^_^"]) == ["^_^", "^ ^"]


# ---------------------------------------------------------------- sort


def test_sort_by_name_keeps_head():
    tags = ["trigger", "smile", "Blue eyes", "a_b", "1girl"]
    assert frozen(sort_tags, tags, keep=1) == ["trigger", "1girl", "a_b", "Blue eyes", "smile"]
    assert sort_tags(tags) == ["1girl", "a_b", "Blue eyes", "smile", "trigger"]


def test_sort_by_count_then_name_counts_any_form():
    tags = ["trig", "smile", "long_hair", "1girl", "zzz"]
    counts = {"smile": 3, "long hair": 5, "long_hair": 1, "1girl": 3}
    assert sort_tags(tags, "count", 1, counts) == ["trig", "long_hair", "1girl", "smile", "zzz"]


def test_sort_validation():
    with pytest.raises(ValueError, match="unknown sort"):
        sort_tags(["a"], by="size")
    with pytest.raises(ValueError, match="keep"):
        sort_tags(["a"], keep=-1)
    with pytest.raises(ValueError, match="counts"):
        sort_tags(["a"], by="count")


# ---------------------------------------------------------------- normalize


def test_normalize_spaces_and_underscores():
    tags = ["long_hair", "^_^", "photo \\(medium\\)", "blue eyes", ":d"]
    assert frozen(normalize, tags, "spaces") == [
        "long hair",
        "^_^",
        "photo \\(medium\\)",
        "blue eyes",
        ":d",
    ]
    assert normalize(tags, "underscores") == [
        "long_hair",
        "^_^",
        "photo_\\(medium\\)",
        "blue_eyes",
        ":d",
    ]
    assert normalize(["^ ^"], "underscores") == ["^ ^"]


def test_normalize_collapses_forms_and_keep_is_identity():
    assert normalize(["long hair", "x", "long_hair"], "underscores") == ["long_hair", "x"]
    assert normalize(["a_b c"], "keep") == ["a_b c"]
    with pytest.raises(ValueError, match="unknown style"):
        normalize(["a"], "camel")


# ---------------------------------------------------------------- implications


HAIR = [("absurdly long hair", "very long hair"), ("very_long_hair", "long hair")]


def test_implications_transitive():
    tags = ["long_hair", "1girl", "absurdly_long_hair", "very long hair"]
    assert frozen(apply_implications, tags, HAIR) == ["1girl", "absurdly_long_hair"]
    assert apply_implications(["long hair", "very long hair"], HAIR) == ["very long hair"]
    assert apply_implications(["long hair", "smile"], HAIR) == ["long hair", "smile"]


def test_implication_closure_and_cycles():
    closure = implication_closure(HAIR)
    assert closure["absurdly long hair"] == {"very long hair", "long hair"}
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        apply_implications(["a"], [("a", "b"), ("b", "a")])
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["b"]}) == ["b", "c", "b"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"]}) is None


# ---------------------------------------------------------------- Op


def test_op_is_frozen_and_callable():
    op = op_replace("tiara", "circlet")
    assert isinstance(op, Op)
    assert op.name == "replace"
    assert op.describe == "replace 'tiara' with 'circlet'"
    assert op(["tiara", "a"]) == ["circlet", "a"]
    assert op.fn(["tiara"]) == ["circlet"]
    with pytest.raises(AttributeError):
        op.name = "x"  # type: ignore[misc]


def test_op_replace_modes_and_describe():
    assert op_replace("meme", "").describe == "remove 'meme'"
    assert op_replace("meme", "")(["meme", "a"]) == ["a"]
    sub = op_replace("red", "blue", "substring")
    assert sub.describe == "replace 'red' with 'blue' inside tags"
    assert sub(["red_bow"]) == ["blue_bow"]
    rx = op_replace(r"^(\w+) bow$", r"\1 ribbon", "regex")
    assert "regex" in rx.describe
    assert rx(["red bow"]) == ["red ribbon"]


def test_op_replace_validation():
    with pytest.raises(ValueError, match="unknown replace mode"):
        op_replace("a", "b", "fuzzy")
    with pytest.raises(ValueError, match="empty"):
        op_replace(" ", "b")
    with pytest.raises(ValueError, match="empty"):
        op_replace("", "b", "substring")
    with pytest.raises(ValueError, match="invalid regular expression"):
        op_replace("(", "b", "regex")
    with pytest.raises(ValueError, match="invalid replacement"):
        op_replace("a", r"\1", "regex")
    with pytest.raises(ValueError, match="comma"):
        op_replace("a", "b, c")


def test_op_remove_and_prune():
    rm = op_remove(["*_background", "meme"])
    assert rm.name == "remove"
    assert rm.describe == "remove '*_background', 'meme'"
    assert rm(["white background", "meme", "a"]) == ["a"]
    prune = op_prune(["blue eyes", "long_hair", "a*"])
    assert prune.name == "prune"
    assert prune(["long hair", "blue_eyes", "a*", "ab", "smile"]) == ["ab", "smile"]
    many = op_prune([f"t{i}" for i in range(10)])
    assert many.describe.startswith("prune 10 tags")
    assert "and 6 more" in many.describe
    with pytest.raises(ValueError, match="no pattern"):
        op_remove([])
    with pytest.raises(ValueError, match="empty"):
        op_prune(["a", ""])


def test_op_add_and_validation():
    op = op_add(["mira"], "first")
    assert op.describe == "add 'mira' first"
    assert op(["1girl", "mira"]) == ["mira", "1girl"]
    assert op_add("x", 2).describe == "add 'x' at position 2"
    assert op_add("x", "last")(["a"]) == ["a", "x"]
    for bad in ("middle", -1, 1.5, True):
        with pytest.raises(ValueError, match="position"):
            op_add(["x"], bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        op_add([""])


def test_op_consolidate_synonyms_implications():
    con = op_consolidate(["bow", "red bow"], "red bowtie")
    assert con.describe == "consolidate 'bow', 'red bow' into 'red bowtie'"
    assert con(["bow", "a"]) == ["red bowtie", "a"]
    with pytest.raises(ValueError, match="into is empty"):
        op_consolidate(["bow"], "")
    syn = op_synonyms({"tiara": "circlet"})
    assert syn.describe == "replace synonym 'tiara' with 'circlet'"
    assert syn(["tiara"]) == ["circlet"]
    assert op_synonyms({"a": "b", "c": "d"}).describe.startswith("replace 2 synonyms")
    with pytest.raises(ValueError, match="no synonyms"):
        op_synonyms({})
    with pytest.raises(ValueError, match="empty"):
        op_synonyms({"a": " "})
    imp = op_implications(HAIR)
    assert imp.describe == "drop tags implied by a more specific tag (2 rules)"
    assert imp(["long hair", "absurdly long hair"]) == ["absurdly long hair"]
    with pytest.raises(ValueError, match="cycle"):
        op_implications([("a", "b"), ("b", "c"), ("c", "a")])


def test_op_dedupe_sort_normalize():
    assert op_dedupe()(["a", "a"]) == ["a"]
    assert op_dedupe().describe == "remove duplicate tags"
    s = op_sort("count", 1, {"b": 2, "c": 5})
    assert s.describe == "sort tags by count, keeping the first"
    assert s(["t", "b", "c"]) == ["t", "c", "b"]
    assert op_sort(keep=2).describe == "sort tags by name, keeping the first 2 in place"
    with pytest.raises(ValueError, match="counts"):
        op_sort("count")
    with pytest.raises(ValueError, match="unknown sort"):
        op_sort("random")
    n = op_normalize("underscores")
    assert n.describe == "write tags with underscores"
    assert n(["long hair", "^_^"]) == ["long_hair", "^_^"]
    with pytest.raises(ValueError, match="unknown style"):
        op_normalize("kebab")


def test_ops_chain_like_the_guide():
    """Prune intrinsic traits, clean up, trigger first."""
    ops = [
        op_remove(["meme", "uncensored"]),
        op_synonyms({"tiara": "circlet"}),
        op_prune(["blue eyes", "long hair"]),
        op_add(["mira"], "first"),
        op_dedupe(),
    ]
    tags = ["1girl", "long_hair", "tiara", "uncensored", "blue_eyes", "circlet", "smile"]
    for op in ops:
        tags = op(tags)
    assert tags == ["mira", "1girl", "circlet", "smile"]


# ---------------------------------------------------------------- presets


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def user_presets(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path / "cfg" / "lorabake" / "presets"


def test_bundled_presets_listed_and_loaded(user_presets):
    names = tagrules.list_presets()
    for name in ("hair-colour", "hair-length", "hair-style", "eye-colour", "skin", "features"):
        assert name in names
        assert tagrules.load_preset(name)
    assert "intrinsic" in names
    assert {"blonde hair", "two-tone hair", "gradient hair"} <= set(
        tagrules.load_preset("hair-colour")
    )
    assert tagrules.load_preset("hair-length")[:3] == [
        "very short hair",
        "short hair",
        "medium hair",
    ]


def test_intrinsic_is_union_of_includes(user_presets):
    union: list[str] = []
    for name in ("hair-colour", "hair-length", "hair-style", "eye-colour", "skin", "features"):
        union += tagrules.load_preset(name)
    intrinsic = tagrules.load_preset("intrinsic")
    assert intrinsic == dedupe(union)
    assert len({tag_key(t) for t in intrinsic}) == len(intrinsic)
    assert not any(t.startswith("@") for t in intrinsic)


def test_bundled_data_is_inside_the_package():
    pkg = PACKAGE
    assert pkg / "data" == tagrules.DATA_DIR
    for f in (tagrules.DEFAULT_SYNONYMS, tagrules.DEFAULT_IMPLICATIONS, tagrules.BUNDLED_PRESETS):
        assert f.exists()


def test_user_preset_overrides_and_adds(user_presets):
    write(user_presets / "hair-length.txt", "# mine\nlong hair\n\nmedium_hair  # inline\n")
    write(user_presets / "mira.txt", "@include hair-length\nmole under eye\nlong_hair\n")
    assert "mira" in tagrules.list_presets()
    assert tagrules.load_preset("hair-length") == ["long hair", "medium_hair"]
    assert tagrules.preset_path("hair-length") == user_presets / "hair-length.txt"
    assert tagrules.preset_path("skin") == tagrules.BUNDLED_PRESETS / "skin.txt"
    # the user file also wins inside an include; tags come once by key
    assert tagrules.load_preset("mira") == ["long hair", "medium_hair", "mole under eye"]


def test_unknown_preset_lists_available(user_presets):
    with pytest.raises(ValueError, match=r"unknown preset 'nope' \(available: .*hair-colour"):
        tagrules.load_preset("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        tagrules.load_preset("../presets/skin")


def test_preset_include_errors(user_presets):
    write(user_presets / "a.txt", "x\n@include b\n")
    write(user_presets / "b.txt", "y\n@include a\n")
    with pytest.raises(ValueError, match=r"b\.txt:2: preset include cycle: a -> b -> a"):
        tagrules.load_preset("a")
    write(user_presets / "self.txt", "@include self\n")
    with pytest.raises(ValueError, match="cycle: self -> self"):
        tagrules.load_preset("self")
    write(user_presets / "bad.txt", "x\n@include missing\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: unknown preset 'missing'"):
        tagrules.load_preset("bad")
    write(user_presets / "odd.txt", "@import x\n")
    with pytest.raises(ValueError, match=r"odd\.txt:1: unknown directive '@import'"):
        tagrules.load_preset("odd")
    write(user_presets / "bare.txt", "@include\n")
    with pytest.raises(ValueError, match=r"bare\.txt:1: @include needs a preset name"):
        tagrules.load_preset("bare")


def test_preset_feeds_op_prune(user_presets):
    prune = op_prune(tagrules.load_preset("intrinsic"))
    tags = ["mira", "1girl", "blue_eyes", "long_hair", "ponytail", "smile", "school uniform"]
    assert prune(tags) == ["mira", "1girl", "smile", "school uniform"]


# ---------------------------------------------------------------- synonyms file


def test_load_synonyms(tmp_path):
    f = write(
        tmp_path / "syn.txt",
        "# comment\n\ncirclet: tiara, head_piece,\nblonde hair: blond_hair  # alias\n:d: :D\n",
    )
    mapping = tagrules.load_synonyms(f)
    assert mapping == {
        "tiara": "circlet",
        "head piece": "circlet",
        "blond hair": "blonde hair",
        ":D": ":d",
    }
    assert apply_synonyms(["head_piece", "blond hair", "x"], mapping) == [
        "circlet",
        "blonde hair",
        "x",
    ]


def test_bundled_synonyms_are_valid():
    mapping = tagrules.load_synonyms()
    assert mapping["blond hair"] == "blonde hair"
    assert "tiara" not in mapping  # dataset-specific: not a default


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: b\nno separator here\n", 2, "expected 'canonical: synonym"),
        (": b\n", 1, "canonical tag before ':' is empty"),
        ("x\n\ncirclet:\n", 1, "expected"),
        ("circlet:  ,\n", 1, "no synonyms"),
        ("circlet: tiara\ncrown: tiara\n", 2, "already mapped to 'circlet' on line 1"),
        ("circlet: circlet\n", 1, "synonym of itself"),
        ("circlet: tiara\ntiara: crown\n", 2, "synonym on line 1"),
        ("circlet: tiara\ncrown: circlet\n", 2, "canonical tag on line 1"),
    ],
)
def test_load_synonyms_errors_name_file_and_line(tmp_path, text, line, message):
    f = write(tmp_path / "syn.txt", text)
    with pytest.raises(
        ValueError, match=re.escape(f"syn.txt:{line}: ") + ".*" + re.escape(message)
    ):
        tagrules.load_synonyms(f)


def test_load_synonyms_same_pair_twice_is_fine(tmp_path):
    f = write(tmp_path / "syn.txt", "circlet: tiara\ncirclet: tiara, crown\n")
    assert tagrules.load_synonyms(f) == {"tiara": "circlet", "crown": "circlet"}


# ---------------------------------------------------------------- implications file


def test_bundled_implications_chain_hair_length():
    rules = tagrules.load_implications()
    assert 30 <= len(rules) <= 70
    assert ("very long hair", "long hair") in rules
    tags = ["mira", "long_hair", "absurdly_long_hair", "very long hair", "white_shirt", "shirt"]
    assert apply_implications(tags, rules) == ["mira", "absurdly_long_hair", "white_shirt"]
    assert apply_implications(["holding_sword", "holding", "sword"], rules) == ["holding_sword"]


def test_load_implications_keys_and_duplicates(tmp_path):
    f = write(tmp_path / "imp.txt", "# x\nred_bowtie -> bowtie\nred bowtie->bowtie\n\n")
    assert tagrules.load_implications(f) == [("red bowtie", "bowtie")]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a -> b\nc\n", 2, "expected 'specific -> general'"),
        ("a -> b -> c\n", 1, "expected 'specific -> general'"),
        (" -> b\n", 1, "a tag is missing"),
        ("long_hair -> long hair\n", 1, "implies itself"),
    ],
)
def test_load_implications_errors_name_file_and_line(tmp_path, text, line, message):
    f = write(tmp_path / "imp.txt", text)
    with pytest.raises(
        ValueError, match=re.escape(f"imp.txt:{line}: ") + ".*" + re.escape(message)
    ):
        tagrules.load_implications(f)


def test_load_implications_cycle(tmp_path):
    f = write(tmp_path / "imp.txt", "x -> y\na -> b\nb -> c\nc -> a\n")
    with pytest.raises(ValueError, match=r"implication cycle a -> b -> c -> a \(lines 2, 3, 4\)"):
        tagrules.load_implications(f)
