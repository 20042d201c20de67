"""The row of workflow stages under the header: where you are, and the key for each."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STAGES = [("concepts", "Concepts"), ("tags", "Tags"), ("buckets", "Buckets"),
          ("config", "Config"), ("train", "Train")]


class StageBar(Static):
    DEFAULT_CSS = """
    StageBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(id="stagebar")
        self.current = current

    def render(self) -> Text:
        text = Text()
        for n, (key, title) in enumerate(STAGES, start=1):
            style = "bold reverse" if key == self.current else ""
            text.append(f" {n} {title} ", style=style)
            text.append(" ")
        text.append("  ? help  q quit  ctrl+p commands", style="dim")
        return text
