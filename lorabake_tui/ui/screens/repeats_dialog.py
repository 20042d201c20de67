"""Set one folder's repeats by hand: the new name and its effect are shown before Enter."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from ...core.base.errors import LorabakeError
from ...core.dataset.balance import BalancePlan, plan_set_repeats
from ...core.dataset.scan import Concept, Dataset
from .plan_view import fill_plan_table, plan_summary, setup_plan_table


class RepeatsDialog(ModalScreen[BalancePlan | None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, dataset: Dataset, concept: Concept, epochs: int) -> None:
        super().__init__()
        self.dataset, self.concept, self.epochs = dataset, concept, epochs
        self.plan: BalancePlan | None = None

    def compose(self) -> ComposeResult:
        c = self.concept
        with Vertical(id="dialog"):
            yield Static(f"[b]Repeats of {c.folder}[/b]  ({c.image_count} images)",
                         classes="title")
            yield Label("Repeats (each image is seen this many times per epoch)")
            yield Input(str(c.repeats if c.repeats and c.repeats > 0 else 10), type="integer",
                        id="repeats")
            table = DataTable(id="plan", cursor_type="row")
            setup_plan_table(table)
            yield table
            yield Static(id="plan-summary")
            yield Static("[b]enter[/b] apply  [b]esc[/b] cancel", classes="keys")
            with Horizontal(classes="buttons"):
                yield Button("Apply", id="apply", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#repeats", Input).focus()
        self.recompute()

    @on(Input.Changed)
    def recompute(self) -> None:
        summary = self.query_one("#plan-summary", Static)
        try:
            value = int(self.query_one("#repeats", Input).value)
            self.plan = plan_set_repeats(self.dataset, self.concept.folder, value,
                                         epochs=self.epochs)
        except (ValueError, LorabakeError) as exc:
            self.plan = None
            msg = str(exc) if isinstance(exc, LorabakeError) else "a whole number, at least 1"
            summary.update(f"[red]{msg}[/red]")
            return
        fill_plan_table(self.query_one("#plan", DataTable), self.plan)
        summary.update(plan_summary(self.plan))

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.plan is None or self.plan.conflicts:
            self.notify("cannot apply: see the message above", severity="error")
            return
        self.dismiss(self.plan if self.plan.renames else None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
