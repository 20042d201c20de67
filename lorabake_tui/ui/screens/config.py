"""Config: the training TOML, checked as you type. The editor (syntax highlighted), the
findings with their lines (enter jumps there), the summary of samples and steps with kohya's
bucket math, the differences from the chosen preset, and save."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Label, Select, Static, TextArea

from ...core.base.atomic import atomic_write_text
from ...core.base.errors import LorabakeError
from ...core.base.journal import STATE_DIRNAME
from ...core.config.check import Finding, check_config
from ...core.config.file import (
    CONFIG_NAME,
    ConfigDoc,
    dump_config,
    parse_config,
)
from ...core.config.presets import DEFAULT_PRESET, list_presets, new_config, preset_config
from ...core.dataset.scan import Dataset
from ..widgets.virtual_list import VirtualList
from .stage import StageScreen


def config_path(root: Path) -> Path:
    return root / STATE_DIRNAME / CONFIG_NAME


def diff_against(doc: ConfigDoc, preset: str) -> list[tuple[str, object, object]]:
    """(key, preset value, current value) for every setting that differs from the preset."""
    base = preset_config(preset)
    cur = doc.merged()
    out = []
    for section, values in cur.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if section == "data" and key in ("subsets", "train_dir", "reg_dir"):
                continue
            if base.get(section, {}).get(key) != value:
                out.append((f"{section}.{key}", base.get(section, {}).get(key), value))
    return out


class ConfigScreen(StageScreen):
    STAGE = "config"
    TITLE_TEXT = "Config"
    CSS_PATH = "config.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="config.save", priority=True),
        # priority: the editor has its own ctrl+d / ctrl+e (delete right, end of line)
        Binding("ctrl+d", "focus_findings", "Findings", id="config.findings", priority=True),
        Binding("ctrl+e", "focus_editor", "Editor", id="config.editor", priority=True),
        Binding("ctrl+o", "focus_preset", "Preset", id="config.preset", priority=True),
        Binding("ctrl+f", "form", "Form", id="config.form", priority=True),
        Binding("ctrl+t", "enqueue", "Train", id="config.queue", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.doc: ConfigDoc | None = None
        self.dataset: Dataset | None = None
        self.saved_text = ""
        self._timer: Timer | None = None

    @property
    def project(self):
        return self.app.project

    @property
    def path(self) -> Path:
        return config_path(self.project.root)

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="cfg-main"):
            editor = TextArea.code_editor("", language="toml", id="cfg-editor",
                                          tab_behavior="focus")
            yield editor
            with Vertical(id="cfg-side"):
                yield Static(id="cfg-summary")
                yield Label("Preset (ctrl+o; choosing one rewrites the config)")
                yield Select([(p, p) for p in list_presets()], value=DEFAULT_PRESET,
                             allow_blank=False, id="cfg-preset")
                yield VirtualList(self._finding_row, id="cfg-findings")
                yield Static(id="cfg-diff")

    def on_mount(self) -> None:
        self.query_one("#cfg-findings").border_title = "Findings"
        self.query_one("#cfg-editor").border_title = str(self.path)
        # start outside the editor, so the stage keys 1-5 keep working; ctrl+e edits
        self.query_one("#cfg-findings", VirtualList).focus()
        self._loading = True
        self.load()

    @work(thread=True, exclusive=True, group="cfg-load", exit_on_error=False,
          description="read the training config")
    def load(self) -> None:
        ds = self.project.fresh_dataset()
        try:
            ds = ds or self.project.scan()
        except (LorabakeError, OSError):
            ds = None
        if self.path.is_file():
            text = self.path.read_text("utf-8")
        elif ds is not None:
            text = dump_config(new_config(DEFAULT_PRESET, ds))
        else:
            text = ""
        self.app.call_from_thread(self._loaded, ds, text)

    def _loaded(self, ds: Dataset | None, text: str) -> None:
        self.dataset = ds
        self.saved_text = text if self.path.is_file() else ""
        self.query_one("#cfg-editor", TextArea).load_text(text)
        self._loading = False
        self.recheck()

    # ---- checking -----------------------------------------------------------------------
    @on(TextArea.Changed, "#cfg-editor")
    def _typed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.recheck)

    def recheck(self) -> None:
        text = self.query_one("#cfg-editor", TextArea).text
        findings_list = self.query_one("#cfg-findings", VirtualList)
        try:
            self.doc = doc = parse_config(text)
            findings = check_config(doc, dataset=self.dataset, base_dir=self.path.parent,
                                    for_trainer=True)
        except LorabakeError as exc:
            self.doc = None
            findings = [Finding("error", "toml", _toml_line(str(exc)), str(exc))]
        findings_list.set_items(findings)
        errors = sum(1 for f in findings if f.severity == "error")
        findings_list.border_title = (f"Findings: {errors} error(s), {len(findings) - errors} "
                                      "warning(s)")
        self._summary()
        self._diff()

    def _finding_row(self, f: Finding, width: int) -> Text:
        text = Text("✗ " if f.severity == "error" else "! ",
                    style="bold red" if f.severity == "error" else "bold yellow")
        text.append(f"{f.line or '-':>4} ", style="dim")
        text.append(f.message)
        return text

    def _summary(self) -> None:
        out = Text()
        dirty = self.query_one("#cfg-editor", TextArea).text != self.saved_text
        out.append("unsaved changes (ctrl+s)\n" if dirty else "saved\n",
                   style="bold yellow" if dirty else "dim")
        if self.doc is None or self.dataset is None:
            self.query_one("#cfg-summary", Static).update(out)
            return
        from ...core.buckets.assign import BucketSettings, assign_all, dataset_items
        from ...core.dataset.steps import run_steps, total_steps

        v = self.doc.value
        try:
            res = int(v("buckets.resolution"))
            settings = BucketSettings((res, res), int(v("buckets.min")), int(v("buckets.max")),
                                      int(v("buckets.step")), bool(v("buckets.no_upscale")),
                                      int(v("general.batch_size")))
            report = assign_all(dataset_items(self.dataset)[0], settings)
            epochs = int(v("general.epochs"))
            max_steps = int(v("general.max_steps") or 0)
        except (LorabakeError, TypeError, ValueError) as exc:
            out.append(f"cannot compute steps: {exc}", style="red")
            self.query_one("#cfg-summary", Static).update(out)
            return
        samples = sum(report.samples(k) for k in report.buckets)
        out.append(f"{samples}", style="bold")
        out.append(" samples per epoch · ")
        out.append(f"{report.batches_per_epoch}", style="bold")
        out.append(f" steps per epoch (batch {settings.batch_size}, {len(report.buckets)} "
                   "buckets) · ")
        out.append(f"{total_steps(epochs, report.batches_per_epoch)}", style="bold")
        out.append(f" steps over {epochs} epochs")
        steps, run_epochs = run_steps(epochs, report.batches_per_epoch, max_steps=max_steps)
        if steps < total_steps(epochs, report.batches_per_epoch):  # the trainer stops there
            out.append(" · general.max_steps stops it at ")
            out.append(f"{steps}", style="bold yellow")
            out.append(f" (in epoch {run_epochs})")
        self.query_one("#cfg-summary", Static).update(out)

    def _diff(self) -> None:
        view = self.query_one("#cfg-diff", Static)
        if self.doc is None:
            view.update("")
            return
        preset = str(self.query_one("#cfg-preset", Select).value)
        rows = diff_against(self.doc, preset)
        text = Text(f"Differences from {preset}: {len(rows)}\n", style="bold")
        for key, old, new in rows[:30]:
            text.append(f"  {key}: ", style="bold")
            text.append(f"{old!r}", style="red")
            text.append(" → ")
            text.append(f"{new!r}\n", style="green")
        view.update(text)

    # ---- actions ------------------------------------------------------------------------
    @on(Select.Changed, "#cfg-preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        if getattr(self, "_loading", True) or self.dataset is None:
            return
        cfg = new_config(str(event.value), self.dataset)
        if self.doc is not None:  # keep what is about this project, not the recipe
            cur = self.doc.merged()
            cfg["general"]["base_model"] = cur["general"]["base_model"]
            cfg["saving"]["output_name"] = cur["saving"]["output_name"] or \
                cfg["saving"]["output_name"]
            cfg["saving"]["comment"] = cur["saving"]["comment"]
        self.query_one("#cfg-editor", TextArea).load_text(dump_config(cfg))
        self.recheck()

    @on(VirtualList.Selected, "#cfg-findings")
    def _jump(self, event: VirtualList.Selected) -> None:
        f: Finding = event.item
        editor = self.query_one("#cfg-editor", TextArea)
        if f.line:
            editor.move_cursor((f.line - 1, 0))
            editor.scroll_cursor_visible(center=True)
        editor.focus()

    def action_save(self) -> None:
        text = self.query_one("#cfg-editor", TextArea).text
        try:
            parse_config(text)
        except LorabakeError as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=10)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, text)
        except OSError as exc:
            self.notify(f"cannot write {self.path}: {exc.strerror}", severity="error")
            return
        self.saved_text = text
        errors = sum(1 for f in self.query_one("#cfg-findings", VirtualList).items
                     if f.severity == "error")
        self.notify(f"saved {self.path}" + (f" ({errors} error(s) left)" if errors else ""))
        self._summary()

    def action_enqueue(self) -> None:
        """Save, then queue the config as a training job (refused while errors remain): it
        starts as soon as its GPU is free and runs detached from this terminal."""
        self.action_save()
        if self.query_one("#cfg-editor", TextArea).text != self.saved_text:
            return  # not saved: the reason was shown
        errors = [f for f in self.query_one("#cfg-findings", VirtualList).items
                  if f.severity == "error"]
        if errors:
            self.notify(f"fix {len(errors)} error(s) first: {errors[0].message}",
                        title="Not queued", severity="error", timeout=10)
            return
        from ...jobs import control

        try:
            job = control.submit(self.path, start=False)
        except LorabakeError as exc:
            self.notify(str(exc), title="Not queued", severity="error", timeout=10)
            return
        self.notify(f"{job.id} queued: it starts when its GPU is free; see the Train stage "
                    "(5)", title="Queued")

    def action_form(self) -> None:
        if self.doc is None:
            self.notify("fix the TOML first: the form needs a file that parses",
                        severity="error")
            return
        from .settings_dialog import SettingsDialog

        def done(text: str | None) -> None:
            if text is not None:
                self.query_one("#cfg-editor", TextArea).load_text(text)
                self.recheck()

        self.app.push_screen(SettingsDialog(self.doc, self.query_one("#cfg-editor",
                                                                      TextArea).text), done)

    def action_focus_findings(self) -> None:
        self.query_one("#cfg-findings", VirtualList).focus()

    def action_focus_editor(self) -> None:
        self.query_one("#cfg-editor", TextArea).focus()

    def action_focus_preset(self) -> None:
        self.query_one("#cfg-preset", Select).focus()


def _toml_line(message: str) -> int | None:
    import re

    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None
