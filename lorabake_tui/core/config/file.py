"""The project's own training TOML: read (with the line of every key, for diagnostics) and
written in a stable order, section by section as in the schema."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..base.atomic import atomic_write_text
from ..base.errors import LorabakeError
from .schema import SECTIONS, SETTINGS, defaults

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")



@dataclass(slots=True)
class ConfigDoc:
    data: dict[str, Any]  # as written in the file (sections -> keys)
    lines: dict[str, int] = field(default_factory=dict)  # "section.key" -> 1-based line
    text: str = ""
    source: str = "config"  # the file it came from, for messages

    def line(self, name: str) -> int | None:
        """The line of `name`, else of what holds it: data.subsets[1].concept, then
        data.subsets[1], data.subsets, data."""
        while name:
            if name in self.lines:
                return self.lines[name]
            cut = max(name.rfind("."), name.rfind("["))
            name = name[:cut] if cut > 0 else ""
        return None

    def value(self, name: str) -> Any:
        section, key = name.split(".", 1)
        sec = self.data.get(section)
        if isinstance(sec, dict) and key in sec:
            return sec[key]
        return defaults()[section][key]

    def merged(self) -> dict[str, Any]:
        """Defaults overlaid with what the file sets."""
        out = defaults()
        for section, values in self.data.items():
            if isinstance(values, dict) and section in out:
                out[section].update(values)
        return out


def line_map(text: str) -> dict[str, int]:
    """Where each key is set: 'section' and 'section.key' -> line (first occurrence); each
    [[table]] of an array also as 'table[i]' and its keys as 'table[i].key'."""
    out: dict[str, int] = {}
    section = ""
    arrays: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(raw)
        if m:
            section = m.group(1)
            out.setdefault(section, n)
            if raw.lstrip().startswith("[["):
                i = arrays.get(section, -1) + 1
                arrays[section] = i
                section = f"{section}[{i}]"
                out[section] = n
            continue
        m = _KEY.match(raw)
        if m:
            key = m.group(1).strip('"')
            out.setdefault(f"{section}.{key}" if section else key, n)
    return out


def parse_config(text: str, source: str = "config") -> ConfigDoc:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LorabakeError(f"{source}: not valid TOML: {exc}",
                            "fix the line it names; strings need quotes") from None
    return ConfigDoc(data, line_map(text), text, source)


def read_config_text(path: Path | str) -> str:
    """A config file's text, or a LorabakeError naming the file."""
    path = Path(path)
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise LorabakeError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise LorabakeError(f"{path} is not UTF-8 text") from None
    except IsADirectoryError:
        raise LorabakeError(f"{path} is a folder", "give the training TOML file") from None


def load_config(path: Path | str) -> ConfigDoc:
    return parse_config(read_config_text(path), str(path))


def dump_config(data: dict[str, Any]) -> str:
    """Sections and keys in schema order (stable diffs), unknown ones kept at the end; the
    subsets as [[data.subsets]] tables right after [data], one per concept, so each has its
    own lines (findings point at them) and room for a `repeats` of its own."""
    ordered: dict[str, Any] = {}
    known = {s: [st.key for st in SETTINGS if st.section == s] for s in SECTIONS}
    subsets = None
    for section in SECTIONS:
        values = data.get(section)
        if not isinstance(values, dict):
            continue
        sec = {k: values[k] for k in known[section] if k in values}
        sec.update({k: v for k, v in values.items() if k not in sec})
        if section == "data" and isinstance(sec.get("subsets"), list) and all(
                isinstance(s, dict) for s in sec["subsets"]):
            subsets = sec.pop("subsets")
        ordered[section] = sec
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    parts = []
    for section, values in ordered.items():
        text = tomli_w.dumps({section: values})
        if section == "data" and subsets is not None:
            text += "".join("\n[[data.subsets]]\n" + tomli_w.dumps(sub) for sub in subsets)
        parts.append(text)
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def save_config(path: Path | str, data: dict[str, Any]) -> None:
    atomic_write_text(Path(path), dump_config(data))


def toml_literal(value: Any) -> str:
    """A value as the TOML file writes it (true, not True; strings quoted), on one line: a
    list as [0.9, 0.999] (tomli_w would spread it over lines, which breaks a form row or a
    one-line message)."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def set_value_in_text(text: str, section: str, key: str, value: Any) -> str:
    """`text` with one setting changed, everything else (comments, order) left as written:
    the key's line (or the lines of a value written over several, such as a list) is
    replaced, or the key is added under its section (made if missing). Lists are written on
    one line."""
    line = tomli_w.dumps({key: 0}).split("=", 1)[0] + "= " + toml_literal(value)
    lines = text.splitlines()
    where = line_map(text)
    n = where.get(f"{section}.{key}")
    if n is not None:
        end = _value_end(lines, n - 1)
        old = lines[n - 1]
        comment = ""
        if end == n - 1:  # a one-line value keeps its trailing comment
            before, sep, after = old.partition("#")
            if sep:
                try:
                    tomllib.loads(before)  # the '#' starts a comment, not part of a string
                    comment = "  #" + after.rstrip()
                except tomllib.TOMLDecodeError:
                    comment = ""
        lines[n - 1:end + 1] = [line + comment]
    elif section in where:
        lines.insert(where[section], line)
    else:
        lines += ["", f"[{section}]", line]
    out = "\n".join(lines) + "\n"
    parse_config(out)  # never hand back a broken file
    return out


def _value_end(lines: list[str], first: int) -> int:
    """The last line (0-based) of the `key = value` starting at `first`: the value may
    continue over lines (a list, an inline table, a multi-line string)."""
    for last in range(first, len(lines)):
        try:
            tomllib.loads("\n".join(lines[first:last + 1]))
            return last
        except tomllib.TOMLDecodeError:
            continue
    return first


def with_absolute_paths(text: str, base_dir: Path) -> str:
    """`text` with every relative path setting made absolute against `base_dir` (the file's
    folder), so a copy of the config (a queued snapshot) still points at the same files."""
    from .schema import BUILTIN_PREFIX

    doc = parse_config(text)
    for st in SETTINGS:
        if st.type != "path":
            continue
        value = doc.data.get(st.section, {}).get(st.key)
        if not isinstance(value, str) or not value or value.startswith(BUILTIN_PREFIX):
            continue
        p = Path(value).expanduser()
        if not p.is_absolute():
            text = set_value_in_text(text, st.section, st.key, str(Path(base_dir) / p))
    return text
