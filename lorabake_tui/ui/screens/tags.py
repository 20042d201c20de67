"""Tags: the bulk caption editor. Tag frequencies on the left (type to filter), the images
matching the filter expression on the right with their captions, an operation per key, each
previewed before it is applied, and undo/redo."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Static

from ...core.base.errors import LorabakeError
from ...core.captions.store import CaptionPlan, CaptionRecord, CaptionStore
from ...core.captions.tagfilter import Filter, FilterError, parse_filter
from ...core.captions.tagop_specs import SPECS, OpSpec
from ...core.captions.tags import tag_key
from ...core.captions.tokens import (
    TokenSettings,
    matching_records,
    token_counter,
)
from ...core.dataset.scan import Dataset
from ...core.project.prefs import ProjectSettings
from ..history import run_history
from ..palette import theme_style
from ..widgets.thumbstrip import ThumbStrip
from ..widgets.virtual_list import VirtualList
from .op_dialog import OpDialog
from .stage import StageScreen
from .stats_dialog import StatsDialog

SPECIAL_WORDS = {"AND", "OR", "NOT", "empty"}


def filter_term(tag: str) -> str:
    """A tag as a filter term: quoted when it would otherwise read as syntax."""
    plain = tag.replace("\\(", "(").replace("\\)", ")")
    if any(c in plain for c in '()&|!"*?:') or plain.startswith("-") or \
            set(plain.split()) & SPECIAL_WORDS:
        return '"' + plain.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return plain


class TagsScreen(StageScreen):
    STAGE = "tags"
    TITLE_TEXT = "Tags"
    CSS_PATH = "tags.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="tags.filter"),
        Binding("t", "focus_tag_search", "Find tag", id="tags.find"),
        Binding("s", "toggle_sort", "Sort list", id="tags.sort-list", show=False),
        Binding("v", "overview", "Overview", id="tags.overview", show=False),
        *(Binding(spec.key, f"op('{spec.name}')", spec.title, id=f"tags.{spec.name}",
                  show=spec.name in ("replace", "remove", "add", "prune"))
          for spec in SPECS),
        Binding("u,ctrl+z", "undo", "Undo", id="tags.undo"),
        Binding("ctrl+y", "redo", "Redo", id="tags.redo", show=False),
        Binding("f5", "reload", "Reload", id="tags.reload", show=False),
        Binding("T", "autotag", "Auto-tag", id="tags.autotag"),
        Binding("escape", "leave_input", "Back to list", show=False),
        # ↓ in the search box or the filter goes to the list below it: the next letter is
        # then an action (R replaces), not more text
        Binding("down", "to_list", "To the list", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.store: CaptionStore | None = None
        self.filter: Filter | None = None
        self.matching: list[CaptionRecord] = []
        self.sort_by = "count"
        self._seen_generation = -1
        self._filter_timer: Timer | None = None
        self._detail_timer: Timer | None = None
        self.busy = False
        self._images: dict[str, object] = {}
        self.token_settings = TokenSettings()

    @property
    def project(self):
        return self.app.project

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="tags-main"):
            with Vertical(id="tag-pane"):
                yield Input(placeholder="type to find a tag (t)", id="tag-search")
                yield VirtualList(self._tag_row, id="tag-list")
            with Vertical(id="image-pane"):
                yield Input(placeholder="filter images (/): long hair AND NOT folder:misc, "
                            "tags>30, tokens>75, empty, *_background", id="filter")
                yield Static(id="filter-status")
                yield VirtualList(self._image_row, id="image-list")
                with Horizontal(id="detail"):
                    yield ThumbStrip(self.app.images, count=1, id="tag-thumb")
                    yield Static(id="caption-view")
        yield Static(id="tags-result")
        yield Static(id="tags-status")

    def on_mount(self) -> None:
        self.query_one("#tags-result").display = False
        self.query_one("#tag-list").border_title = "Tags"
        self.query_one("#image-list").border_title = "Images"
        self.query_one("#tag-list", VirtualList).focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.store is None or self._seen_generation != self.project.generation:
            self.reload(rescan=self._seen_generation != -1)
        elif (ts := self.project.token_settings()) != self.token_settings:
            self.token_settings = ts  # the Config screen changed the token length
            self.apply_filter()

    # ---- loading ------------------------------------------------------------------------
    def action_reload(self) -> None:
        self.reload(rescan=True)

    def reload(self, *, rescan: bool) -> None:
        """Read the captions; reuse the Concepts screen's scan unless asked to rescan."""
        self._seen_generation = self.project.generation
        self.query_one("#tags-status", Static).update("reading captions…")
        self.load(None if rescan else self.project.fresh_dataset())

    @work(thread=True, exclusive=True, group="tags-load", exit_on_error=False,
          description="read the captions")
    def load(self, ds: Dataset | None) -> None:
        generation = self.project.generation
        try:
            ds = ds or self.project.scan()
            style = ProjectSettings.load(ds.root).write_style
            store = CaptionStore.load(ds, style=style)
            tokens = self.project.token_settings()
            counter = token_counter()
            for rec in store.records:  # fill the per-tag cache here, not while drawing rows
                counter.count(rec.tags, tokens.rules)
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Cannot read captions",
                                      severity="error", timeout=10)
            return
        self.app.call_from_thread(self._loaded, ds, store, generation, tokens)

    def _loaded(self, ds: Dataset, store: CaptionStore, generation: int,
                tokens: TokenSettings | None = None) -> None:
        self.project.set_dataset(ds, generation)
        self.store = store
        self.token_settings = tokens or TokenSettings()
        self._images = {str(i.path): i for c in ds.concepts for i in c.images}
        self.apply_filter()

    # ---- lists --------------------------------------------------------------------------
    def _tag_row(self, item: tuple[str, int], width: int) -> Text:
        tag, n = item
        total = max(len(self.matching), 1)
        text = Text(f"{n:6d} {n / total:5.0%}  ", style="dim")
        text.append(tag)
        return text

    def _image_row(self, rec: CaptionRecord, width: int) -> Text:
        name = rec.image_rel
        text = Text(name, style="bold")
        if not rec.editable:
            text.append(f"  {rec.error}", style=theme_style(self.app, "error"))
        elif not rec.exists:
            text.append("  (no caption)", style=theme_style(self.app, "warning"))
        else:
            n = token_counter().count(rec.tags, self.token_settings.rules)
            over = n > self.token_settings.max_length
            text.append(f"  {n} tok", style=theme_style(self.app, "error", bold=True) if over
                        else theme_style(self.app, "secondary"))
            text.append("  " + ", ".join(rec.tags), style="dim")
        return text

    def refresh_lists(self) -> None:
        if self.store is None:
            return
        tags = self.store.frequencies(self.matching)
        needle = tag_key(self.query_one("#tag-search", Input).value).lower()
        if needle:
            tags = [(t, n) for t, n in tags if needle in tag_key(t).lower()]
        if self.sort_by == "name":
            tags.sort(key=lambda tn: tag_key(tn[0]).lower())
        tag_list = self.query_one("#tag-list", VirtualList)
        tag_list.set_items(tags)
        tag_list.border_title = f"Tags: {len(tags)} by {self.sort_by} (s)"
        images = self.query_one("#image-list", VirtualList)
        images.set_items(self.matching)
        images.border_title = f"Images: {len(self.matching)} of {len(self.store.records)}"
        self._status()

    def _status(self) -> None:
        if self.store is None:
            return
        last = self.project.journal.can_undo()
        text = Text(f"{len(self.store.records)} captions · {len(self.store.counts)} distinct "
                    f"tags · {len(self.matching)} in view · write style {self.store.style}")
        if last is not None:
            text.append(f" · last change: {last.label} (u undo)", style="dim")
        self.query_one("#tags-status", Static).update(text)

    # ---- filtering ----------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def _filter_typed(self) -> None:
        # wait for a pause in typing: re-filtering 10k captions per key is wasted work
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.15, self.apply_filter)

    @on(Input.Changed, "#tag-search")
    def _search_typed(self) -> None:
        self.refresh_lists()

    def apply_filter(self) -> None:
        if self.store is None:
            return
        text = self.query_one("#filter", Input).value
        status = self.query_one("#filter-status", Static)
        try:
            flt = parse_filter(text) if text.strip() else None
        except FilterError as exc:
            caret = Text(" " * exc.position + "^", style=theme_style(self.app, "error", bold=True))
            message = Text(str(exc.message), style=theme_style(self.app, "error"))
            status.update(Text.assemble(message, f" (column {exc.column})\n", caret))
            return
        self.filter = flt
        self.matching = matching_records(self.store, flt, None, self.token_settings.rules)
        status.update(Text(f"{len(self.matching)} image(s) match" if flt else
                           "all images (type a filter to narrow)", style="dim"))
        self.refresh_lists()

    def recolour(self) -> None:
        self.apply_filter()  # the filter's status, then the lists and the detail pane

    @on(VirtualList.Selected, "#tag-list")
    def _tag_chosen(self, event: VirtualList.Selected) -> None:
        """Enter on a tag: show the images that have it."""
        self.query_one("#filter", Input).value = filter_term(event.item[0])
        self.apply_filter()

    @on(VirtualList.Highlighted, "#image-list")
    def _image_highlighted(self, event: VirtualList.Highlighted) -> None:
        # the detail pane (caption, thumbnail) changes layout: update it once the cursor
        # rests, not for every row passed while scrolling
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(0.08, lambda: self._show_detail(event.item))

    def _show_detail(self, rec: CaptionRecord | None) -> None:
        view = self.query_one("#caption-view", Static)
        strip = self.query_one("#tag-thumb", ThumbStrip)
        if rec is None:
            view.update("")
            strip.clear()
            return
        terms = self.filter.tag_terms() if self.filter else set()
        text = Text(rec.rel + "\n", style="bold")
        for i, tag in enumerate(rec.tags):
            text.append(tag, style="bold reverse" if tag_key(tag) in terms else "")
            if i < len(rec.tags) - 1:
                text.append(", ")
        if rec.error:
            text.append(f"\n{rec.error}", style=theme_style(self.app, "error"))
        elif rec.tags:
            text.append_text(self._token_line(rec))
        view.update(text)
        item = self._images.get(str(self.store.root / rec.image_rel))
        if item is not None:
            strip.show(rec.image_rel, [item])

    def _token_line(self, rec: CaptionRecord) -> Text:
        ts = self.token_settings
        t = token_counter().analyse(rec.tags, ts.max_length, ts.rules)
        error = theme_style(self.app, "error")
        line = Text(f"\n{t.total} / {ts.max_length} tokens",
                    style=theme_style(self.app, "error", bold=True) if t.is_over else "dim")
        if t.is_over:
            line.append(f": {t.over} cut ({', '.join(t.cut_tags)})", style=error)
            if t.shuffled:
                line.append(f"; shuffled, about {t.cut_mean:.1f} tag(s) cut per step",
                            style=error)
        if t.kept_over:
            line.append(f"\nthe kept tags alone take {t.kept_total} tokens",
                        style=theme_style(self.app, "error", bold=True))
        for tag, b in t.split_tags:
            line.append(f"\n{tag} crosses the {b}-token chunk boundary",
                        style=theme_style(self.app, "warning"))
        return line

    # ---- actions ------------------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_focus_tag_search(self) -> None:
        self.query_one("#tag-search", Input).focus()

    def action_leave_input(self) -> None:
        if isinstance(self.focused, Input):
            target = "#tag-list" if self.focused.id == "tag-search" else "#image-list"
            self.query_one(target, VirtualList).focus()
        else:
            self.show_result(None)  # esc outside the inputs dismisses the last result

    def action_to_list(self) -> None:
        if isinstance(self.focused, Input):
            self.action_leave_input()

    def show_result(self, text: Text | None) -> None:
        """The last operation's outcome, kept on screen until esc or the next one (a
        notification would vanish before a list of skipped files could be read)."""
        panel = self.query_one("#tags-result", Static)
        panel.update(text or "")
        panel.display = text is not None

    def action_overview(self) -> None:
        if self.store is None:
            return
        from ...core.captions.tagstats import tag_stats

        scope = f"images matching '{self.filter.source}'" if self.filter else "all images"
        self.app.push_screen(StatsDialog(tag_stats(self.store, self.matching), scope))

    def action_autotag(self) -> None:
        if self.store is None or self.busy:
            return
        from .autotag_dialog import AutotagDialog

        def done(result) -> None:
            if result is not None:  # captions written: every screen re-reads them
                self.project.changed()
                self.reload(rescan=True)

        current = self.query_one("#image-list", VirtualList).current
        self.app.push_screen(AutotagDialog(self.store, self.project.journal, current), done)

    def action_toggle_sort(self) -> None:
        self.sort_by = "name" if self.sort_by == "count" else "count"
        self.refresh_lists()

    def _defaults(self, spec: OpSpec) -> dict[str, str]:
        current = self.query_one("#tag-list", VirtualList).current
        tag = current[0] if current else ""
        return {"replace": {"old": tag}, "remove": {"tags": tag}, "prune": {"tags": tag},
                "consolidate": {"tags": tag, "into": tag}}.get(spec.name, {})

    def action_op(self, name: str) -> None:
        if self.store is None or self.busy:
            return
        spec = next(s for s in SPECS if s.name == name)
        scope = (f"images matching '{self.filter.source}'" if self.filter
                 else "all images")
        records = self.matching if self.filter else self.store.records

        def chosen(plan: CaptionPlan | None) -> None:
            if plan is not None:
                self.busy = True
                self.query_one("#tags-status", Static).update(
                    f"writing {plan.files} caption(s)…")
                self.apply_plan(plan)

        self.app.push_screen(OpDialog(spec, self.store, records, scope, self._defaults(spec)),
                             chosen)

    @work(thread=True, exclusive=True, group="tags-apply", exit_on_error=False,
          description="write captions")
    def apply_plan(self, plan: CaptionPlan) -> None:
        try:
            result = self.store.apply(plan, self.project.journal)
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self._applied, None, str(exc))
            return
        self.app.call_from_thread(self._applied, result, None)

    def _applied(self, result, error: str | None) -> None:
        self.busy = False
        if error:
            self.show_result(Text(f"nothing written: {error}  (esc hides this)",
                                  style=theme_style(self.app, "error")))
        else:
            text = Text(f"{result.entry.label}: {result.written} file(s) written. u undoes "
                        "it. (esc hides this)", style="bold")
            if result.skipped:
                # each entry says why: changed on disk, read-only (chmod u+w), a link out
                text.append(f"\n{len(result.skipped)} file(s) left alone: ",
                            style=theme_style(self.app, "warning", bold=True))
                text.append("; ".join(result.skipped[:3]) +
                            (f" and {len(result.skipped) - 3} more" if
                             len(result.skipped) > 3 else ""),
                            style=theme_style(self.app, "warning"))
            self.show_result(text)
            self._own_change()
        self.apply_filter()

    def _own_change(self) -> None:
        self.project.changed()  # other screens re-read; this one is already up to date
        self._seen_generation = self.project.generation

    def action_undo(self) -> None:
        self._history("undo")

    def action_redo(self) -> None:
        self._history("redo")

    def _history(self, which: str) -> None:
        if self.store is None or self.busy:
            return
        entry = run_history(self, self.project.journal, which)
        if entry is None:
            return
        self.show_result(None)  # it reported an edit that is now undone (or replayed)
        if entry.op == "tags":
            self.store.refresh_entry(entry)  # only the files it touched
            self._own_change()
            self.apply_filter()
        else:
            self.project.changed()  # folders moved: read everything again
            self.reload(rescan=True)

    def screen_commands(self):
        from textual.app import SystemCommand

        for spec in SPECS:
            yield SystemCommand(f"Tags: {spec.title}", f"Bulk {spec.name} ({spec.key})",
                                lambda n=spec.name: self.action_op(n))
        yield SystemCommand("Tags: undo", "Undo the last change (u)", self.action_undo)
        yield SystemCommand("Tags: redo", "Redo (ctrl+y)", self.action_redo)
