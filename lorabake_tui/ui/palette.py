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

# meaning -> theme variable: what the UI says with colour. The text-* variables are the
# theme's colours made legible as text on its background.
ROLES = {
    "error": "text-error",  # something is wrong: a failed job, an error finding
    "warning": "text-warning",  # worth a look: a warning, an upscaled image, unsaved changes
    "success": "text-success",  # done, saved, the new value in a diff
    "accent": "text-accent",  # the thing to look at
    "primary": "text-primary",
    "secondary": "text-secondary",
    "muted": "foreground-muted",  # secondary information: paths, units, hints
    "bar": "share-bar",  # share and histogram bars
}


def theme_color(app, role: str) -> str | None:
    """The theme's colour for `role` (a ROLES key or a theme variable) as an opaque hex
    colour (a translucent one is laid over the background), None when unknown."""
    from textual.color import Color, ColorParseError

    variables = getattr(app, "theme_variables", None) or {}
    value = variables.get(ROLES.get(role, role))
    if not value:
        return None
    try:
        color = Color.parse(value)
        if color.a < 1:
            color = Color.parse(variables.get("background", "#000000")) + color
    except ColorParseError:
        return None  # "auto" colours depend on what is underneath: no fixed value
    return color.hex[:7]


def theme_style(app, role: str | None = None, *, bold: bool = False, dim: bool = False,
                reverse: bool = False, italic: bool = False) -> Style:
    """A Rich style in the theme's colour for `role` (no role: only the attributes)."""
    color = theme_color(app, role) if role else None
    return Style(color=color, bold=bold or None, dim=dim or None, reverse=reverse or None,
                 italic=italic or None)
