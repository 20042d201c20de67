"""Showing a rename plan (balance or one folder's repeats) before it is applied."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from ...core.dataset.balance import BalancePlan
from ..palette import theme_style


def setup_plan_table(table: DataTable) -> None:
    for label, key in [("Folder", "folder"), ("Images", "images"), ("Repeats", "repeats"),
                       ("Samples/epoch", "samples"), ("Becomes", "new")]:
        table.add_column(label, key=key)


def fill_plan_table(app, table: DataTable, plan: BalancePlan) -> None:
    table.clear()
    for r in plan.rows:
        before = "none" if r.repeats_before is None else str(r.repeats_before)
        new = Text(r.new_folder, style="bold") if r.renames else Text(
            "unchanged", style=theme_style(app, dim=True))
        table.add_row(r.folder, str(r.images), f"{before} → {r.repeats_after}",
                      str(r.samples_after), new, key=r.folder)


def plan_summary(app, plan: BalancePlan) -> Text:
    s = plan.summary
    text = Text()
    text.append(f"{len(plan.renames)} folder(s) to rename · ", style="bold")
    text.append(f"{s.train_samples} samples per epoch")
    if s.reg_samples:
        text.append(f" + {s.reg_samples} regularization")
    text.append(f" · {s.total_samples} over {s.epochs} epochs")
    for w in plan.warnings:
        text.append(f"\n! {w}", style=theme_style(app, "warning"))
    for c in plan.conflicts:
        text.append(f"\n✗ {c}", style=theme_style(app, "error", bold=True))
    return text
