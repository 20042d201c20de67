"""Concepts: the concept folders, their repeats and share of an epoch, problems, previews,
and balancing repeats (preview -> apply -> undo)."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import get_current_worker

from ...core.base.errors import LorabakeError
from ...core.dataset.balance import apply_plan, balance_warnings, target_name
from ...core.dataset.problems import Severity
from ...core.dataset.scan import Concept, Dataset, ScanCancelled
from ...core.dataset.steps import epoch_summary
from ..history import run_history
from ..palette import theme_style
from ..widgets.thumbstrip import ThumbStrip
from .balance_dialog import BalanceDialog
from .repeats_dialog import RepeatsDialog
from .stage import StageScreen

BAR_WIDTH = 12


def share_bar(share: float) -> Text:
    filled = round(share * BAR_WIDTH)
    text = Text("█" * filled, style="bold")
    text.append("░" * (BAR_WIDTH - filled), style="dim")
    text.append(f" {share * 100:4.1f}%")
    return text


def concept_key(c: Concept) -> str:
    return ("reg:" if c.is_reg else "train:") + c.folder


class ConceptsScreen(StageScreen):
    STAGE = "concepts"
    TITLE_TEXT = "Concepts"
    CSS_PATH = "concepts.tcss"
    BINDINGS = [
        Binding("r", "edit_repeats", "Repeats", id="concepts.repeats"),
        Binding("b", "balance", "Balance", id="concepts.balance"),
        Binding("u,ctrl+z", "undo", "Undo", id="concepts.undo"),
        Binding("ctrl+y", "redo", "Redo", id="concepts.redo"),
        Binding("f5", "rescan", "Rescan", id="concepts.rescan"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._seen_generation = -1

    @property
    def project(self):
        return self.app.project

    def compose_body(self) -> ComposeResult:
        with Vertical(id="concepts-pane"):
            yield DataTable(id="concepts", cursor_type="row", zebra_stripes=True)
            yield ProgressBar(id="scan-progress", show_eta=False)
            yield Static(id="summary")
        yield ThumbStrip(self.app.images, id="thumbs")
        problems = DataTable(id="problems", cursor_type="row")
        problems.border_title = "Problems"
        yield problems

    def on_mount(self) -> None:
        table = self.query_one("#concepts", DataTable)
        for label, key in [("Folder", "folder"), ("Images", "images"), ("Repeats", "repeats"),
                           ("Samples/epoch", "samples"), ("Share", "share"),
                           ("No caption", "missing"), ("Problems", "problems")]:
            table.add_column(label, key=key)
        ptable = self.query_one("#problems", DataTable)
        ptable.add_column("", key="sev")
        ptable.add_column("Path", key="path")
        ptable.add_column("Problem and fix", key="message")
        table.focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._seen_generation != self.project.generation:
            self.action_rescan()

    # ---- scanning -----------------------------------------------------------------------
    def action_rescan(self) -> None:
        self._seen_generation = self.project.generation
        bar = self.query_one("#scan-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.scan()

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False,
          description="scan the dataset")
    def scan(self) -> None:
        worker = get_current_worker()
        last = 0.0

        def progress(done: int, total: int) -> None:
            # at most ~10 updates a second: each one waits for the UI thread
            nonlocal last
            now = time.monotonic()
            if now - last >= 0.1 or done >= total:
                last = now
                self.app.call_from_thread(self._progress, done, total)

        generation = self.project.generation
        try:
            ds = self.project.scan(progress=progress, cancelled=lambda: worker.is_cancelled)
        except ScanCancelled:
            return
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self._scan_failed, str(exc))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self.show_dataset, ds, generation)

    def _progress(self, done: int, total: int) -> None:
        self.query_one("#scan-progress", ProgressBar).update(total=total, progress=done)

    def _scan_failed(self, message: str) -> None:
        self.query_one("#scan-progress", ProgressBar).display = False
        self.query_one("#summary", Static).update(
            Text(message, style=theme_style(self.app, "error", bold=True)))
        self.notify(message, title="Scan failed", severity="error", timeout=10)

    # ---- display ------------------------------------------------------------------------
    def show_dataset(self, ds: Dataset, generation: int | None = None) -> None:
        self.project.set_dataset(ds, self.project.generation if generation is None
                                 else generation)
        self.query_one("#scan-progress", ProgressBar).display = False
        table = self.query_one("#concepts", DataTable)
        old_row = table.cursor_row
        table.clear()
        train_total = sum(c.samples for c in ds.train_concepts) or 1
        reg_total = sum(c.samples for c in ds.reg_concepts) or 1
        for c in ds.concepts:
            errors = sum(1 for p in ds.problems
                         if p.concept == c.folder and p.severity is Severity.ERROR)
            warnings = c.problems - errors
            probs = Text()
            if errors:
                probs.append(f"{errors}✗ ", style=theme_style(self.app, "error", bold=True))
            if warnings:
                probs.append(f"{warnings}!", style=theme_style(self.app, "warning"))
            bad = theme_style(self.app, "error", bold=True)
            repeats = Text("none", style=bad) if c.repeats is None else (
                Text(str(c.repeats), style=bad) if c.repeats < 1 else str(c.repeats))
            share = c.samples / (reg_total if c.is_reg else train_total)
            table.add_row(
                ("reg/" if c.is_reg else "") + c.folder, str(c.image_count), repeats,
                str(c.samples), share_bar(share) if c.samples else Text("skipped", style="dim"),
                Text(str(c.captions_missing), style=theme_style(self.app, "warning"))
                if c.captions_missing else "0",
                probs, key=concept_key(c))
        if ds.concepts:
            table.move_cursor(row=min(max(old_row, 0), len(ds.concepts) - 1))
        self._show_summary(ds)
        self._show_problems(ds)
        self._show_thumbs()

    def recolour(self) -> None:
        ds = self.project.dataset
        if ds is not None:
            self.show_dataset(ds, self.project.dataset_generation)

    def _show_summary(self, ds: Dataset) -> None:
        s = epoch_summary([(c.image_count, c.repeats) for c in ds.train_concepts],
                          [(c.image_count, c.repeats) for c in ds.reg_concepts],
                          self.project.epochs)
        text = Text()
        text.append(f"{s.train_samples}", style="bold")
        text.append(" samples per epoch")
        if s.reg_samples:
            text.append(f" + {s.reg_samples} regularization")
        text.append(f" · {s.total_samples} over {s.epochs} epochs · "
                    f"{sum(c.image_count for c in ds.train_concepts)} training images")
        warnings = balance_warnings([(c.folder, c.image_count) for c in ds.train_concepts
                                     if c.samples], s)
        for w in warnings:
            text.append(f"\n! {w}", style=theme_style(self.app, "warning"))
        pending = self.project.journal.can_undo()
        if pending is not None:
            text.append(f"\nlast change: {pending.label} (u to undo)", style="dim")
        self.query_one("#summary", Static).update(text)

    def _show_problems(self, ds: Dataset) -> None:
        table = self.query_one("#problems", DataTable)
        table.clear()
        ordered = sorted(ds.problems, key=lambda p: (p.severity is not Severity.ERROR, p.path))
        for n, p in enumerate(ordered):
            error = p.severity is Severity.ERROR
            sev = Text("✗" if error else "!",
                       style=theme_style(self.app, "error" if error else "warning", bold=True))
            table.add_row(sev, p.path, f"{p.message}. {p.hint}", key=f"p{n}")
        errors = sum(1 for p in ds.problems if p.severity is Severity.ERROR)
        table.border_title = (f"Problems: {errors} error(s), {len(ds.problems) - errors} "
                              "warning(s)" if ds.problems else "Problems: none")

    def highlighted(self) -> Concept | None:
        ds = self.project.dataset
        table = self.query_one("#concepts", DataTable)
        if ds is None or not ds.concepts or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((c for c in ds.concepts if concept_key(c) == key), None)

    def _show_thumbs(self) -> None:
        strip = self.query_one(ThumbStrip)
        c = self.highlighted()
        if c is None:
            strip.clear("no concept folders")
            return
        strip.show(f"{c.folder}: {c.image_count} images", c.images)

    @on(DataTable.RowHighlighted, "#concepts")
    def _highlight(self) -> None:
        self._show_thumbs()

    @on(DataTable.RowSelected, "#concepts")
    def _selected(self) -> None:
        self.action_edit_repeats()

    # ---- changes ------------------------------------------------------------------------
    def action_balance(self) -> None:
        ds = self.project.dataset
        if ds is None:
            return
        if not any(c.image_count for c in ds.train_concepts):
            self.notify("no training folder has images to balance", severity="warning")
            return

        def done(plan) -> None:
            if plan is not None:
                self._apply(plan, op="balance")

        s = self.project.settings()[0]
        self.app.push_screen(BalanceDialog(ds, s.general.epochs, target_name(
            s.optimizer.type, s.network.type)), done)

    def action_edit_repeats(self) -> None:
        c = self.highlighted()
        ds = self.project.dataset
        if c is None or ds is None:
            return
        if c.is_reg:
            self.notify("regularization repeats: kohya matches them to the training samples",
                        severity="warning")
            return

        def done(plan) -> None:
            if plan is not None:
                self._apply(plan, op="set-repeats",
                            label=f"repeats of {c.folder} -> {plan.rows[0].repeats_after}")

        self.app.push_screen(RepeatsDialog(ds, c, self.project.epochs), done)

    def _apply(self, plan, *, op: str, label: str | None = None) -> None:
        ds = self.project.dataset
        try:
            entry = apply_plan(ds, plan, op=op, label=label)
        except LorabakeError as exc:
            self.notify(str(exc), title="Nothing renamed", severity="error", timeout=10)
            self.action_rescan()
            return
        if entry is None:
            self.notify("already balanced: nothing to rename")
            return
        self.project.changed()
        self.notify(f"{entry.label}. Press u to undo.", title="Renamed")
        self.action_rescan()

    def action_undo(self) -> None:
        self._history("undo")

    def action_redo(self) -> None:
        self._history("redo")

    def _history(self, which: str) -> None:
        if run_history(self, self.project.journal, which) is not None:
            self.project.changed()
            self.action_rescan()

    def screen_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Balance repeats", "Plan and apply repeats per concept (b)",
                            self.action_balance)
        yield SystemCommand("Edit repeats", "Set the highlighted folder's repeats (r)",
                            self.action_edit_repeats)
        yield SystemCommand("Undo", "Undo the last change to the dataset (u)", self.action_undo)
        yield SystemCommand("Redo", "Redo what undo took back (ctrl+y)", self.action_redo)
        yield SystemCommand("Rescan", "Read the dataset from disk again (F5)", self.action_rescan)
