"""Recommend K buckets: preview where every image goes and what it loses, then apply (resize
and crop into the buckets, originals kept, one undoable step)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static
from textual.worker import get_current_worker

from ...core.base.errors import LorabakeError
from ...core.buckets.apply import apply_bucket_plan
from ...core.buckets.assign import BucketSettings
from ...core.buckets.recommend import BucketPlan, recommend
from ...core.dataset.scan import Dataset


class RecommendDialog(ModalScreen[bool]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, dataset: Dataset, items, settings: BucketSettings) -> None:
        super().__init__()
        self.dataset, self.items, self.settings = dataset, items, settings
        self.plan: BucketPlan | None = None
        self.applying = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Static("[b]Recommend buckets[/b]  fewer buckets, least crop and upscaling; "
                         "images are resized and cropped into them (originals kept)",
                         classes="title")
            yield Label("Number of buckets")
            yield Input("4", type="integer", id="rec-k")
            yield Static(id="rec-summary")
            yield ProgressBar(id="rec-progress", show_eta=False)
            yield Static("[b]enter[/b] apply  [b]esc[/b] cancel", classes="keys")
            with Horizontal(classes="buttons"):
                yield Button("Apply", id="apply", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#rec-progress").display = False
        self.query_one("#rec-k", Input).focus()
        self.recompute()

    @on(Input.Changed)
    def recompute(self) -> None:
        summary = self.query_one("#rec-summary", Static)
        try:
            k = int(self.query_one("#rec-k", Input).value)
            if k < 1:
                raise ValueError
        except ValueError:
            self.plan = None
            summary.update(Text("the number of buckets must be a whole number ≥ 1", "red"))
            return
        self.plan = plan = recommend(self.items, self.settings, k)
        counts = plan.counts()
        text = Text(f"{len(plan.buckets)} bucket(s), mean crop {plan.mean_crop:.1%}\n",
                    style="bold")
        for b in plan.buckets:
            text.append(f"  {b[0]}×{b[1]}: {counts[b]} image(s)\n")
        worst = sorted(plan.images, key=lambda i: -i.crop)[:5]
        if worst:
            text.append("most cropped:\n", style="dim")
            for i in worst:
                text.append(f"  {i.key} {i.size[0]}×{i.size[1]} → {i.bucket[0]}×{i.bucket[1]}"
                            f", {i.crop:.0%} cut" + (f", ↑{i.upscale:.1f}x" if i.upscale > 1
                                                    else "") + "\n", style="dim")
        changing = sum(1 for i in plan.images if i.size != i.bucket)
        text.append(f"{changing} image(s) will be rewritten as PNG at their bucket size",
                    style="bold")
        summary.update(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.plan is None or self.applying:
            return
        self.applying = True
        self.query_one("#rec-progress").display = True
        self.run_apply(self.plan)

    @work(thread=True, exclusive=True, group="rec-apply", exit_on_error=False,
          description="resize images into buckets")
    def run_apply(self, plan: BucketPlan) -> None:
        worker = get_current_worker()

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self.query_one("#rec-progress", ProgressBar).update,
                                      total=total, progress=done)

        try:
            result = apply_bucket_plan(self.dataset.root, plan, progress=progress,
                                       cancelled=lambda: worker.is_cancelled)
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._done, result)

    def _failed(self, message: str) -> None:
        self.applying = False
        self.notify(message, title="Nothing changed", severity="error", timeout=10)

    def _done(self, result) -> None:
        msg = f"{len(result.written)} image(s) resized; originals in .lorabake/originals (u undo)"
        if result.skipped:
            msg += f"\n{len(result.skipped)} skipped: {result.skipped[0]}"
        self.notify(msg, title="Buckets applied",
                    severity="warning" if result.skipped else "information")
        self.dismiss(result.entry is not None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.applying:
            self.workers.cancel_group(self, "rec-apply")
            self.notify("cancelling: nothing is written until every image is ready")
            return
        self.dismiss(False)
