"""Colours for text the UI draws itself (Rich `Text` rows, summaries, charts), taken from the
current theme's variables, so both shipped themes (and the user's) are legible everywhere.

Stylesheets (.tcss) use `$error`, `$warning`, ... directly; code that builds Rich text asks
here: `theme_style(app, "error", bold=True)`. The roles are Textual's theme variables
(`error`, `warning`, `success`, `accent`, `primary`, `secondary`, `text-muted`, ...) plus the
ones lorabake's themes add (`share-bar`). Nothing in `ui/` names a colour itself: a test
refuses colour names and hex values outside the themes.
"""

from __future__ import annotations

from rich.style import Style

# meaning -> theme variable: what the UI says with colour
ROLES = {
    "error": "error",  # something is wrong: a failed job, an error finding
    "warning": "warning",  # worth a look: a warning, an upscaled image, unsaved changes
    "success": "success",  # done, saved, the new value in a diff
    "accent": "accent",  # the thing to look at: a highlighted count, a bar
    "primary": "primary",
    "secondary": "secondary",
    "muted": "text-muted",  # secondary information: paths, units, hints
    "bar": "share-bar",  # share and histogram bars
}


def theme_color(app, role: str) -> str | None:
    """The theme's colour for `role` (a ROLES key or a theme variable), None when unknown."""
    variables = getattr(app, "theme_variables", None) or {}
    return variables.get(ROLES.get(role, role))


def theme_style(app, role: str | None = None, *, bold: bool = False, dim: bool = False,
                reverse: bool = False, italic: bool = False) -> Style:
    """A Rich style in the theme's colour for `role` (no role: only the attributes)."""
    color = theme_color(app, role) if role else None
    return Style(color=color, bold=bold or None, dim=dim or None, reverse=reverse or None,
                 italic=italic or None)
