"""The workbench's checkbox: "[✓]" when on, "[ ]" when off, so the state reads from the glyph
and not from its colour alone, with the brackets in a text colour that every theme keeps legible.

Textual's Checkbox draws the same "X" both ways, between half blocks in the box's background
colour; off, that is the panel's darkest shade on the panel (nearly invisible on a dark theme).
Use this one wherever a checkbox is wanted: it is a drop-in (same messages, same value)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox as TextualCheckbox

ON, OFF = "✓", " "


class Checkbox(TextualCheckbox):
    DEFAULT_CSS = """
    Checkbox > .toggle--button { color: $text-muted; background: transparent; }
    Checkbox.-on > .toggle--button { color: $text-success; background: transparent;
                                     text-style: bold; }
    """
    BUTTON_LEFT = "["
    BUTTON_RIGHT = "]"

    @property
    def _button(self) -> Content:
        # the one drawing hook ToggleButton has (its render and width both read it): the
        # brackets take the glyph's colour, not the half blocks' background-coloured trick
        style = self.get_visual_style("toggle--button")
        inner = ON if self.value else OFF
        return Content(f"{self.BUTTON_LEFT}{inner}{self.BUTTON_RIGHT}").stylize(style)
