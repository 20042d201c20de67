"""One dialog for every bulk tag operation: its fields, its scope, a live preview of the
files it changes (with before/after samples); the keys are PlanDialog's (Enter applies from
any field, Esc cancels)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from ...core.base.errors import LorabakeError
from ...core.captions.store import CaptionPlan, CaptionRecord, CaptionStore
from ...core.captions.tagop_specs import OpSpec, build_op, preset_choices
from ...core.captions.tags import tag_key
from ..palette import theme_style
from ..widgets.checkbox import Checkbox
from .plan_dialog import PlanDialog

SAMPLES = 6


def diff_text(app, rel: str, before: list[str], after: list[str]) -> Text:
    """One sample: the file, then its tags with removed ones struck and added ones marked."""
    after_keys = {tag_key(t) for t in after}
    before_keys = {tag_key(t) for t in before}
    text = Text(rel, style="bold")
    text.append("\n  ")
    removed = theme_style(app, "error", bold=True) + Style(strike=True)
    added = theme_style(app, "success", bold=True)
    kept = theme_style(app, dim=True)
    for t in before:
        if tag_key(t) not in after_keys:
            text.append(f"-{t} ", style=removed)
    for t in after:
        new = tag_key(t) not in before_keys
        text.append(("+" if new else "") + t + ", ", style=added if new else kept)
    return text


class OpDialog(PlanDialog[CaptionPlan | None]):
    """Returns the plan to apply, or None."""

    def __init__(self, spec: OpSpec, store: CaptionStore, scoped: list[CaptionRecord],
                 scope_label: str, defaults: dict[str, str]) -> None:
        super().__init__()
        self.spec, self.store = spec, store
        self.scoped, self.scope_label = scoped, scope_label
        self.defaults = defaults
        self.plan: CaptionPlan | None = None

    def dialog_title(self) -> str:
        return f"[b]{self.spec.title}[/b]"

    def compose_fields(self) -> ComposeResult:
        scopes = [(f"{self.scope_label} ({len(self.scoped)})", "scoped")]
        if len(self.scoped) != len(self.store.records):
            scopes.append((f"all images ({len(self.store.records)})", "all"))
        yield Select(scopes, value="scoped", allow_blank=False, id="scope")
        for f in self.spec.fields:
            yield Label(f.label)
            value = self.defaults.get(f.name, f.default)
            if f.kind == "choice":
                choices = preset_choices() if f.name == "preset" else f.choices
                options = [(c or "(none)", c or "-") for c in choices]
                yield Select(options, value=(value or "-") if (value or "-") in
                             [o[1] for o in options] else options[0][1],
                             allow_blank=False, id=f"f-{f.name}")
            else:
                yield Input(value, placeholder=f.placeholder, id=f"f-{f.name}",
                            type="integer" if f.kind == "int" else "text",
                            select_on_focus=False)
        if self.spec.create_missing_field:
            yield Checkbox("also create captions for images that have none",
                           id="create-missing")

    def compose_preview(self) -> ComposeResult:
        yield Static(id="op-summary")
        with VerticalScroll(id="op-preview"):
            yield Static(id="op-samples")

    def first_focus(self) -> Widget | None:
        # Replace: Find is filled in from the highlighted tag; what the user types next is
        # the replacement. Prune: the preset list comes first.
        if self.spec.name == "replace":
            return self.query_one("#f-new", Input)
        first = self.query("Input, Select#f-preset").first()
        return first

    def ready(self) -> None:
        self.recompute()

    def values(self) -> dict[str, str]:
        out = {}
        for f in self.spec.fields:
            w = self.query_one(f"#f-{f.name}")
            v = w.value
            out[f.name] = "" if v in ("-", Select.BLANK, None) else str(v)
        return out

    def records(self) -> list[CaptionRecord]:
        scope = self.query_one("#scope", Select).value
        return self.scoped if scope == "scoped" else self.store.records

    @on(Select.Changed, "#f-preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        # a preset prunes its own list: a tag filled in from the highlighted row would only
        # make the two conflict
        if event.value not in ("-", Select.BLANK, None) and self.query("#f-tags"):
            self.query_one("#f-tags", Input).value = ""

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def recompute(self) -> None:
        summary = self.query_one("#op-summary", Static)
        try:
            op = build_op(self.spec.name, self.values(), self.store.counts)
        except LorabakeError as exc:
            self.plan = None
            summary.update(Text(str(exc), style=theme_style(self.app, "error")))
            self.query_one("#op-samples", Static).update("")
            return
        create = self.spec.create_missing_field and self.query_one("#create-missing",
                                                                   Checkbox).value
        self.plan = None  # until the preview for these values is ready
        summary.update(Text(f"{op.describe}: computing…", style=theme_style(self.app,
                                                                             dim=True)))
        self.preview(op, self.records(), create)

    @work(thread=True, exclusive=True, group="op-preview", exit_on_error=False,
          description="preview a tag operation")
    def preview(self, op, records, create: bool) -> None:
        plan = self.store.plan(op.fn, records, op.describe, create_missing=create,
                               style_new=op.name != "normalize")
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, plan)

    def removes_without_replacement(self) -> str | None:
        """Replace with an empty replacement removes: the tag it would remove."""
        if self.spec.name != "replace":
            return None
        v = self.values()
        return v.get("old", "") if not v.get("new", "").strip() else None

    def _show(self, plan: CaptionPlan) -> None:
        self.plan = plan
        text = Text(f"{plan.label}: ", style="bold")
        text.append(f"{plan.files} of {len(self.records())} caption(s) change")
        if plan.not_editable:
            text.append(f" · {len(plan.not_editable)} left alone (not UTF-8 or unreadable)",
                        style=theme_style(self.app, "warning"))
        removed = self.removes_without_replacement()
        if removed and plan.files:
            text.append(f"\n'Replace with' is empty: this REMOVES {removed!r} from "
                        f"{plan.files} caption(s)", style=theme_style(self.app, "warning",
                                                                      bold=True))
        self.query_one("#op-summary", Static).update(text)
        samples = Text()
        for ch in plan.changes[:SAMPLES]:
            samples.append_text(diff_text(self.app, ch.record.rel, ch.old_tags, ch.new_tags))
            samples.append("\n")
        if plan.files > SAMPLES:
            samples.append(f"… and {plan.files - SAMPLES} more", style=theme_style(self.app,
                                                                                 dim=True))
        self.query_one("#op-samples", Static).update(samples)

    def apply(self) -> None:
        if self.plan is None:
            self.notify("no preview yet: fix the fields, or wait a moment", severity="error")
            return
        if not self.plan.files:
            self.notify("nothing would change", severity="warning")
            return
        self.dismiss(self.plan)
