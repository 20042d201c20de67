"""Base for the five stage screens: header, stage bar, footer, and a body of their own."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..palette import on_theme_change
from ..widgets.stagebar import StageBar


class StageScreen(Screen):
    STAGE = ""
    TITLE_TEXT = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield StageBar(self.STAGE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield Static("")

    def on_mount(self) -> None:
        on_theme_change(self, self.recolour)

    def on_screen_resume(self) -> None:
        self.app.sub_title = f"{self.app.project.name} · {self.TITLE_TEXT}"

    def recolour(self) -> None:
        """Draw again the Rich text (summaries, table cells) this screen made in the theme's
        colours: the theme changed. Lists (VirtualList) redraw their rows themselves."""

