"""Base for the five stage screens: header, stage bar, footer, and a body of their own.

Textual CSS has no media queries, so the screen tells its stylesheet how much room there is:
on every resize it sets size classes (`-short` below 34 rows, `-tiny` below 27; `-narrow`
below 120 columns, `-slim` below 90). Each stage's .tcss lets panels shrink, stack or give
way in order of importance under them, so every stage works at 80x24, 100x30 and 160x48."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..palette import on_theme_change
from ..widgets.stagebar import StageBar

SHORT, TINY = 34, 27  # rows: below them, secondary panels shrink, then give way
NARROW, SLIM = 120, 90  # columns: below them, side panels narrow, then stack


class StageScreen(Screen):
    STAGE = ""
    TITLE_TEXT = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield StageBar(self.STAGE)
        yield from self.compose_body()
        yield Footer(compact=True, show_command_palette=False)  # the stage bar names ctrl+p

    def on_resize(self, event: events.Resize) -> None:
        self.set_size_classes(event.size.width, event.size.height)

    def set_size_classes(self, width: int, height: int) -> None:
        self.set_class(height < SHORT, "-short")
        self.set_class(height < TINY, "-tiny")
        self.set_class(width < NARROW, "-narrow")
        self.set_class(width < SLIM, "-slim")

    def compose_body(self) -> ComposeResult:
        yield Static("")

    def on_mount(self) -> None:
        on_theme_change(self, self.recolour)

    def on_screen_resume(self) -> None:
        self.app.sub_title = f"{self.app.project.name} · {self.TITLE_TEXT}"

    def recolour(self) -> None:
        """Draw again the Rich text (summaries, table cells) this screen made in the theme's
        colours: the theme changed. Lists (VirtualList) redraw their rows themselves."""

