"""Balance repeats: choose a preset or a target, read the rename plan, Enter applies it
(PlanDialog's keys)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ...core.base.errors import LorabakeError
from ...core.dataset.balance import OPTIMIZER_TARGETS, BalancePlan, plan_balance
from ...core.dataset.scan import Dataset
from ..palette import theme_style
from .plan_dialog import PlanDialog
from .plan_view import fill_plan_table, plan_summary, setup_plan_table

PRESET_LABELS = {"adamw": "AdamW", "prodigy": "Prodigy", "ia3": "IA3 + AdamW",
                 "ia3-prodigy": "IA3 + Prodigy"}


class BalanceDialog(PlanDialog[BalancePlan | None]):
    """Returns the rename plan, or None."""

    def __init__(self, dataset: Dataset, epochs: int, preset: str = "adamw") -> None:
        """`epochs` and `preset` (an OPTIMIZER_TARGETS key): the project config's."""
        super().__init__()
        self.dataset = dataset
        self.epochs = epochs
        self.preset = preset if preset in OPTIMIZER_TARGETS else "adamw"
        self.plan: BalancePlan | None = None

    def dialog_title(self) -> str:
        return ("[b]Balance repeats[/b]  repeats = ceil(target ÷ images), so every concept "
                "gets about the same samples per epoch")

    def keys_hint(self) -> str:
        return ("[b]enter[/b] apply  [b]esc[/b] cancel  [b]↑↓[/b] preset  [b]tab[/b] next "
                "field")

    def compose_fields(self) -> ComposeResult:
        with Horizontal(id="controls"):
            yield OptionList(
                *(Option(f"{PRESET_LABELS[k]} · {v}", id=k)
                  for k, v in OPTIMIZER_TARGETS.items()),
                Option("Custom target", id="custom"), id="preset")
            with Vertical(id="numbers"):
                yield Label("Target samples per concept per epoch")
                yield Input(str(OPTIMIZER_TARGETS[self.preset]), type="integer",
                            id="target")
                yield Label("Epochs (for the totals)")
                yield Input(str(self.epochs), type="integer", id="epochs")

    def compose_preview(self) -> ComposeResult:
        table = DataTable(id="plan", cursor_type="row", zebra_stripes=True)
        setup_plan_table(table)
        yield table
        yield Static(id="plan-summary")

    def first_focus(self) -> Widget | None:
        return self.query_one("#preset", OptionList)  # ↑↓ picks the optimizer's target

    def ready(self) -> None:
        self.query_one("#preset", OptionList).highlighted = list(OPTIMIZER_TARGETS).index(
            self.preset)
        self.recompute()

    # ---- inputs -------------------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#preset")
    def _preset(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id
        if key in OPTIMIZER_TARGETS:
            self.query_one("#target", Input).value = str(OPTIMIZER_TARGETS[key])
        elif key == "custom":
            self.query_one("#target", Input).focus()

    @on(Input.Changed)
    def _changed(self) -> None:
        self.recompute()

    def _number(self, input_id: str) -> int | None:
        try:
            value = int(self.query_one(f"#{input_id}", Input).value)
        except ValueError:
            return None
        return value if value >= 1 else None

    def recompute(self) -> None:
        target, epochs = self._number("target"), self._number("epochs")
        summary = self.query_one("#plan-summary", Static)
        error = theme_style(self.app, "error")
        if target is None or epochs is None:
            self.plan = None
            summary.update(Text("target and epochs must be whole numbers of at least 1",
                                style=error))
            return
        try:
            self.plan = plan_balance(self.dataset, target, epochs=epochs)
        except LorabakeError as exc:
            self.plan = None
            summary.update(Text(str(exc), style=error))
            return
        fill_plan_table(self.app, self.query_one("#plan", DataTable), self.plan)
        summary.update(plan_summary(self.app, self.plan))

    def apply(self) -> None:
        if self.plan is None:
            self.notify("fix the target first", severity="error")
            return
        if self.plan.conflicts:
            self.notify(self.plan.conflicts[0], title="Cannot apply", severity="error")
            return
        if not self.plan.renames:
            self.notify("already balanced: nothing to rename")
            self.dismiss(None)
            return
        self.dismiss(self.plan)
