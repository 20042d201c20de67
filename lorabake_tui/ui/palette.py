"""Colours for text the UI draws itself (Rich `Text` rows, summaries, table cells), taken from
the current theme's variables, so both shipped themes (and the user's) are legible everywhere.

Three ways to colour, all by the theme's variables; nothing in `ui/` names a colour itself (a
test, tests/ui/test_colours.py, refuses colour names and hex values outside the themes):
- stylesheets (.tcss, DEFAULT_CSS): `$error`, `$text-warning`, ...;
- Textual content: markup `[bold $text-error]...[/]` or `Content.assemble((text, "$text-error"))`;
  it is resolved when drawn, so it follows a theme change by itself (text made once: tiles);
- Rich text (VirtualList rows, DataTable cells, summaries): `theme_style(app, "error",
  bold=True)`. The roles are Textual's theme variables (`error`, `warning`, `success`, `accent`,
  `primary`, `secondary`, `text-muted`, ...) plus the ones lorabake's themes add (`share-bar`).
  A Rich style holds the colour it was made with, so whatever holds such text draws it again
  when the theme changes: a VirtualList on its style update, a stage screen in `recolour()`
  (`on_theme_change`).
"""

from __future__ import annotations

from collections.abc import Callable

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
        background = variables.get("background")
        if color.a < 1 and background:
            color = Color.parse(background) + color
    except ColorParseError:
        return None  # "auto" colours depend on what is underneath: no fixed value
    return color.hex[:7]


def theme_style(app, role: str | None = None, *, bold: bool = False, dim: bool = False,
                reverse: bool = False, italic: bool = False) -> Style:
    """A Rich style in the theme's colour for `role` (no role: only the attributes)."""
    color = theme_color(app, role) if role else None
    return Style(color=color, bold=bold or None, dim=dim or None, reverse=reverse or None,
                 italic=italic or None)


def on_theme_change(node, redraw: Callable[[], object]) -> None:
    """Call `redraw()` each time the app's theme changes, while `node` is mounted (text made
    with `theme_style` holds the old theme's colours until it is drawn again).

    The signal is delivered later than the change, so by then `node` may already have drawn
    in the new theme (at start-up the app sets its theme as the first stage mounts): a
    signal for the theme `node` last saw is dropped instead of redrawing for nothing."""
    seen = [node.app.theme]

    def changed(theme) -> None:
        if theme.name != seen[0]:
            seen[0] = theme.name
            redraw()

    node.app.theme_changed_signal.subscribe(node, changed)
