"""The bulk tag operations as data: their parameters and how to build each from text.

One table serves the CLI (`lorabake tags ...`) and the Tags screen's dialogs, so an operation
means the same thing, with the same checks, wherever it is started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..base.errors import LorabakeError
from . import tagops
from .caption_file import split_tags
from .tagops import Op
from .tagrules import list_presets, load_implications, load_preset, load_synonyms


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    kind: str = "tag"  # tag | tags (comma-separated) | text | choice | int | path
    default: str = ""
    choices: tuple[str, ...] = ()
    required: bool = True
    placeholder: str = ""


@dataclass(frozen=True, slots=True)
class OpSpec:
    name: str
    title: str
    key: str  # the Tags screen key that opens it
    fields: tuple[Field, ...]
    build: Callable[[Mapping[str, str], Mapping[str, int]], Op]
    create_missing_field: bool = False  # "add" may create captions for uncaptioned images


def _tags(values: Mapping[str, str], name: str) -> list[str]:
    return split_tags(values.get(name, ""))


def _position(text: str) -> str | int:
    text = text.strip() or "first"
    return int(text) if text.lstrip("-").isdigit() else text


def _prune(v: Mapping[str, str], _c) -> Op:
    preset, tags = v.get("preset", "").strip(), _tags(v, "tags")
    if bool(preset) == bool(tags):
        raise ValueError("prune needs a preset or a list of tags (one of them)")
    return tagops.op_prune(load_preset(preset) if preset else tags)


SPECS: tuple[OpSpec, ...] = (
    OpSpec("replace", "Replace", "R", (
        Field("old", "Find (tag, substring or regex)"),
        Field("new", "Replace with (empty removes)", required=False),
        Field("mode", "Match", "choice", "exact", ("exact", "substring", "regex")),
    ), lambda v, c: tagops.op_replace(v.get("old", ""), v.get("new", ""),
                                      v.get("mode") or "exact")),
    OpSpec("remove", "Remove", "x", (
        Field("tags", "Tags to remove (comma-separated; globs like *_background)", "tags"),
    ), lambda v, c: tagops.op_remove(_tags(v, "tags"))),
    OpSpec("add", "Add", "a", (
        Field("tags", "Tags to add (comma-separated; present ones are moved)", "tags"),
        Field("position", "Position: first, last or an index", "text", "first"),
    ), lambda v, c: tagops.op_add(_tags(v, "tags"), _position(v.get("position", ""))),
        create_missing_field=True),
    OpSpec("prune", "Prune", "p", (
        Field("preset", "Preset", "choice", "", required=False),
        Field("tags", "…or these tags (comma-separated)", "tags", required=False),
    ), _prune),
    OpSpec("consolidate", "Consolidate", "c", (
        Field("tags", "Group (comma-separated)", "tags"),
        Field("into", "Into one tag"),
    ), lambda v, c: tagops.op_consolidate(_tags(v, "tags"), v.get("into", ""))),
    OpSpec("synonyms", "Synonyms", "S", (
        Field("file", "Synonyms file ('canonical: syn1, syn2' per line; empty: bundled)",
              "path", required=False),
    ), lambda v, c: tagops.op_synonyms(load_synonyms(v.get("file") or None))),
    OpSpec("implications", "Implications", "i", (
        Field("file", "Rules file ('specific -> general' per line; empty: bundled)", "path",
              required=False),
    ), lambda v, c: tagops.op_implications(load_implications(v.get("file") or None))),
    OpSpec("dedupe", "Dedupe", "d", (), lambda v, c: tagops.op_dedupe()),
    OpSpec("sort", "Sort", "o", (
        Field("by", "Sort by", "choice", "name", ("name", "count")),
        Field("keep", "Keep the first N in place", "int", "1"),
    ), lambda v, c: tagops.op_sort(v.get("by") or "name", int(v.get("keep") or 0), c)),
    OpSpec("normalize", "Normalize", "n", (
        Field("style", "Write tags with", "choice", "spaces", ("spaces", "underscores")),
    ), lambda v, c: tagops.op_normalize(v.get("style") or "spaces")),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}


def preset_choices() -> tuple[str, ...]:
    return ("", *list_presets())


def build_op(name: str, values: Mapping[str, str], counts: Mapping[str, int]) -> Op:
    """The operation `name` with its parameters given as text; LorabakeError if they are bad."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        raise LorabakeError(f"unknown tag operation {name!r}")
    for f in spec.fields:
        if f.required and not str(values.get(f.name, "")).strip():
            raise LorabakeError(f"{spec.title}: '{f.label}' is required")
        if f.kind == "int" and values.get(f.name) and not str(values[f.name]).isdigit():
            raise LorabakeError(f"{spec.title}: '{f.label}' must be a whole number")
    try:
        return spec.build(values, counts)
    except (ValueError, OSError) as exc:
        raise LorabakeError(f"{spec.title}: {exc}") from None
