"""Recommend K buckets: preview where every image goes and what it loses, then apply (resize
and crop into the buckets, originals kept, one undoable step)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Input, Label, Static
from textual.worker import get_current_worker

from ...core.base.errors import LorabakeError
from ...core.buckets.apply import apply_bucket_plan
from ...core.buckets.assign import BucketSettings
from ...core.buckets.recommend import BucketPlan, recommend
from ...core.dataset.scan import Dataset
from ..palette import theme_style
from .plan_dialog import PlanDialog


class RecommendDialog(PlanDialog[bool]):
    """Returns whether images were rewritten."""

    PROGRESS = True

    def __init__(self, dataset: Dataset, items, settings: BucketSettings) -> None:
        super().__init__()
        self.dataset, self.items, self.settings = dataset, items, settings
        self.plan: BucketPlan | None = None

    def dialog_title(self) -> str:
        return ("[b]Recommend buckets[/b]  fewer buckets, least crop and upscaling; images are "
                "resized and cropped into them (originals kept)")

    def compose_fields(self) -> ComposeResult:
        yield Label("Number of buckets")
        yield Input("4", type="integer", id="rec-k")

    def compose_preview(self) -> ComposeResult:
        yield Static(id="rec-summary")

    def cancel_result(self) -> bool:
        return False

    def ready(self) -> None:
        self.recompute()

    @on(Input.Changed)
    def recompute(self) -> None:
        summary = self.query_one("#rec-summary", Static)
        muted = theme_style(self.app, dim=True)
        try:
            k = int(self.query_one("#rec-k", Input).value)
            if k < 1:
                raise ValueError
        except ValueError:
            self.plan = None
            summary.update(Text("the number of buckets must be a whole number ≥ 1",
                                theme_style(self.app, "error")))
            return
        self.plan = plan = recommend(self.items, self.settings, k)
        counts = plan.counts()
        text = Text(f"{len(plan.buckets)} bucket(s), mean crop {plan.mean_crop:.1%}\n",
                    style="bold")
        for b in plan.buckets:
            text.append(f"  {b[0]}×{b[1]}: {counts[b]} image(s)\n")
        worst = sorted(plan.images, key=lambda i: -i.crop)[:5]
        if worst:
            text.append("most cropped:\n", style=muted)
            for i in worst:
                text.append(f"  {i.key} {i.size[0]}×{i.size[1]} → {i.bucket[0]}×{i.bucket[1]}"
                            f", {i.crop:.0%} cut" + (f", ↑{i.upscale:.1f}x" if i.upscale > 1
                                                    else "") + "\n", style=muted)
        changing = sum(1 for i in plan.images if i.size != i.bucket)
        text.append(f"{changing} image(s) will be rewritten as PNG at their bucket size",
                    style="bold")
        summary.update(text)

    def apply(self) -> None:
        if self.plan is None:
            self.notify("the number of buckets must be a whole number ≥ 1", severity="error")
            return
        self.start_progress()
        self.run_apply(self.plan)

    def stop_work(self) -> None:
        self.workers.cancel_group(self, "rec-apply")
        self.notify("cancelling: nothing is written until every image is ready")

    @work(thread=True, exclusive=True, group="rec-apply", exit_on_error=False,
          description="resize images into buckets")
    def run_apply(self, plan: BucketPlan) -> None:
        worker = get_current_worker()
        try:
            result = apply_bucket_plan(self.dataset.root, plan,
                                       progress=self.progress_from_thread,
                                       cancelled=lambda: worker.is_cancelled)
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._done, result)

    def _failed(self, message: str) -> None:
        self.stop_progress()
        self.query_one("#rec-summary", Static).update(
            Text(f"nothing changed: {message}", style=theme_style(self.app, "error")))

    def _done(self, result) -> None:
        self.stop_progress()
        msg = f"{len(result.written)} image(s) resized; originals in .lorabake/originals (u undo)"
        if result.skipped:
            msg += f"\n{len(result.skipped)} skipped: {result.skipped[0]}"
        self.notify(msg, title="Buckets applied",
                    severity="warning" if result.skipped else "information")
        self.dismiss(result.entry is not None)
