"""Shown at start when a crash or kill left an operation half applied."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...core.base.errors import LorabakeError
from ...core.base.journal import Entry


class RecoverScreen(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("r", "rollback", "Roll back"), Binding("escape,l", "later", "Later")]

    def __init__(self, entry: Entry) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        e = self.entry
        with Vertical(id="dialog"):
            yield Static("[b]An operation was interrupted[/b]", classes="title")
            yield Static(
                f"'{e.label}' (started {e.created}) did not finish: some of its "
                f"{len(e.changes)} change(s) may be applied, others not. Every file is whole.\n\n"
                "Roll back puts everything as it was before it. Later leaves it; new changes "
                "are refused until it is rolled back (also: `lorabake undo DIR`).")
            yield Static("[b]r[/b] roll back  [b]esc[/b] later", classes="keys")
            with Horizontal(classes="buttons"):
                yield Button("Roll back", id="rollback", variant="warning")
                yield Button("Later", id="later")

    @on(Button.Pressed, "#rollback")
    def action_rollback(self) -> None:
        try:
            entry = self.app.project.journal.recover()
        except LorabakeError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.app.project.changed()
        if entry and entry.conflicts:
            self.notify("\n".join(entry.conflicts[:5]), title="Rolled back; left alone:",
                        severity="warning", timeout=15)
        else:
            self.notify(f"Rolled back: {self.entry.label}")
        self.dismiss(None)

    @on(Button.Pressed, "#later")
    def action_later(self) -> None:
        self.dismiss(None)
