"""The one dialog behaviour every plan-then-apply operation shares (tag operations, image
tools, bucket recommendation, repeats, balance, auto-tag): a title, the operation's fields,
its live preview, a progress bar for long work, Apply/Cancel, and one set of keys:

- Enter applies from any field (an input, a checkbox, a list, a table); on the Cancel button
  it cancels. Only an open drop-down list takes Enter for itself (it picks the option).
- Space toggles a checkbox or opens a drop-down list; Tab moves between fields.
- Esc cancels; while the work runs it stops the work instead.
- ctrl+r applies too (the key the image tools and auto-tag always offered).

On a short terminal (below 27 rows) the fields and buttons draw compact, one row each, so the
whole dialog, buttons included, fits 80x24 without scrolling.

Subclasses compose their fields and preview, say which field gets the first focus (the one
the user is most likely to type), and implement `apply()`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, ProgressBar, Static

from .sizes import TINY, SizeClasses

T = TypeVar("T")


class PlanDialog(SizeClasses, ModalScreen[T], Generic[T]):
    CSS_PATH = "dialogs.tcss"
    DIALOG_CLASSES = "wide"  # "" for a narrow dialog
    APPLY_LABEL = "Apply"
    CANCEL_LABEL = "Cancel"
    PROGRESS = False  # a progress bar for work that takes a while
    BINDINGS = [
        # priority: a checkbox, a list or a table would otherwise take Enter for itself
        Binding("enter", "apply", "Apply", priority=True, show=False),
        Binding("ctrl+r", "apply", "Apply", priority=True, show=False),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    running = False  # the work is under way: Esc stops it, Enter does nothing

    # ---- what subclasses provide ----------------------------------------------------------
    def dialog_title(self) -> str:
        """Content markup for the first line."""
        return ""

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def compose_preview(self) -> ComposeResult:
        yield from ()

    def first_focus(self) -> Widget | None:
        """The field the user most likely types into first (default: the first input)."""
        return self.query(Input).first() if self.query(Input) else None

    def apply(self) -> None:
        raise NotImplementedError

    def cancel_result(self):
        """What the dialog returns when cancelled."""
        return None

    def stop_work(self) -> None:
        """Esc while running: ask the work to stop (it keeps what is done, or nothing)."""

    def keys_hint(self) -> str:
        return (f"[b]enter[/b] {self.APPLY_LABEL.lower()}  [b]esc[/b] "
                f"{self.CANCEL_LABEL.lower()}  [b]space[/b] toggle / open a list  "
                "[b]tab[/b] next field")

    # ---- the frame --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes=self.DIALOG_CLASSES):
            yield Static(self.dialog_title(), classes="title")
            yield from self.compose_fields()
            yield from self.compose_preview()
            if self.PROGRESS:
                yield ProgressBar(id="dlg-progress", show_eta=True)
            yield Static(self.keys_hint(), classes="keys")
            with Horizontal(classes="buttons"):
                yield Button(self.APPLY_LABEL, id="apply", variant="primary")
                yield Button(self.CANCEL_LABEL, id="cancel")

    def on_mount(self) -> None:
        if self.PROGRESS:
            self.query_one("#dlg-progress").display = False
        first = self.first_focus()
        (first if first is not None else self.query_one("#apply", Button)).focus()
        self.ready()

    def ready(self) -> None:
        """After the first focus: compute the first preview."""

    def set_size_classes(self, width: int, height: int) -> None:
        super().set_size_classes(width, height)
        for widget in self.query("Input, Select, Button, Checkbox"):
            widget.compact = height < TINY

    # ---- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            from textual.widgets._select import SelectOverlay

            if isinstance(self.focused, SelectOverlay):
                return False  # an open drop-down: Enter picks the option
        return True

    def action_apply(self) -> None:
        if isinstance(self.focused, Button) and self.focused.id == "cancel":
            self.action_cancel()
            return
        if self.running:
            self.notify("still running: esc stops it")
            return
        self.apply()

    def action_cancel(self) -> None:
        if self.running:
            self.stop_work()
            return
        self.dismiss(self.cancel_result())

    @on(Button.Pressed, "#apply")
    def _apply_pressed(self) -> None:
        if not self.running:
            self.apply()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    # ---- progress ---------------------------------------------------------------------------
    def start_progress(self) -> None:
        self.running = True
        bar = self.query_one("#dlg-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)

    def progress_from_thread(self, done: int, total: int) -> None:
        """A worker thread's progress callback."""
        self.app.call_from_thread(self.query_one("#dlg-progress", ProgressBar).update,
                                  total=total, progress=done)

    def stop_progress(self) -> None:
        self.running = False
        self.query_one("#dlg-progress").display = False
