"""Train: the queue of configs waiting for the trainer (the trainer itself comes later)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from ...jobs.queue import QueuedRun, list_queue
from ..widgets.virtual_list import VirtualList
from .stage import StageScreen


class TrainScreen(StageScreen):
    STAGE = "train"
    TITLE_TEXT = "Train"
    DEFAULT_CSS = """
    TrainScreen #train-note { padding: 1 2; height: auto; }
    TrainScreen #train-queue { height: 1fr; }
    """

    def compose_body(self) -> ComposeResult:
        yield Static(
            "The trainer and its live dashboard (loss, learning rate, ETA, VRAM; runs that "
            "survive SSH drops) are not built yet. Configs queued from the Config stage "
            "(ctrl+t) wait here, oldest first.", id="train-note")
        yield VirtualList(self._row, id="train-queue")

    def _row(self, run: QueuedRun, width: int) -> Text:
        text = Text(f"{run.queued_at}  ", style="dim")
        text.append(run.name, style="bold")
        text.append(f"  {run.path}", style="dim")
        return text

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        runs = list_queue(self.app.project.root)
        q = self.query_one("#train-queue", VirtualList)
        q.set_items(runs)
        q.border_title = f"Queue: {len(runs)}"
