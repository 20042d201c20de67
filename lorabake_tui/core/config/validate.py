"""Reading a parsed config into typed settings, checking every value on the way: the one
place where a value of the wrong kind, NaN or infinity, a number out of range, a list or
table where one value belongs, or an empty required value becomes a Finding (with its key,
line and fix) instead of an exception somewhere later.

`read_settings` always returns a complete `TrainingSettings`: a value that fails its check
is replaced by its default (and reported), so a screen can still show what the rest of the
file means. Callers that act on the settings (the trainer, exports) refuse when any error
was found.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any

from ..dataset.folders import parse_folder_name
from .blocks import BLOCK_KEYS, NUM_BLOCKS, PRESETS, SIDE, BlockWeightError, parse_side
from .checkpoints import has_pickle_suffix, pickle_finding
from .file import ConfigDoc, toml_literal
from .findings import ERROR, Finding
from .schema import (
    BUILTIN_PREFIX,
    BY_NAME,
    MAX_REPEATS,
    SECTION_CLASSES,
    SECTIONS,
    SETTINGS,
    SUBSET_KEYS,
    Setting,
    Subset,
    TrainingSettings,
)

_KIND_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
               "str": "text in quotes", "path": "a path in quotes", "list": "a list [...]"}


def resolve_path(value: str, base_dir: Path | None) -> Path:
    """A path from a config file: `~` expanded, relative ones read against the file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


