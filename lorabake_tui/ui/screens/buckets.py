"""Buckets: what kohya will do with these images at these settings. A histogram of buckets
(with and without repeats), batches per epoch and steps, the images of a bucket with their
resized size and crop (drawn on a preview), warnings, and a recommendation of fewer buckets."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Checkbox, Input, Label, Static

from ...core.base.errors import LorabakeError
from ...core.buckets.assign import (
    BucketImage,
    BucketReport,
    BucketSettings,
    assign_all,
    bucket_histogram,
    dataset_items,
)
from ...core.dataset.scan import Dataset
from ...core.dataset.steps import total_steps
from ...core.images.imageops import parse_size
from ..history import run_history
from ..widgets.crop_preview import CropPreview
from ..widgets.virtual_list import VirtualList
from .stage import StageScreen

FIELDS = [("resolution", "Resolution", "512"), ("min", "Min", "256"), ("max", "Max", "1024"),
          ("step", "Step", "64"), ("batch", "Batch", "1"), ("epochs", "Epochs", "8")]


class BucketsScreen(StageScreen):
    STAGE = "buckets"
    TITLE_TEXT = "Buckets"
    CSS_PATH = "buckets.tcss"
    BINDINGS = [
        Binding("k", "recommend", "Recommend", id="buckets.recommend"),
        Binding("i", "image_tools", "Image tools", id="buckets.images"),
        Binding("e", "edit_settings", "Settings", id="buckets.settings"),
        Binding("u,ctrl+z", "undo", "Undo", id="buckets.undo"),
        Binding("ctrl+y", "redo", "Redo", id="buckets.redo"),
        Binding("f5", "rescan", "Rescan", id="buckets.rescan"),
        Binding("escape", "leave_input", "Back to list", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.dataset: Dataset | None = None
        self.items: list[tuple[str, tuple[int, int], int]] = []
        self.left_out: list[str] = []
        self.report: BucketReport | None = None
        self.settings = BucketSettings()
        self.epochs = 8
        self._seen_generation = -1
        self._timer: Timer | None = None

    @property
    def project(self):
        return self.app.project

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bk-settings"):
            for key, label, default in FIELDS:
                with Vertical(classes="bk-field"):
                    yield Label(label)
                    yield Input(default, id=f"bk-{key}", restrict=r"[0-9xX]*" if
                                key == "resolution" else r"[0-9]*")
            yield Checkbox("no upscale", id="bk-no-upscale")
        yield Static(id="bk-summary")
        with Horizontal(id="bk-main"):
            yield VirtualList(self._bucket_row, id="bk-histogram")
            yield VirtualList(self._image_row, id="bk-images")
            yield CropPreview(self.app.images, id="bk-preview")
        yield Static(id="bk-warnings")

    def on_mount(self) -> None:
        self.query_one("#bk-histogram").border_title = "Buckets"
        self.query_one("#bk-images").border_title = "Images"
        self.query_one("#bk-histogram", VirtualList).focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.dataset is None or self._seen_generation != self.project.generation:
            self.load(self.project.fresh_dataset() if self.dataset is None else None)

    # ---- data ---------------------------------------------------------------------------
    def action_rescan(self) -> None:
        self.load(None)

    @work(thread=True, exclusive=True, group="bk-load", exit_on_error=False,
          description="scan for buckets")
    def load(self, ds: Dataset | None) -> None:
        generation = self.project.generation
        try:
            ds = ds or self.project.scan()
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._loaded, ds, generation)

    def _loaded(self, ds: Dataset, generation: int) -> None:
        self._seen_generation = generation
        self.project.set_dataset(ds, generation)
        self.dataset = ds
        self.items, self.left_out = dataset_items(ds)
        self.recompute()

    def read_settings(self) -> BucketSettings:
        def num(key: str) -> int:
            value = self.query_one(f"#bk-{key}", Input).value.strip()
            if not value.isdigit():
                raise LorabakeError(f"{key} must be a whole number")
            return int(value)

        res = parse_size(self.query_one("#bk-resolution", Input).value)
        self.epochs = max(num("epochs"), 1)
        return BucketSettings(res, num("min"), num("max"), num("step"),
                              self.query_one("#bk-no-upscale", Checkbox).value,
                              num("batch")).adjusted()

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _settings_changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.15, self.recompute)

    def recompute(self) -> None:
        summary = self.query_one("#bk-summary", Static)
        try:
            self.settings = self.read_settings()
        except LorabakeError as exc:
            summary.update(Text(str(exc), style="bold red"))
            return
        self.report = report = assign_all(self.items, self.settings)
        rows = bucket_histogram(report)
        hist = self.query_one("#bk-histogram", VirtualList)
        hist.set_items(rows)
        hist.border_title = f"Buckets: {len(rows)}"
        steps = total_steps(self.epochs, report.batches_per_epoch)
        text = Text()
        text.append(f"{report.batches_per_epoch}", style="bold")
        text.append(" batches per epoch · ")
        text.append(f"{steps}", style="bold")
        text.append(f" steps over {self.epochs} epochs · {len(rows)} buckets · "
                    f"{len(report.images)} images · mean aspect-ratio error "
                    f"{report.mean_ar_error:.4f}")
        summary.update(text)
        warn = Text()
        for w in report.warnings()[:4]:
            warn.append(f"! {w}\n", style="yellow")
        if self.left_out:
            warn.append(f"{len(self.left_out)} image(s) kohya will not see: "
                        f"{self.left_out[0]}", style="dim")
        self.query_one("#bk-warnings", Static).update(warn)

    # ---- lists --------------------------------------------------------------------------
    def _bucket_row(self, row, width: int) -> Text:
        (w, h), n, s = row
        most = max((r[2] for r in self.query_one("#bk-histogram", VirtualList).items),
                   default=1)
        bar = "█" * max(1, round((width - 30) * s / most)) if width > 32 else ""
        text = Text(f"{w:>4}×{h:<4} {n:5d} {s:6d} ", style="bold")
        text.append(bar, style="cyan")
        return text

    def _image_row(self, img: BucketImage, width: int) -> Text:
        a = img.assignment
        text = Text(img.key, style="bold")
        text.append(f"  {img.size[0]}×{img.size[1]}", style="dim")
        if a.resized:
            text.append(f" → {a.resized[0]}×{a.resized[1]}", style="dim")
        up = a.upscale(img.size)
        if up > 1.01:
            text.append(f"  ↑{up:.1f}x", style="yellow" if up > 2 else "dim")
        return text

    @on(VirtualList.Highlighted, "#bk-histogram")
    def _bucket_highlighted(self, event: VirtualList.Highlighted) -> None:
        images = self.query_one("#bk-images", VirtualList)
        if event.item is None or self.report is None:
            images.set_items([])
            return
        bucket = event.item[0]
        members = self.report.buckets.get(bucket, [])
        images.set_items(members, keep_cursor=False)
        images.border_title = f"{bucket[0]}×{bucket[1]}: {len(members)} images"

    @on(VirtualList.Selected, "#bk-histogram")
    def _bucket_selected(self) -> None:
        self.query_one("#bk-images", VirtualList).focus()

    @on(VirtualList.Highlighted, "#bk-images")
    def _image_highlighted(self, event: VirtualList.Highlighted) -> None:
        img: BucketImage | None = event.item
        if img is None or self.dataset is None:
            return
        self.query_one(CropPreview).show(self.dataset.root / img.key, img.size, img.assignment)

    # ---- actions ------------------------------------------------------------------------
    def action_edit_settings(self) -> None:
        self.query_one("#bk-resolution", Input).focus()

    def action_leave_input(self) -> None:
        if isinstance(self.focused, (Input, Checkbox)):
            self.query_one("#bk-histogram", VirtualList).focus()

    def action_recommend(self) -> None:
        if self.report is None or self.dataset is None:
            return
        from .recommend_dialog import RecommendDialog

        def done(applied) -> None:
            if applied:
                self.project.changed()
                self.load(None)

        self.app.push_screen(RecommendDialog(self.dataset, self.items, self.settings), done)

    def action_image_tools(self) -> None:
        if self.dataset is None:
            return
        from .image_tool_dialog import ImageToolDialog

        def done(changed) -> None:
            if changed:
                self.project.changed()
                self.load(None)

        self.app.push_screen(ImageToolDialog(self.dataset.root, self.dataset.caption_ext), done)

    def action_undo(self) -> None:
        if run_history(self, self.project.journal, "undo") is not None:
            self.project.changed()
            self.load(None)

    def action_redo(self) -> None:
        if run_history(self, self.project.journal, "redo") is not None:
            self.project.changed()
            self.load(None)
