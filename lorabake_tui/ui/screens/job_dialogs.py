"""The Train screen's dialogs: stop a job (with a force-kill choice), confirm forgetting a
finished job, and the full log of a run, followed as it grows."""

from __future__ import annotations

import os
from pathlib import Path

from rich.highlighter import Highlighter
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Log, Static

from ...core.run.folder import LOG_FILES, STDOUT_LOG, TRAIN_LOG
from ...jobs.logs import tail_lines
from ...jobs.store import Job
from ..palette import theme_style

FORCE_TIMEOUT_S = 10.0
LOG_VIEW_LINES = 5000
_ERROR_WORDS = ("error", "traceback", "exception", "out of memory", "nan", "killed")


def line_role(line: str) -> tuple[str, bool] | None:
    """How a log line stands out, as (palette role, bold): errors, warnings, saves."""
    low = line.lower()
    if any(w in low for w in _ERROR_WORDS if w != "nan") or " nan" in low or "=nan" in low:
        return "error", True
    if "warning" in low or "warn:" in low:
        return "warning", False
    if "saved" in low:
        return "success", False
    return None


class LogHighlighter(Highlighter):
    """Colours whole lines by line_role(), in the theme of the log's app (asked when a line
    is drawn, so that it follows the theme)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def highlight(self, text: Text) -> None:
        role = line_role(text.plain)
        if role:
            text.stylize(theme_style(self.log.app, role[0], bold=role[1]))


def highlighted_log(**kwargs) -> Log:
    log = Log(highlight=True, **kwargs)
    log.highlighter = LogHighlighter(log)
    return log


class StopDialog(ModalScreen[str | None]):
    """Dismisses with "stop", "force" or None."""

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CSS = "StopDialog, ConfirmDialog { align: center middle; }"
    BINDINGS = [Binding("enter,y,s", "choose('stop')", "Stop", show=False),
                Binding("f", "choose('force')", "Force kill", show=False),
                Binding("escape,n", "choose('')", "Cancel", show=False)]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        j = self.job
        again = "It was already asked to stop. " if j.status == "stopping" else ""
        with Vertical(id="dialog"):
            yield Static(f"[b]Stop {j.id}[/b] ({j.name})?", classes="title")
            if j.kind == "kohya":
                body = "SIGTERM goes to the kohya process; kohya saves nothing on a stop."
            else:
                body = (f"{again}The trainer finishes its current step, saves its state and a "
                        "LoRA, and ends [b]stopped[/b]; resume (r) continues from that step.\n\n"
                        f"Force kill also sends SIGTERM, then kills it (SIGKILL) if it still "
                        f"runs after {FORCE_TIMEOUT_S:g} s: use it for a hung run; the state "
                        "may then be older than the last step.")
            yield Static(body)
            yield Static("[b]enter/y[/b] stop  [b]f[/b] force kill  [b]esc/n[/b] cancel",
                         classes="keys")
            with Horizontal(classes="buttons"):
                yield Button("Stop", id="stop", variant="warning")
                yield Button("Force kill", id="force", variant="error")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)


class ConfirmDialog(ModalScreen[bool]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("enter,y", "answer(True)", "Yes", show=False),
                Binding("escape,n", "answer(False)", "No", show=False)]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]{self.title_text}[/b]", classes="title")
            yield Static(self.body)
            yield Static("[b]enter/y[/b] yes  [b]esc/n[/b] no", classes="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class LogScreen(ModalScreen[None]):
    """A run's log, its last lines first loaded in a worker, then followed from a byte
    offset: the view of `lorabake jobs log -f` inside the workbench."""

    DEFAULT_CSS = """
    LogScreen { align: center middle; }
    LogScreen > Vertical { width: 95%; height: 90%; border: thick $primary;
                           background: $surface; }
    LogScreen #log-title { height: 1; padding: 0 1; background: $boost; }
    LogScreen Log { height: 1fr; }
    LogScreen #log-keys { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q,l", "close", "Close"),
                Binding("o", "other", "Other log"),
                Binding("end", "bottom", "Follow", show=False)]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.path: Path | None = None
        self._offset = 0
        self._buf = b""
        self._loading = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="log-title")
            yield highlighted_log(max_lines=LOG_VIEW_LINES * 4, id="log-view")
            yield Static(f"[b]esc[/b] close  [b]o[/b] {TRAIN_LOG} / {STDOUT_LOG} (tracebacks)  "
                         "[b]end[/b] follow", id="log-keys")

    def on_mount(self) -> None:
        self.open(self.job.log_file())
        self.set_interval(0.5, self._follow)

    def open(self, path: Path | None) -> None:
        self.path = path
        self._offset, self._buf = 0, b""
        self.query_one(Log).clear()
        self.query_one("#log-title", Static).update(
            Text(f"{self.job.id} {self.job.name}: {path or 'no log yet'}", style="bold"))
        if path is not None:
            self._loading = True
            self._load(path)

    @work(thread=True, exclusive=True, group="log-load", exit_on_error=False,
          description="read the log")
    def _load(self, path: Path) -> None:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        lines = tail_lines(path, LOG_VIEW_LINES, max_bytes=16 << 20)
        self.app.call_from_thread(self._loaded, path, lines, size)

    def _loaded(self, path: Path, lines: list[str], size: int) -> None:
        if path != self.path:
            return
        self.query_one(Log).write_lines(lines)
        self._offset = size
        self._loading = False

    def _follow(self) -> None:
        if self.path is None:
            self.open(self.job.log_file())
            return
        if self._loading:
            return
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return
        if size < self._offset:  # truncated or replaced
            self.open(self.path)
            return
        if size == self._offset:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(min(size - self._offset, 4 << 20))  # a huge burst: a few MB a tick
        self._offset += len(chunk)
        data = self._buf + chunk
        lines = data.split(b"\n")
        self._buf = lines.pop()
        self.query_one(Log).write_lines(
            ln.decode("utf-8", "replace").rsplit("\r", 1)[-1] for ln in lines)

    def action_other(self) -> None:
        current = self.path.name if self.path is not None else STDOUT_LOG
        i = LOG_FILES.index(current) + 1 if current in LOG_FILES else 0
        other = self.job.folder.path / LOG_FILES[i % len(LOG_FILES)]
        if other.exists():
            self.open(other)
        else:
            self.notify(f"{other.name} does not exist yet", severity="warning")

    def action_bottom(self) -> None:
        self.query_one(Log).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
