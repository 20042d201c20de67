"""Size classes: how much room a screen has, as CSS classes its stylesheet can select on.

Textual CSS has no media queries, so a screen sets these on every resize: `-short` below 34
rows, `-tiny` below 27; `-narrow` below 120 columns, `-slim` below 90. The stage screens
(stage.py) and the plan dialogs (plan_dialog.py) share the thresholds; each stylesheet
decides what shrinks, stacks or gives way under them."""

from __future__ import annotations

from textual import events
from textual.dom import DOMNode

SHORT, TINY = 34, 27  # rows: below them, secondary panels shrink, then give way
NARROW, SLIM = 120, 90  # columns: below them, side panels narrow, then stack


def set_size_classes(node: DOMNode, width: int, height: int) -> None:
    node.set_class(height < SHORT, "-short")
    node.set_class(height < TINY, "-tiny")
    node.set_class(width < NARROW, "-narrow")
    node.set_class(width < SLIM, "-slim")


class SizeClasses:
    """Mixin for a Screen: keeps its size classes current."""

    def on_resize(self, event: events.Resize) -> None:
        self.set_size_classes(event.size.width, event.size.height)

    def set_size_classes(self, width: int, height: int) -> None:
        set_size_classes(self, width, height)
