"""Config: the project's training TOML, checked as you type. The editor (syntax highlighted),
the findings with their lines (enter jumps there), the summary of samples and steps from the
training plan (the numbers the Buckets screen and the trainer use), the differences from the
chosen preset, and save (through the journal: undoable, and never over a file someone else
changed since it was read)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static, TextArea

from ...core.base.errors import LorabakeError
from ...core.base.journal import ConflictError
from ...core.base.project_files import ProjectFiles
from ...core.config.file import ConfigDoc, dump_config, parse_config
from ...core.config.findings import Finding
from ...core.config.presets import DEFAULT_PRESET, list_presets, new_config, preset_config
from ...core.dataset.scan import Dataset
from ...core.project.check import CheckResult
from ...core.project.project import ConfigFile
from ..palette import theme_style
from ..widgets.virtual_list import VirtualList
from .stage import StageScreen


def config_path(root: Path) -> Path:
    return ProjectFiles(root).config


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
        Binding("ctrl+g", "goto_line", "Line", id="config.goto", priority=True),
        # where the terminal sends them (tmux may not: ctrl+g works everywhere)
        Binding("ctrl+home", "editor_edge('top')", "Top", show=False, priority=True),
        Binding("ctrl+end", "editor_edge('end')", "End", show=False, priority=True),
        Binding("f5", "reload", "Reload", id="config.reload", show=False),
        Binding("escape", "leave", "Leave", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.doc: ConfigDoc | None = None
        self.result: CheckResult | None = None
        self.dataset: Dataset | None = None
        self.read: ConfigFile | None = None  # the file as last read or written
        self.saved_text = ""
        self._timer: Timer | None = None
        self._loading = True
        self.queued_note = ""  # the last ctrl+t, shown until the text changes

    @property
    def project(self):
        return self.app.project

    @property
    def path(self) -> Path:
        return self.project.files.config

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="cfg-main"):
            with Vertical(id="cfg-edit"):
                yield Input(placeholder="go to line: a number, or top / end (enter)",
                            id="cfg-goto", restrict=r"[0-9a-zA-Z$]*")
                yield TextArea.code_editor("", language="toml", id="cfg-editor",
                                           tab_behavior="focus")
            with Vertical(id="cfg-side"):
                yield Static(id="cfg-summary")
                yield Label("Preset (ctrl+o; choosing one rewrites the config)")
                yield Select([(p, p) for p in list_presets()], value=DEFAULT_PRESET,
                             allow_blank=False, id="cfg-preset")
                yield VirtualList(self._finding_row, id="cfg-findings")
                yield Static(id="cfg-diff")

    def on_mount(self) -> None:
        self.query_one("#cfg-goto").display = False
        self.query_one("#cfg-findings").border_title = "Findings"
        self.query_one("#cfg-editor").border_title = str(
            self.path.relative_to(self.project.root))  # the header names the project
        # start outside the editor, so the stage keys 1-5 keep working; ctrl+e edits
        self.query_one("#cfg-findings", VirtualList).focus()
        self.load()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._loading or self.read is None:
            return
        if self.read.changed_on_disk():  # the Buckets screen, undo, another editor
            if self._editor_text() == self.saved_text:
                self.load()
            else:
                self.notify(f"{self.path.name} changed on disk; your unsaved edits are kept "
                            "(ctrl+s will not overwrite it: copy your edits, then f5 reloads)",
                            title="Config changed on disk", severity="warning", timeout=12)
        elif self.project.generation != getattr(self, "_seen_generation", -1):
            self.recheck()  # folders renamed or images changed: the plan changed

    def _editor_text(self) -> str:
        return self.query_one("#cfg-editor", TextArea).text

    @work(thread=True, exclusive=True, group="cfg-load", exit_on_error=False,
          description="read the training config")
    def load(self) -> None:
        generation = self.project.generation
        ds = self.project.fresh_dataset()
        try:
            ds = ds or self.project.scan()
        except (LorabakeError, OSError):
            ds = None
        try:
            read = self.project.read_config()
        except LorabakeError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Config not read",
                                      severity="error", timeout=15)
            return
        if read.text is not None:
            text = read.text
        elif ds is not None:
            text = dump_config(new_config(DEFAULT_PRESET, ds))
        else:
            text = ""
        self.app.call_from_thread(self._loaded, ds, read, text, generation)

    def _loaded(self, ds: Dataset | None, read: ConfigFile, text: str, generation: int) -> None:
        if ds is not None and self.project.fresh_dataset() is None:
            self.project.set_dataset(ds, generation)
        self.dataset = ds
        self.read = read
        self.saved_text = read.text or ""
        self.query_one("#cfg-editor", TextArea).load_text(text)
        self._loading = False
        self.recheck()

    def action_reload(self) -> None:
        """f5: read the file again (unsaved edits are dropped)."""
        self._loading = True
        self.load()

    # ---- checking -----------------------------------------------------------------------
    @on(TextArea.Changed, "#cfg-editor")
    def _typed(self) -> None:
        self.queued_note = ""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.recheck)
        self._summary()  # "unsaved changes" at once

    def recheck(self) -> None:
        self._seen_generation = self.project.generation
        # a scan made before the last change (a rename, an undo) is not used: the check
        # scans again in its thread
        self._check(self._editor_text(), self.project.fresh_dataset(),
                    self.project.generation)

    @work(thread=True, exclusive=True, group="cfg-check", exit_on_error=False,
          description="check the training config")
    def _check(self, text: str, dataset: Dataset | None, generation: int) -> None:
        result = self.project.check(text, dataset=dataset)
        self.app.call_from_thread(self._checked, text, result, generation)

    def _checked(self, text: str, result: CheckResult, generation: int) -> None:
        if text != self._editor_text():
            return  # typed on since: the next check is on its way
        self.result = result
        self.doc = result.doc
        ds = result.dataset
        if ds is not None:
            self.dataset = ds
            pr = self.project
            same = (ds.root, ds.reg_root, ds.caption_ext) == (pr.root, pr.reg_root,
                                                               pr.caption_ext)
            if same and pr.fresh_dataset() is None:  # the other screens can use it
                pr.set_dataset(ds, generation)
        findings = result.findings
        findings_list = self.query_one("#cfg-findings", VirtualList)
        findings_list.set_items(findings)
        errors = sum(1 for f in findings if f.is_error)
        findings_list.border_title = (f"Findings: {errors} error(s), {len(findings) - errors} "
                                      "warning(s)")
        self._summary()
        self._diff()

    def _finding_row(self, f: Finding, width: int) -> Text:
        text = Text("✗ " if f.is_error else "! ",
                    style=theme_style(self.app, "error" if f.is_error else "warning", bold=True))
        text.append(f"{f.line or '-':>4} ", style="dim")
        text.append(f.message)
        return text

    def _summary(self) -> None:
        out = Text()
        dirty = self._editor_text() != self.saved_text
        out.append("unsaved changes (ctrl+s)\n" if dirty else "saved\n",
                   style=theme_style(self.app, "warning", bold=True) if dirty
                   else theme_style(self.app, dim=True))
        if self.queued_note:
            out.append(self.queued_note + "\n", style=theme_style(self.app, "success",
                                                                  bold=True))
        plan = self.result.plan if self.result is not None else None
        if plan is None or plan.report is None:
            if self.result is not None and self.result.doc is not None:
                out.append("no plan yet: fix the errors first",
                           style="dim")
            self.query_one("#cfg-summary", Static).update(out)
            return
        g = plan.settings.general
        out.append(f"{plan.samples_per_epoch}", style="bold")
        out.append(" samples per epoch · ")
        out.append(f"{plan.steps_per_epoch}", style="bold")
        out.append(f" steps per epoch (batch {g.batch_size}, {len(plan.report.buckets)} "
                   f"bucket{'s' if len(plan.report.buckets) != 1 else ''}"
                   f"{'' if plan.settings.buckets.enable else ', buckets off'}) · ")
        out.append(f"{plan.uncut_steps}", style="bold")
        out.append(f" steps over {g.epochs} epochs")
        if plan.total_steps < plan.uncut_steps:  # the trainer stops there
            out.append(" · general.max_steps stops it at ")
            out.append(f"{plan.total_steps}", style=theme_style(self.app, "warning", bold=True))
            out.append(f" (in epoch {plan.epochs})")
        if plan.warmup_steps:
            out.append(f" · {plan.warmup_steps} warmup steps")
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
            text.append(f"{old!r}", style=theme_style(self.app, "error"))
            text.append(" → ")
            text.append(f"{new!r}\n", style=theme_style(self.app, "success"))
        view.update(text)

    def recolour(self) -> None:
        if self.result is not None:
            self._summary()
            self._diff()

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

    def action_save(self) -> bool:
        """Write the editor's text through the journal (undo takes it back). Refused when the
        file changed on disk since it was read: nothing is overwritten."""
        text = self._editor_text()
        try:
            parse_config(text)
        except LorabakeError as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=10)
            return False
        if self.read is None:
            return False
        if text == self.saved_text and self.read.exists:
            self.notify(f"{self.path.name} is unchanged")
            return True
        try:
            self.project.write_config(text, self.read, label="config: saved from the Config "
                                      "screen")
        except ConflictError:
            self.notify(f"{self.path} changed on disk since it was read: not overwritten. "
                        "Copy your edits, then f5 reloads the file", title="Not saved",
                        severity="error", timeout=15)
            return False
        except (LorabakeError, OSError) as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=10)
            return False
        self.read = self.project.read_config()
        self.saved_text = text
        errors = sum(1 for f in self.query_one("#cfg-findings", VirtualList).items
                     if f.is_error)
        self.notify(f"saved {self.path}" + (f" ({errors} error(s) left)" if errors else "")
                    + "; u on another stage undoes it")
        self._summary()
        return True

    def action_enqueue(self) -> None:
        """Save, then queue the config as a training job (refused while errors remain): it
        starts as soon as its GPU is free and runs detached from this terminal."""
        if not self.action_save():
            return  # not saved: the reason was shown
        errors = [f for f in self.query_one("#cfg-findings", VirtualList).items
                  if f.is_error]
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
        where = f"GPU {job.gpus}" if job.gpus else "the default GPU"
        self.queued_note = (f"queued {job.id} ({where}): it starts when the GPU is free; "
                            "the Train stage (5) follows it")
        self.notify(self.queued_note, title="Queued")
        self._summary()

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
            # back outside the editor, so the stage keys work (and never type "5" into it)
            self.query_one("#cfg-findings", VirtualList).focus()

        self.app.push_screen(SettingsDialog(self.doc, self.query_one("#cfg-editor",
                                                                      TextArea).text), done)

    # ---- moving in the editor -----------------------------------------------------------
    def action_goto_line(self) -> None:
        box = self.query_one("#cfg-goto", Input)
        box.value = ""
        box.display = True
        box.focus()

    @on(Input.Submitted, "#cfg-goto")
    def _goto(self, event: Input.Submitted) -> None:
        editor = self.query_one("#cfg-editor", TextArea)
        text = event.value.strip().lower()
        last = editor.document.line_count
        if text in ("", "top", "t", "1"):
            line = 1
        elif text in ("end", "e", "$"):
            line = last
        elif text.isdigit():
            line = max(1, min(int(text), last))
        else:
            self.notify("a line number, top or end", severity="warning")
            return
        event.input.display = False
        editor.move_cursor((line - 1, 0))
        editor.scroll_cursor_visible(center=True)
        editor.focus()

    def action_editor_edge(self, where: str) -> None:
        editor = self.query_one("#cfg-editor", TextArea)
        line = 0 if where == "top" else editor.document.line_count - 1
        editor.move_cursor((line, 0))
        editor.scroll_cursor_visible(center=True)
        editor.focus()

    def action_leave(self) -> None:
        """esc: out of the go-to box (back to the editor), or out of the editor (to the
        findings), so the stage keys and the screen's keys work again."""
        box = self.query_one("#cfg-goto", Input)
        if box.display:
            box.display = False
            self.query_one("#cfg-editor", TextArea).focus()
        elif self.focused is self.query_one("#cfg-editor", TextArea):
            self.query_one("#cfg-findings", VirtualList).focus()

    def action_focus_findings(self) -> None:
        self.query_one("#cfg-findings", VirtualList).focus()

    def action_focus_editor(self) -> None:
        self.query_one("#cfg-editor", TextArea).focus()

    def action_focus_preset(self) -> None:
        self.query_one("#cfg-preset", Select).focus()
