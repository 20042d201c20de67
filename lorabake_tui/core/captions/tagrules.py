"""Rule data for the tag operations: prune presets, synonyms and implications.

All three are plain text files, one entry a line, `#` starting a comment. Bundled files
live in the package (`lorabake_tui/data`, so they ship inside the wheel); user presets in
`$XDG_CONFIG_HOME/lorabake/presets/NAME.txt` override bundled ones of the same name.
Tags are matched through `tag_key`; errors name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..base.user_settings import config_dir
from .tagops import find_cycle
from .tags import tag_key

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
BUNDLED_PRESETS = DATA_DIR / "presets"
DEFAULT_SYNONYMS = DATA_DIR / "synonyms.txt"
DEFAULT_IMPLICATIONS = DATA_DIR / "implications.txt"

PRESET_SUFFIX = ".txt"
INCLUDE = "@include"
_PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# `canonical: synonyms` splits at the first colon followed by a space or the line end, so
# emoticon tags such as `:d` or `:3` can be written on either side.
_SYNONYM_SEP = re.compile(r":(?=\s|$)")


def user_presets_dir() -> Path:
    return config_dir() / "presets"


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, content) of the lines that say something: comments and blanks gone.

    A comment is a line starting with `#`, or ` #` and everything after it."""
    out = []
    text = path.read_text(encoding="utf-8-sig")
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        line = re.split(r"\s#", line, maxsplit=1)[0].strip()
        if line:
            out.append((n, line))
    return out


# ---------------------------------------------------------------- presets


def _preset_files() -> dict[str, Path]:
    """name -> file; a user preset replaces the bundled one of the same name."""
    found: dict[str, Path] = {}
    for folder in (BUNDLED_PRESETS, user_presets_dir()):
        if folder.is_dir():
            for f in sorted(folder.glob("*" + PRESET_SUFFIX)):
                if f.is_file() and _PRESET_NAME.fullmatch(f.stem):
                    found[f.stem] = f
    return found


def list_presets() -> list[str]:
    """Names of the bundled and user prune presets, sorted."""
    return sorted(_preset_files())


def preset_path(name: str) -> Path:
    """The file `load_preset(name)` reads; ValueError listing the presets if unknown."""
    files = _preset_files()
    if name not in files:
        available = ", ".join(sorted(files)) or "none"
        raise ValueError(f"unknown preset {name!r} (available: {available})")
    return files[name]


def load_preset(name: str) -> list[str]:
    """The tags of preset `name`, `@include other` lines expanded in place, one tag per key.

    ValueError for an unknown preset (listing the available ones), an unknown or broken
    directive (file:line) or presets that include each other in a loop.
    """
    files = _preset_files()
    tags: list[str] = []
    seen: set[str] = set()

    def expand(preset: str, chain: list[str], origin: str | None) -> None:
        if preset not in files:
            available = ", ".join(sorted(files)) or "none"
            where = f"{origin}: " if origin else ""
            raise ValueError(f"{where}unknown preset {preset!r} (available: {available})")
        if preset in chain:
            loop = " -> ".join([*chain[chain.index(preset) :], preset])
            raise ValueError(f"{origin}: preset include cycle: {loop}")
        path = files[preset]
        for n, line in _lines(path):
            if line.startswith("@"):
                directive, _, arg = line.partition(" ")
                arg = arg.strip()
                if directive != INCLUDE:
                    raise ValueError(
                        f"{path}:{n}: unknown directive {directive!r} (only {INCLUDE} NAME)"
                    )
                if not arg:
                    raise ValueError(f"{path}:{n}: {INCLUDE} needs a preset name")
                expand(arg, [*chain, preset], f"{path}:{n}")
                continue
            key = tag_key(line)
            if key not in seen:
                seen.add(key)
                tags.append(line)

    expand(name, [], None)
    return tags


# ---------------------------------------------------------------- synonyms


def load_synonyms(path: str | Path | None = None) -> dict[str, str]:
    """synonym key -> canonical written tag, from lines `canonical: syn1, syn2, ...`.

    Without `path`, the bundled defaults. ValueError with file:line for a line without
    `canonical:`, with no synonyms, a synonym equal to its canonical tag, a synonym given
    two canonical tags, or a canonical tag that is itself someone's synonym.
    """
    path = Path(path) if path is not None else DEFAULT_SYNONYMS
    mapping: dict[str, str] = {}
    synonym_line: dict[str, int] = {}
    canonical_line: dict[str, int] = {}
    for n, line in _lines(path):
        where = f"{path}:{n}"
        parts = _SYNONYM_SEP.split(line, maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{where}: expected 'canonical: synonym, synonym, ...', got {line!r}")
        canonical, rest = parts[0].strip(), parts[1]
        if not tag_key(canonical):
            raise ValueError(f"{where}: the canonical tag before ':' is empty")
        synonyms = [s.strip() for s in rest.split(",") if s.strip()]
        if not synonyms:
            raise ValueError(f"{where}: no synonyms after {canonical!r}:")
        c_key = tag_key(canonical)
        if c_key in synonym_line:
            raise ValueError(
                f"{where}: {canonical!r} is a synonym on line {synonym_line[c_key]}; "
                "a canonical tag cannot also be a synonym"
            )
        canonical_line.setdefault(c_key, n)
        for syn in synonyms:
            s_key = tag_key(syn)
            if s_key == c_key:
                raise ValueError(f"{where}: {syn!r} is listed as a synonym of itself")
            if s_key in canonical_line:
                raise ValueError(
                    f"{where}: {syn!r} is a canonical tag on line {canonical_line[s_key]}; "
                    "a synonym cannot also be canonical"
                )
            if s_key in mapping and tag_key(mapping[s_key]) != c_key:
                raise ValueError(
                    f"{where}: synonym {syn!r} is already mapped to {mapping[s_key]!r} "
                    f"on line {synonym_line[s_key]}"
                )
            if s_key not in mapping:
                mapping[s_key] = canonical
                synonym_line[s_key] = n
    return mapping


# ---------------------------------------------------------------- implications


def load_implications(path: str | Path | None = None) -> list[tuple[str, str]]:
    """(specific key, general key) pairs from lines `specific -> general`, in file order.

    Without `path`, the bundled defaults. ValueError with file:line for a malformed line
    or a tag implying itself, and naming the loop when rules imply each other in a cycle.
    """
    path = Path(path) if path is not None else DEFAULT_IMPLICATIONS
    rules: list[tuple[str, str]] = []
    rule_line: dict[tuple[str, str], int] = {}
    for n, line in _lines(path):
        where = f"{path}:{n}"
        parts = line.split("->")
        if len(parts) != 2:
            raise ValueError(f"{where}: expected 'specific -> general', got {line!r}")
        specific, general = tag_key(parts[0]), tag_key(parts[1])
        if not specific or not general:
            raise ValueError(f"{where}: a tag is missing in {line!r} (expected 'a -> b')")
        if specific == general:
            raise ValueError(f"{where}: {specific!r} implies itself")
        if (specific, general) not in rule_line:
            rule_line[(specific, general)] = n
            rules.append((specific, general))
    graph: dict[str, list[str]] = {}
    for specific, general in rules:
        graph.setdefault(specific, []).append(general)
    cycle = find_cycle(graph)
    if cycle:
        lines = ", ".join(str(rule_line[(a, b)]) for a, b in zip(cycle, cycle[1:], strict=False))
        loop = " -> ".join(cycle)
        raise ValueError(f"{path}: implication cycle {loop} (lines {lines})")
    return rules
