"""Themes from themes/*.toml (bundled) and the user's config dir (same name: the user's wins)."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from textual.theme import Theme

from ..core.base.user_settings import config_dir

THEME_FIELDS = {f.name for f in fields(Theme)}
# Extra CSS variables our stylesheets use -> the theme colour that stands in for one a theme
# does not set (a fixed colour would clash with some theme's background).
THEME_VARIABLE_FALLBACKS = {"share-bar": "primary"}


def theme_variable_defaults(theme: Theme) -> dict[str, str]:
    """The extra variables' values for `theme` where it does not set them itself."""
    return {name: getattr(theme, field) for name, field in THEME_VARIABLE_FALLBACKS.items()}


def bundled_theme_dirs() -> list[Path]:
    pkg = Path(__file__).resolve().parent.parent
    # editable checkout: <repo>/themes; installed wheel: lorabake_tui/_bundled_themes
    return [d for d in (pkg.parent / "themes", pkg / "_bundled_themes") if d.is_dir()]


def user_theme_dir() -> Path:
    return config_dir() / "themes"


def load_theme_file(path: Path) -> Theme:
    """Parse one theme file; ValueError with the reason for anything malformed."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    unknown = set(data) - THEME_FIELDS
    if unknown:
        raise ValueError(f"{path}: unknown theme keys {', '.join(sorted(unknown))}")
    if "name" not in data or "primary" not in data:
        raise ValueError(f"{path}: a theme needs at least `name` and `primary`")
    try:
        return Theme(**data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def discover_themes() -> tuple[list[Theme], list[str]]:
    """(themes, errors). Later directories override earlier ones by name."""
    found: dict[str, Theme] = {}
    errors: list[str] = []
    for d in [*bundled_theme_dirs(), user_theme_dir()]:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            found[theme.name] = theme
    return list(found.values()), errors
