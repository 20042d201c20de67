"""Set one folder's repeats by hand: the new name and its effect are shown before Enter."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Label, Static

from ...core.base.errors import LorabakeError
from ...core.dataset.balance import BalancePlan, plan_set_repeats
from ...core.dataset.scan import Concept, Dataset
from ..palette import theme_style
from .plan_dialog import PlanDialog
from .plan_view import fill_plan_table, plan_summary, setup_plan_table


class RepeatsDialog(PlanDialog[BalancePlan | None]):
    """Returns the rename plan, or None."""

    DIALOG_CLASSES = ""

    def __init__(self, dataset: Dataset, concept: Concept, epochs: int) -> None:
        super().__init__()
        self.dataset, self.concept, self.epochs = dataset, concept, epochs
        self.plan: BalancePlan | None = None

    def dialog_title(self) -> str:
        c = self.concept
        return f"[b]Repeats of {c.folder}[/b]  ({c.image_count} images)"

    def compose_fields(self) -> ComposeResult:
        c = self.concept
        yield Label("Repeats (each image is seen this many times per epoch)")
        yield Input(str(c.repeats if c.repeats and c.repeats > 0 else 10), type="integer",
                    id="repeats")

    def compose_preview(self) -> ComposeResult:
        table = DataTable(id="plan", cursor_type="row")
        setup_plan_table(table)
        yield table
        yield Static(id="plan-summary")

    def ready(self) -> None:
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
            summary.update(Text(msg, style=theme_style(self.app, "error")))
            return
        fill_plan_table(self.app, self.query_one("#plan", DataTable), self.plan)
        summary.update(plan_summary(self.app, self.plan))

    def apply(self) -> None:
        if self.plan is None or self.plan.conflicts:
            self.notify("cannot apply: see the message above", severity="error")
            return
        self.dismiss(self.plan if self.plan.renames else None)
