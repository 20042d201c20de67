"""Buckets: what kohya will do with these images at the project's settings. A histogram of
buckets (with and without repeats), batches per epoch and steps, the images of a bucket with
their resized size and crop (drawn on a preview), warnings, and a recommendation of fewer
buckets.

The settings are the project's training config (resolution, min, max, step, batch, epochs,
buckets on/off, no upscale): the numbers are the training plan's, the same the Config
summary and the trainer use. Editing a field is a what-if; enter (or ctrl+s) writes the
changed settings into training.toml as one undoable step."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Label, Static

from ...core.base.errors import LorabakeError
from ...core.base.journal import ConflictError
from ...core.buckets.assign import BucketImage, bucket_histogram
from ...core.config.schema import TrainingSettings
from ...core.dataset.scan import Dataset
from ...core.project.plan import TrainingPlan
from ..history import run_history
from ..palette import theme_style
from ..widgets.checkbox import Checkbox
from ..widgets.crop_preview import CropPreview
from ..widgets.virtual_list import VirtualList
from .stage import StageScreen

# field id -> (label, config key)
FIELDS = {"resolution": ("Resolution", "buckets.resolution"), "min": ("Min", "buckets.min"),
          "max": ("Max", "buckets.max"), "step": ("Step", "buckets.step"),
          "batch": ("Batch", "general.batch_size"), "epochs": ("Epochs", "general.epochs")}
CHECKS = {"enable": ("buckets", "buckets.enable"),
          "no-upscale": ("no upscale", "buckets.no_upscale")}


def setting_value(s: TrainingSettings, name: str):
    section, key = name.split(".")
    return getattr(getattr(s, section), key)


class BucketsScreen(StageScreen):
    STAGE = "buckets"
    TITLE_TEXT = "Buckets"
    CSS_PATH = "buckets.tcss"
    BINDINGS = [
        Binding("k", "recommend", "Recommend", id="buckets.recommend"),
        Binding("i", "image_tools", "Image tools", id="buckets.images"),
        Binding("e", "edit_settings", "Settings", id="buckets.settings"),
        Binding("ctrl+s", "save", "Save to config", id="buckets.save", priority=True),
        Binding("u,ctrl+z", "undo", "Undo", id="buckets.undo"),
        Binding("ctrl+y", "redo", "Redo", id="buckets.redo", show=False),
        Binding("f5", "rescan", "Rescan", id="buckets.rescan", show=False),
        Binding("escape", "leave_input", "Back to list", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.dataset: Dataset | None = None
        self.base: TrainingSettings | None = None  # the config's settings
        self.config_note = ""  # where the base settings came from
        self.settings: TrainingSettings | None = None  # the base with the fields' values
        self.plan: TrainingPlan | None = None
        self._seen_generation = -1
        self._timer: Timer | None = None
        self._filling = False

    @property
    def project(self):
        return self.app.project

    @property
    def report(self):
        return self.plan.report if self.plan is not None else None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bk-settings"):
            for key, (label, _) in FIELDS.items():
                with Vertical(classes="bk-field"):
                    yield Label(label)
                    yield Input("", id=f"bk-{key}", restrict=r"[0-9]*")
            with Vertical(id="bk-checks"):
                for key, (label, _) in CHECKS.items():
                    yield Checkbox(label, id=f"bk-{key}")
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
        else:
            self._read_config()  # the Config screen may have saved new settings

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
        self._read_config(force=True)

    def _read_config(self, *, force: bool = False) -> None:
        """The project's settings into the fields (a what-if in progress is kept unless
        `force`, or unless the config itself changed)."""
        try:
            base, _, from_file = self.project.settings()
        except LorabakeError as exc:
            self.notify(str(exc), severity="error")
            return
        if not force and self.base == base:
            return
        self.base = base
        mine = {name for _, name in (*FIELDS.values(), *CHECKS.values())}
        bad = sorted(mine & base.invalid)
        self.config_note = (
            f"training.toml: {', '.join(bad)} wrong (Config stage): the defaults stand in"
            if bad else "as in training.toml" if from_file else
            "no training.toml yet: the defaults (saving writes one)")
        self._filling = True
        for key, (_, name) in FIELDS.items():
            self.query_one(f"#bk-{key}", Input).value = str(setting_value(base, name))
        for key, (_, name) in CHECKS.items():
            self.query_one(f"#bk-{key}", Checkbox).value = bool(setting_value(base, name))
        self._filling = False
        self.recompute()

    def read_fields(self) -> TrainingSettings:
        assert self.base is not None
        values: dict[str, object] = {}
        for key, (label, name) in FIELDS.items():
            text = self.query_one(f"#bk-{key}", Input).value.strip()
            if not text.isdigit():
                raise LorabakeError(f"{label.lower()} must be a whole number")
            values[name] = int(text)
        for key, (_, name) in CHECKS.items():
            values[name] = self.query_one(f"#bk-{key}", Checkbox).value
        s = self.base
        for section in ("buckets", "general"):
            mine = {n.split(".")[1]: v for n, v in values.items() if n.startswith(section)}
            s = s.replace(section, **mine)
        return s

    def changes(self) -> dict[str, object]:
        """The settings the fields change, config key -> new value."""
        if self.base is None or self.settings is None:
            return {}
        out = {}
        for _, name in (*FIELDS.values(), *CHECKS.values()):
            new = setting_value(self.settings, name)
            if new != setting_value(self.base, name):
                out[name] = new
        return out

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _settings_changed(self) -> None:
        if self._filling:
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.15, self.recompute)

    def recompute(self) -> None:
        summary = self.query_one("#bk-summary", Static)
        if self.dataset is None or self.base is None:
            return
        try:
            self.settings = self.read_fields()
        except LorabakeError as exc:
            summary.update(Text(str(exc), style=theme_style(self.app, "error", bold=True)))
            return
        self.plan = plan = self.project.plan(self.settings, self.dataset)
        if plan.report is not None:
            hist = self.query_one("#bk-histogram", VirtualList)
            hist.set_items(bucket_histogram(plan.report))
        else:
            self.query_one("#bk-histogram", VirtualList).set_items([])
        self.draw_summary()

    def draw_summary(self) -> None:
        """The summary and warnings of the current plan, in the theme's colours."""
        plan, summary = self.plan, self.query_one("#bk-summary", Static)
        if plan is None:
            return
        text = Text()
        changed = self.changes()
        if changed:
            text.append("what-if: ", style=theme_style(self.app, "warning", bold=True))
            text.append(", ".join(f"{n} {setting_value(self.base, n)} → {v}"
                                  for n, v in changed.items()))
            text.append(" · enter or ctrl+s writes training.toml\n", style="dim")
        else:
            text.append(self.config_note + "\n", style="dim")
        report = plan.report
        if report is None:
            text.append(plan.findings[0].message if plan.findings else "no plan",
                        style=theme_style(self.app, "error", bold=True))
            summary.update(text)
            return
        hist = self.query_one("#bk-histogram", VirtualList)
        rows = hist.items
        hist.border_title = f"Buckets: {len(rows)} · size · images · samples (with repeats)"
        g = self.settings.general
        text.append(f"{plan.batches_per_epoch}", style="bold")
        text.append(" batches per epoch · ")
        text.append(f"{plan.uncut_steps}", style="bold")
        text.append(f" steps over {g.epochs} epochs")
        if plan.total_steps < plan.uncut_steps:
            text.append(f" (max_steps stops it at {plan.total_steps})",
                        style=theme_style(self.app, "warning"))
        text.append(f" · {len(rows)} buckets · {len(report.images)} images · mean "
                    f"aspect-ratio error {report.mean_ar_error:.4f}")
        summary.update(text)
        warn = Text()
        for f in plan.findings:  # e.g. an image too large to open: training would stop
            if f.is_error:
                warn.append(f"✗ {f.message}\n", style=theme_style(self.app, "error"))
        for w in report.warnings()[:4]:
            warn.append(f"! {w}\n", style=theme_style(self.app, "warning"))
        if plan.left_out:
            warn.append(f"{len(plan.left_out)} image(s) left out (kohya skips or stops on "
                        f"them): {plan.left_out[0]}", style="dim")
        self.query_one("#bk-warnings", Static).update(warn)

    def recolour(self) -> None:
        # the lists recolour themselves; redrawing only the text keeps the cursors where they are
        self.draw_summary()

    # ---- lists --------------------------------------------------------------------------
    def _bucket_row(self, row, width: int) -> Text:
        (w, h), n, s = row
        most = max((r[2] for r in self.query_one("#bk-histogram", VirtualList).items),
                   default=1)
        bar = "█" * max(1, round((width - 30) * s / most)) if width > 32 else ""
        text = Text(f"{w:>4}×{h:<4} {n:5d} {s:6d} ", style="bold")
        text.append(bar, style=theme_style(self.app, "bar"))
        return text

    def _image_row(self, img: BucketImage, width: int) -> Text:
        a = img.assignment
        text = Text(img.key, style="bold")
        text.append(f"  {img.size[0]}×{img.size[1]}", style="dim")
        if a.resized:
            text.append(f" → {a.resized[0]}×{a.resized[1]}", style="dim")
        up = a.upscale(img.size)
        if up > 1.01:
            text.append(f"  ↑{up:.1f}x",
                        style=theme_style(self.app, "warning") if up > 2 else "dim")
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
        paths = {i.key: i.image.path for i in self.plan.images} if self.plan else {}
        path = paths.get(img.key, self.dataset.root / img.key)
        self.query_one(CropPreview).show(path, img.size, img.assignment)

    # ---- actions ------------------------------------------------------------------------
    def action_edit_settings(self) -> None:
        self.query_one("#bk-resolution", Input).focus()

    def action_leave_input(self) -> None:
        if isinstance(self.focused, (Input, Checkbox)):
            self.query_one("#bk-histogram", VirtualList).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        """Write the changed settings into training.toml (one undoable step)."""
        if self._timer is not None:
            self._timer.stop()
        self.recompute()
        changes = self.changes()
        if not changes:
            self.notify("the settings are as in training.toml")
            return
        if self.plan is None or self.plan.report is None:
            self.notify("fix the settings first", severity="error")
            return
        label = "buckets: " + ", ".join(f"{n.split('.')[1]} {setting_value(self.base, n)} → "
                                        f"{v}" for n, v in changes.items())
        try:
            self.project.set_settings(changes, label=label)
        except ConflictError:
            self.notify("training.toml changed on disk since it was read: nothing written; "
                        "f5 reads it again", title="Not saved", severity="error", timeout=12)
            return
        except LorabakeError as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=12)
            return
        self.notify(f"{label} written to training.toml (u undoes it)")
        self.query_one("#bk-histogram", VirtualList).focus()
        self._read_config(force=True)

    def action_recommend(self) -> None:
        if self.plan is None or self.plan.buckets is None or self.dataset is None:
            return
        from .recommend_dialog import RecommendDialog

        def done(applied) -> None:
            if applied:
                self.project.changed()
                self.load(None)

        items = [(i.key, i.size, i.repeats) for i in self.plan.images]
        self.app.push_screen(RecommendDialog(self.dataset, items, self.plan.buckets), done)

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
