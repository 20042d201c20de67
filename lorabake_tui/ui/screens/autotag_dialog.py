"""Auto-tag: choose a WD tagger, thresholds and mode; the highlighted image's tag
probabilities (with the threshold lines) preview what it would get; then a run over the
dataset in a worker, with progress and cancel. The run is one undoable journal entry."""

from __future__ import annotations

import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from ...core.base.errors import LorabakeError
from ...core.base.journal import Journal
from ...core.captions.store import CaptionRecord, CaptionStore
from ...core.images.imageops import ImageDecodeError
from ...core.tagger.autotag import (
    MODES,
    AutotagResult,
    Tagger,
    TagOptions,
    autotag,
    load_last,
    merge,
    open_tagger,
    save_last,
    split_list,
    wants,
)
from ..palette import theme_style
from ..widgets.checkbox import Checkbox
from .plan_dialog import PlanDialog

ALL = "*"
GENERAL_SHOWN, CHARACTER_SHOWN = 24, 8


def score_lines(app, title: str, scores: list[tuple[str, float]], threshold: float,
                limit: int) -> Text:
    """Probabilities, most likely first, with a rule where the threshold cuts the list."""
    text = Text(f"{title} (>= {threshold:g})\n", style="bold")
    rule, below = theme_style(app, "warning"), theme_style(app, dim=True)
    ruled = False
    for tag, p in scores[:limit]:
        if not ruled and p < threshold:
            text.append(f"──── {threshold:g} ────\n", style=rule)
            ruled = True
        text.append(f"{p:5.2f}  {tag}\n", style="" if p >= threshold else below)
    if not ruled:
        text.append(f"──── {threshold:g} ────\n", style=rule)
    return text


