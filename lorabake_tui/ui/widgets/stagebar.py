"""The row of workflow stages under the header: where you are, and the key for each.

It is also where an information notice goes (the app's `notify`, see app.py): for its
timeout the other stages shrink to their digits and the notice takes the rest of the row, so
"queued j-0007", "copied ..." and "undid ..." never cover a working panel the way a toast
would. Warnings and errors stay toasts: they have to be read."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

from ..palette import theme_style

STAGES = [("concepts", "Concepts"), ("tags", "Tags"), ("buckets", "Buckets"),
          ("config", "Config"), ("train", "Train"),
          ("evaluate", "Evaluate")]
HINTS = ("? help", "q quit", "ctrl+p commands")  # as many as fit, in this order


def shorten_middle(line: str, width: int) -> str:
    """`line` cut to `width` cells with "…" in the middle: a notice's start says what
    happened, its end often names the file (a path's last part is the one that matters)."""
    if len(line) <= width or width < 8:
        return line
    head = (width - 1) // 3
    return line[:head] + "…" + line[len(line) - (width - 1 - head):]


class StageBar(Static):
    DEFAULT_CSS = """
    StageBar { height: 1; background: $panel; color: $text-muted; padding: 0 1;
               text-wrap: nowrap; text-overflow: ellipsis; }
    """

    notice: reactive[str] = reactive("")

    def __init__(self, current: str) -> None:
        super().__init__(id="stagebar")
        self.current = current
        self._notice_timer: Timer | None = None

    def show_notice(self, text: str, timeout: float) -> None:
        """Show `text` (one line) for `timeout` seconds, replacing an earlier notice."""
        if self._notice_timer is not None:
            self._notice_timer.stop()
        self.notice = " · ".join(line.strip() for line in text.splitlines() if line.strip())
        self._notice_timer = self.set_timer(timeout, self._clear_notice)

    def _clear_notice(self) -> None:
        self.notice = ""

    def render(self) -> Text:
        text = Text()
        for n, (key, title) in enumerate(STAGES, start=1):
            if key == self.current:
                text.append(f" {n} {title} ", style="bold reverse")
            else:
                text.append(f" {n} {title} " if not self.notice else f" {n}")
            text.append(" ")
        if self.notice:
            room = self.content_size.width - text.cell_len - 1
            text.append(" " + shorten_middle(self.notice, room),
                        style=theme_style(self.app, "accent", bold=True))
        else:
            for hint in HINTS:
                if text.cell_len + 2 + len(hint) > self.content_size.width:
                    break
                text.append("  " + hint, style="dim")
        return text