def describe(value: Any) -> str:
    """A value as a message names it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 24 else text[:20] + "..."
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__  # dates and times: TOML has them


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_problem(st: Setting, value: Any) -> str | None:
    """Why `value` is not acceptable for `st` (a message that names the fix), or None."""
    fix = f"write {st.key} = {toml_literal(st.default)}" if st.default not in ("", []) \
        else f"write {st.key} = {_example(st)}"
    if isinstance(value, str) and st.type in ("int", "float"):
        number = _number_in(value)
        if number is not None:  # "128": the number was quoted
            fix = f"write {st.key} = {toml_literal(number)} (a number, without quotes)"
    found = f"(found {describe(value)})"
    if st.type == "bool":
        return None if isinstance(value, bool) else \
            f"{st.name} must be true or false {found}: {fix}"
    if st.type in ("int", "float"):
        if st.type == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()
            hint = f"write {st.key} = {int(value)}" if whole else fix
            return f"{st.name} must be a whole number {found}: {hint}"
        if not _is_number(value):
            return f"{st.name} must be {_KIND_WORDS[st.type]} {found}: {fix}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{st.name} must be a finite number {found}: {fix}"
        return _range_problem(st, value, found)
    if st.type in ("str", "path"):
        if not isinstance(value, str):
            return f"{st.name} must be {_KIND_WORDS[st.type]} {found}: {fix}"
        if "\x00" in value:
            return f"{st.name} holds a NUL character: retype the value"
        if st.choices and value not in st.choices:
            return (f"{st.name} must be one of {', '.join(map(str, st.choices))} {found}: "
                    f"{fix}")
        return None
    if st.type == "list":
        if not isinstance(value, list):
            return f"{st.name} must be a list [...] {found}: {fix}"
        if st.length is not None and len(value) != st.length:
            return (f"{st.name} must hold {st.length} values (found {len(value)}): {fix}")
        for i, item in enumerate(value):
            if st.item == "str":
                if not isinstance(item, str):
                    return f"{st.name}[{i}] must be text in quotes (found {describe(item)})"
            elif not _is_number(item) or (isinstance(item, float)
                                          and not math.isfinite(item)):
                return f"{st.name}[{i}] must be a number (found {describe(item)}): {fix}"
            elif st.item == "int" and not isinstance(item, int):
                return f"{st.name}[{i}] must be a whole number (found {describe(item)})"
            elif (st.min is not None and item < st.min) or (st.max is not None
                                                             and item > st.max):
                return (f"{st.name}[{i}] must be from {st.min:g} to {st.max:g} "
                        f"(found {describe(item)}): {fix}")
        return None
    return None


def _number_in(text: str) -> int | float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text else value


def _range_problem(st: Setting, value: float, found: str) -> str | None:
    if st.choices and value not in st.choices:
        return (f"{st.name} must be one of {', '.join(map(str, st.choices))} {found}: "
                f"write {st.key} = {toml_literal(st.default)}")
    if st.min is not None and value < st.min:
        return (f"{st.name} must be at least {st.min:g} {found}: the default is "
                f"{toml_literal(st.default)}")
    if st.max is not None and value > st.max:
        return (f"{st.name} must be at most {st.max:g} {found}: the default is "
                f"{toml_literal(st.default)}")
    return None


def _extra_problem(st: Setting, value: Any) -> str | None:
    """What a value of the right kind can still get wrong, for the settings that have it."""
    if st.name == "data.caption_extension" and value and (
            not value.startswith(".") or len(value) < 2 or "/" in value or "\\" in value):
        return (f"data.caption_extension must be an extension with its dot (found "
                f"{describe(value)}): write caption_extension = \".txt\"")
    if st.name == "general.base_model" and has_pickle_suffix(value):
        return pickle_finding(Path(value.strip()).name)
    if st.section == "network" and st.key in BLOCK_KEYS:
        return _block_problem(st, value)
    if st.name == "saving.output_name" and ("/" in value or "\\" in value
                                            or value.strip() in (".", "..")):
        return (f"saving.output_name is a file name, not a path (found {describe(value)}): "
                "put the folder in saving.output_dir")
    return None


def _block_problem(st: Setting, value: Any) -> str | None:
    """A block-wise setting: 12 weights (or a preset) per side, 25 values per block list."""
    if st.key in ("down_lr_weight", "up_lr_weight"):
        try:
            parse_side(value)
        except BlockWeightError as exc:
            return (f"{st.name}: {exc}: write {SIDE} comma-separated numbers, e.g. "
                    f"{st.key} = \"{','.join(['1'] * SIDE)}\", or a preset such as "
                    f"\"sine+0.5\" ({', '.join(PRESETS)}), or \"\" for all 1")
    elif st.type == "list" and value and len(value) != NUM_BLOCKS:
        return (f"{st.name} must hold {NUM_BLOCKS} values, one per UNet block IN00-IN11, M00, "
                f"OUT00-OUT11 (found {len(value)}): write {NUM_BLOCKS} numbers, or [] for "
                "none")
    return None


def _example(st: Setting) -> str:
    return {"general.base_model": '"/models/sd15.safetensors"',
            "data.train_dir": '"/data/mychar"', "saving.output_name": '"mychar"'}.get(
        st.name, '"..."' if st.type in ("str", "path") else toml_literal(st.default))


def _required_fix(st: Setting) -> str:
    return {"general.base_model": "set the SD 1.5 checkpoint to train on, e.g. base_model = "
                                  '"/models/sd15.safetensors"',
            "data.train_dir": "set the folder holding the N_name concept folders",
            "data.caption_extension": 'set it, e.g. caption_extension = ".txt"',
            "saving.output_name": "set saving.output_name (the LoRA's file name)"}.get(
        st.name, f"set {st.name}")


def read_settings(doc: ConfigDoc, *, base_dir: Path | None = None
                  ) -> tuple[TrainingSettings, list[Finding]]:
    """Typed settings from a parsed file and everything wrong with its values. Never
    raises: a bad value is a finding and its default stands in."""
    findings: list[Finding] = []

    def add(severity: str, key: str, message: str) -> None:
        findings.append(Finding(severity, key, doc.line(key), message))

    _check_layout(doc, add)
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    invalid: set[str] = set()  # settings whose value was replaced by the default
    for st in SETTINGS:
        sec = doc.data.get(st.section)
        if not isinstance(sec, dict) or st.key not in sec:
            if st.required and not st.default:
                add(ERROR, st.name, f"{st.name} is not set: {_required_fix(st)}")
            continue
        value = sec[st.key]
        problem = value_problem(st, value) or _extra_problem(st, value)
        if problem is not None:
            add(ERROR, st.name, problem)
            invalid.add(st.name)
            continue
        if st.required and not value.strip():
            add(ERROR, st.name, f"{st.name} is empty: {_required_fix(st)}")
        if not st.supported and value != st.default:
            add(ERROR, st.name, f"{st.name} is not supported by the trainer yet: remove it")
            continue
        sections[st.section][st.key] = value
    subsets = _read_subsets(doc, add)
    typed = {name: _typed_section(name, values, base_dir) for name, values in sections.items()}
    typed["data"] = dataclasses.replace(typed["data"], subsets=tuple(subsets))
    settings = TrainingSettings(**typed, source=doc.source, base_dir=base_dir,
                                invalid=frozenset(invalid))
    return settings, findings


def _typed_section(section: str, values: dict[str, Any], base_dir: Path | None):
    cls = SECTION_CLASSES[section]
    out: dict[str, Any] = {}
    for key, value in values.items():
        st = BY_NAME[f"{section}.{key}"]
        if st.type == "float":
            value = float(value)
        elif st.type == "list":
            value = tuple(float(v) if st.item == "float" else v for v in value)
        elif st.type == "path":
            if st.name == "general.base_model":
                value = value if not value or value.startswith(BUILTIN_PREFIX) else \
                    str(resolve_path(value, base_dir))
            else:
                value = resolve_path(value, base_dir) if value.strip() else None
        out[key] = value
    return cls(**out)


def _check_layout(doc: ConfigDoc, add) -> None:
    """Unknown sections and keys (with "did you mean"), sections that are not tables."""
    for section, values in doc.data.items():
        if section not in SECTIONS:
            guess = difflib.get_close_matches(section, SECTIONS, n=1)
            add(ERROR, section, f"unknown section [{section}]" +
                (f": did you mean [{guess[0]}]?" if guess else ": remove it"))
            continue
        if not isinstance(values, dict):
            add(ERROR, section, f"{section} must be a table: write [{section}] and its "
                "settings below it")
            continue
        names = [s.key for s in SETTINGS if s.section == section]
        for key in values:
            if section == "data" and key == "subsets":
                continue
            if key not in names:
                guess = difflib.get_close_matches(key, names, n=1)
                add(ERROR, f"{section}.{key}", f"unknown setting {section}.{key}" +
                    (f": did you mean {guess[0]}?" if guess else ": remove it"))


def _read_subsets(doc: ConfigDoc, add) -> list[Subset]:
    data = doc.data.get("data")
    raw = data.get("subsets", []) if isinstance(data, dict) else []
    if not isinstance(raw, list):
        add(ERROR, "data.subsets", "data.subsets must be a list of [[data.subsets]] tables "
            f"(found {describe(raw)}): write one [[data.subsets]] table per concept")
        return []
    out: list[Subset] = []
    seen: dict[tuple[str, bool], int] = {}
    for i, sub in enumerate(raw):
        key = f"data.subsets[{i}]"
        subset = _read_subset(i, sub, key, add)
        if subset is None:
            continue
        first = seen.setdefault((subset.concept, subset.is_reg), i)
        if first != i:
            add(ERROR, key, f"{key} names the concept {subset.concept!r} again (also "
                f"data.subsets[{first}]): remove one of them")
            continue
        out.append(subset)
    return out


def _read_subset(i: int, sub: Any, key: str, add) -> Subset | None:
    if not isinstance(sub, dict):
        add(ERROR, key, f"{key} must be a [[data.subsets]] table (found {describe(sub)})")
        return None
    ok = True
    for k in sub:
        if k not in SUBSET_KEYS:
            guess = difflib.get_close_matches(k, list(SUBSET_KEYS), n=1)
            add(ERROR, f"{key}.{k}", f"unknown subset setting {k}" +
                (f": did you mean {guess[0]}?" if guess else
                 f": a subset holds {', '.join(SUBSET_KEYS)}"))
            ok = False
    for k, kind in SUBSET_KEYS.items():
        if k in sub:
            v = sub[k]
            good = isinstance(v, bool) if kind == "bool" else isinstance(v, str) \
                if kind == "str" else (isinstance(v, int) and not isinstance(v, bool))
            if not good:
                add(ERROR, f"{key}.{k}", f"{key}: {k} must be {_KIND_WORDS[kind]} "
                    f"(found {describe(v)})")
                ok = False
    if not ok:
        return None
    concept, folder = sub.get("concept"), sub.get("folder")
    if (concept is None) == (folder is None):
        add(ERROR, key, f"{key} needs concept = \"name\" (the folder name without its N_ "
            "prefix)" if concept is None else f"{key}: give concept or folder, not both")
        return None
    repeats = sub.get("repeats")
    if repeats is not None and not 1 <= repeats <= MAX_REPEATS:
        add(ERROR, f"{key}.repeats", f"{key}: repeats must be from 1 to {MAX_REPEATS} "
            f"(found {describe(repeats)}): kohya skips a folder with fewer than 1")
        return None
    if folder is not None:
        # the older form names the whole folder; its repeats, when they equal the folder's
        # prefix, were only a copy of it: follow the folder (a rename keeps the config valid)
        parsed = parse_folder_name(folder)
        concept = parsed.name
        if repeats is not None and repeats == parsed.repeats:
            repeats = None
    if not concept.strip() or "/" in concept or "\\" in concept:
        add(ERROR, key, f"{key}: the concept must be a folder name without its N_ prefix "
            f"(found {describe(concept)})")
        return None
    return Subset(concept, bool(sub.get("is_reg", False)), repeats, i)
