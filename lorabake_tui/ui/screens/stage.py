"""Base for the five stage screens: header, stage bar, footer, and a body of their own."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

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

    def on_screen_resume(self) -> None:
        self.app.sub_title = f"{self.app.project.name} · {self.TITLE_TEXT}"


class ComingScreen(StageScreen):
    """A stage whose tools arrive in a later release: says what will be here."""

    DEFAULT_CSS = """
    ComingScreen #coming { padding: 1 2; width: 1fr; height: 1fr; }
    """
    PLANNED = ""

    def compose_body(self) -> ComposeResult:
        yield Static(f"[b]{self.TITLE_TEXT}[/b]\n\n{self.PLANNED}\n\n"
                     "[dim]Not built yet. Keys 1-5 switch stages; ? shows all keys.[/dim]",
                     id="coming")