class AutotagDialog(PlanDialog[AutotagResult | None]):
    """Returns the run's result, or None."""

    CSS_PATH = ["dialogs.tcss", "autotag_dialog.tcss"]
    APPLY_LABEL, CANCEL_LABEL = "Run", "Close"
    PROGRESS = True

    def __init__(self, store: CaptionStore, journal: Journal,
                 current: CaptionRecord | None = None) -> None:
        super().__init__()
        self.store, self.journal = store, journal
        self.current = current or (store.records[0] if store.records else None)
        self.last = load_last(store.root)
        self.tagger: Tagger | None = None
        self.loaded_spec: str | None = None
        self.probs = None  # the current image's probabilities under the loaded model
        self.cancel_event = threading.Event()

    def dialog_title(self) -> str:
        return "[b]Auto-tag[/b]  WD1.4 / WD v3 tagger · one undoable step"

    def keys_hint(self) -> str:
        return ("[b]enter[/b] load the model (and preview), then run  [b]esc[/b] "
                "stop / close  [b]space[/b] toggle  [b]tab[/b] next field")

    def compose_fields(self) -> ComposeResult:
        last = self.last
        folders = sorted({r.folder for r in self.store.records})
        concept = last.get("concept", ALL)
        yield Label("Model: a folder with model.onnx + selected_tags.csv, or a repo id in "
                    "the Hugging Face cache")
        yield Input(last.get("model", ""), placeholder="SmilingWolf/wd-vit-tagger-v3",
                    id="at-model")
        yield Static(id="at-model-status")
        with Horizontal(id="at-options"):
            with Vertical(classes="opt"):
                yield Label("General ≥")
                yield Input(last.get("general", ""), type="number", id="at-general")
            with Vertical(classes="opt"):
                yield Label("Character ≥")
                yield Input(last.get("character", ""), type="number", id="at-character")
            with Vertical(classes="opt"):
                yield Label("Mode")
                yield Select([(m, m) for m in MODES], allow_blank=False, id="at-mode",
                             value=last.get("mode") if last.get("mode") in MODES
                             else "missing")
            with Vertical(classes="opt"):
                yield Label("Concept")
                yield Select([("all concepts", ALL)] + [(f, f) for f in folders],
                             allow_blank=False, id="at-concept",
                             value=concept if concept in folders else ALL)
        with Horizontal(id="at-lists"):
            with Vertical(classes="opt"):
                yield Label("Undesired tags (comma-separated, globs ok)")
                yield Input(last.get("undesired", ""), id="at-undesired")
            with Vertical(classes="opt"):
                yield Label("Always first (the trigger)")
                yield Input(last.get("first", ""), id="at-first")
        with Horizontal(id="at-checks"):
            yield Checkbox("rating tag", last.get("rating") == "1", id="at-rating")
            yield Checkbox("character tags first", last.get("character_first", "1") == "1",
                           id="at-charfirst")

    def compose_preview(self) -> ComposeResult:
        with Horizontal(id="at-preview"):
            with VerticalScroll(classes="col"):
                yield Static(id="at-general-scores")
            with VerticalScroll(classes="col"):
                yield Static(id="at-character-scores")
        yield Static(id="at-summary")

    def first_focus(self) -> Widget | None:
        return self.query_one("#at-model", Input)

    def ready(self) -> None:
        if self.query_one("#at-model", Input).value.strip():
            self.load_model()
        else:
            self._status(Text("type a model and press enter", style=theme_style(self.app,
                                                                                 dim=True)))
        self.refresh_preview()

    # ---- values -------------------------------------------------------------------------
    def _status(self, text: Text | str) -> None:
        self.query_one("#at-model-status", Static).update(text)

    def _float(self, wid: str) -> float | None:
        raw = self.query_one(wid, Input).value.strip()
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise LorabakeError(f"{raw!r} is not a number") from None

    def options(self) -> TagOptions:
        opts = TagOptions(
            general=self._float("#at-general"), character=self._float("#at-character"),
            rating=self.query_one("#at-rating", Checkbox).value,
            undesired=split_list(self.query_one("#at-undesired", Input).value),
            first=split_list(self.query_one("#at-first", Input).value),
            character_first=self.query_one("#at-charfirst", Checkbox).value,
            mode=str(self.query_one("#at-mode", Select).value))
        opts.check()
        return opts

    def scope(self) -> list[CaptionRecord]:
        concept = self.query_one("#at-concept", Select).value
        return self.store.select(concept=None if concept == ALL else str(concept))

    def _remember(self) -> None:
        values = {"model": self.query_one("#at-model", Input).value.strip(),
                  "general": self.query_one("#at-general", Input).value.strip(),
                  "character": self.query_one("#at-character", Input).value.strip(),
                  "mode": str(self.query_one("#at-mode", Select).value),
                  "concept": str(self.query_one("#at-concept", Select).value),
                  "undesired": self.query_one("#at-undesired", Input).value,
                  "first": self.query_one("#at-first", Input).value,
                  "rating": "1" if self.query_one("#at-rating", Checkbox).value else "0",
                  "character_first": "1" if self.query_one("#at-charfirst",
                                                           Checkbox).value else "0"}
        try:
            save_last(self.store.root, values)
        except OSError:
            pass  # only a convenience

    # ---- the model and the preview --------------------------------------------------------
    def load_model(self) -> None:
        spec = self.query_one("#at-model", Input).value.strip()
        self.tagger, self.probs, self.loaded_spec = None, None, spec
        self._status(Text(f"loading {spec}…", style=theme_style(self.app, dim=True)))
        self._load(spec, self.current)

    @work(thread=True, exclusive=True, group="at-load", exit_on_error=False,
          description="load a tagger")
    def _load(self, spec: str, rec: CaptionRecord | None) -> None:
        worker = get_current_worker()
        try:
            tagger = open_tagger(spec)
        except (LorabakeError, OSError) as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._load_failed, spec, str(exc))
            return
        probs, note = None, ""
        if rec is not None:
            try:
                probs = tagger.predict_file(self.store.root / rec.image_rel)
            except (ImageDecodeError, LorabakeError) as exc:
                note = f"no preview: {rec.image_rel}: {exc}"  # the model is fine for a run
        if not worker.is_cancelled:
            self.app.call_from_thread(self._loaded, spec, tagger, probs, note)

    def _load_failed(self, spec: str, error: str) -> None:
        if spec == self.loaded_spec:
            self._status(Text(error, style=theme_style(self.app, "error")))

    def _loaded(self, spec: str, tagger: Tagger, probs, note: str) -> None:
        if spec != self.loaded_spec:
            return
        self.tagger, self.probs = tagger, probs
        m = tagger.model
        status = Text(f"{tagger.name}: {m.size} px, {len(m.tags)} tags, "
                      f"{m.providers[0].removesuffix('ExecutionProvider')}")
        if note:
            status.append(f"  {note}", style=theme_style(self.app, "warning"))
        self._status(status)
        self.query_one("#at-general", Input).placeholder = f"{m.default_general:g}"
        self.query_one("#at-character", Input).placeholder = f"{m.default_character:g}"
        self.refresh_preview()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def refresh_preview(self) -> None:
        if not self.is_mounted:
            return
        summary = self.query_one("#at-summary", Static)
        try:
            opts = self.options()
            scope = self.scope()
        except LorabakeError as exc:
            summary.update(Text(str(exc), style=theme_style(self.app, "error")))
            return
        todo = sum(1 for r in scope if wants(r, opts.mode))
        text = Text(f"{todo} of {len(scope)} image(s) to tag", style="bold")
        muted = theme_style(self.app, dim=True)
        text.append(f" ({opts.mode})", style=muted)
        gen, char = self.query_one("#at-general-scores", Static), self.query_one(
            "#at-character-scores", Static)
        if self.tagger is not None and self.probs is not None and self.current is not None:
            g_thr, c_thr = self.tagger.thresholds(opts)
            scores = self.tagger.scores(self.probs)
            gen.update(score_lines(self.app, "General", scores.general, g_thr,
                                   GENERAL_SHOWN))
            ctext = score_lines(self.app, "Character", scores.character, c_thr,
                                CHARACTER_SHOWN)
            if scores.rating:
                ctext.append("\nRating\n", style="bold")
                for tag, p in scores.rating:
                    ctext.append(f"{p:5.2f}  {tag}\n")
            char.update(ctext)
            rec = self.current
            caption = merge(rec.tags, self.tagger.select(self.probs, opts), opts.mode,
                            opts.first)
            text.append(f"\n{rec.image_rel}: ", style="bold")
            if wants(rec, opts.mode):
                text.append(", ".join(caption))
            else:
                text.append("has a caption: left alone in 'missing' mode", style=muted)
        else:
            gen.update("")
            char.update("")
        summary.update(text)

    # ---- running ------------------------------------------------------------------------
    def apply(self) -> None:
        """Enter (from any field): load the model the field names and preview it; once it
        is loaded, run."""
        spec = self.query_one("#at-model", Input).value.strip()
        if not spec:
            self.notify("type a model first", severity="warning")
            return
        if spec != self.loaded_spec:
            self.load_model()
            return
        if self.tagger is None:
            self.notify("the model is still loading (or failed: see above)", severity="warning")
            return
        self.run_tagger()

    def run_tagger(self) -> None:
        try:
            opts, scope = self.options(), self.scope()
        except LorabakeError as exc:
            self.notify(str(exc), severity="error")
            return
        if not any(wants(r, opts.mode) for r in scope):
            self.notify(f"nothing to tag in '{opts.mode}' mode", severity="warning")
            return
        self.cancel_event.clear()
        self._remember()
        self.start_progress()
        self._run(self.tagger, opts, scope)

    @work(thread=True, exclusive=True, group="at-run", exit_on_error=False,
          description="auto-tag the dataset")
    def _run(self, tagger: Tagger, opts: TagOptions, scope: list[CaptionRecord]) -> None:
        try:
            result = autotag(self.store, scope, tagger, opts, journal=self.journal,
                             progress=self.progress_from_thread, cancel=self.cancel_event)
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self._finished, None, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - never leave the dialog stuck "running"
            self.app.call_from_thread(self._finished, None, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._finished, result, None)

    def _finished(self, result: AutotagResult | None, error: str | None) -> None:
        self.stop_progress()
        if error or result is None:
            self.query_one("#at-summary", Static).update(Text(
                f"nothing written: {error or 'failed'}", style=theme_style(self.app, "error")))
            return
        written = result.applied.written if result.applied else 0
        msg = f"{result.plan.label}: {written} caption(s) written. u to undo."
        if result.cancelled:
            msg += "\nStopped: run again in 'missing' mode to tag the rest."
        if result.failures:
            msg += f"\n{len(result.failures)} image(s) unreadable: {result.failures[0]}"
        if result.applied and result.applied.skipped:
            msg += (f"\n{len(result.applied.skipped)} caption(s) left alone, e.g. "
                    f"{result.applied.skipped[0]}")
        warn = result.cancelled or result.failures or (result.applied and
                                                       result.applied.skipped)
        self.notify(msg, title="Auto-tag", severity="warning" if warn else "information")
        self.dismiss(result)

    def stop_work(self) -> None:
        self.cancel_event.set()
        self.notify("stopping after this batch; what is done is kept")

    def cancel_result(self) -> None:
        self.workers.cancel_group(self, "at-load")
        return None
