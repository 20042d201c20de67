"""Base for the stage screens: header, stage bar, footer, and a body of their own.

The screen keeps its size classes current (sizes.py): each stage's .tcss lets panels shrink,
stack or give way in order of importance under them, so every stage works at 80x24, 100x30
and 160x48."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..palette import on_theme_change
from ..widgets.stagebar import StageBar
from .sizes import SizeClasses


class StageScreen(SizeClasses, Screen):
    STAGE = ""
    TITLE_TEXT = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield StageBar(self.STAGE)
        yield from self.compose_body()
        yield Footer(compact=True, show_command_palette=False)  # the stage bar names ctrl+p

    def compose_body(self) -> ComposeResult:
        yield Static("")

    def on_mount(self) -> None:
        on_theme_change(self, self.recolour)

    def on_screen_resume(self) -> None:
        self.app.sub_title = f"{self.app.project.name} · {self.TITLE_TEXT}"

    def recolour(self) -> None:
        """Draw again the Rich text (summaries, table cells) this screen made in the theme's
        colours: the theme changed. Lists (VirtualList) redraw their rows themselves."""

