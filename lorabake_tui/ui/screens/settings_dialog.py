"""The config as a form: every setting grouped by section, with its help, its choices and its
current value. Enter edits one; the change goes into the TOML text, comments kept."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from ...core.base.errors import LorabakeError
from ...core.config.file import ConfigDoc, set_value_in_text, toml_literal
from ...core.config.schema import SECTIONS, SETTINGS, Setting
from ..widgets.virtual_list import VirtualList
from .sizes import TINY, SizeClasses


def rows() -> list[Setting | str]:
    out: list[Setting | str] = []
    for section in SECTIONS:
        out.append(section)
        out.extend(s for s in SETTINGS if s.section == section)
    return out


def toml_value(value) -> str:
    """A value as it is written in the TOML file (true, not True); a table (never right for
    a setting: the findings say so) as {...}."""
    if isinstance(value, dict):
        return "{...}"
    return toml_literal(value)


def parse_value(st: Setting, text: str):
    text = text.strip()
    if st.type == "bool":
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError("true or false")
    if st.type == "int":
        return int(text)
    if st.type == "float":
        return float(text)
    if st.type == "list":
        import tomllib

        return tomllib.loads(f"v = {text}")["v"]
    return text


class SettingsDialog(SizeClasses, ModalScreen[str | None]):
    """Returns the new TOML text, or None when nothing changed."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, doc: ConfigDoc, text: str) -> None:
        super().__init__()
        self.doc, self.text, self.changed = doc, text, False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Static("[b]Settings[/b]  enter edits · esc closes", classes="title")
            yield VirtualList(self._row, id="set-list")
            yield Static(id="set-help")
            yield Input(id="set-value", placeholder="new value, enter to set")
            yield Select([], id="set-choice", allow_blank=True)

    def set_size_classes(self, width: int, height: int) -> None:
        super().set_size_classes(width, height)
        for widget in self.query("Input, Select"):
            widget.compact = height < TINY

    def on_mount(self) -> None:
        self.query_one("#set-list", VirtualList).set_items(rows())
        self.query_one("#set-value").display = False
        self.query_one("#set-choice").display = False
        self.query_one("#set-list").focus()

    def _row(self, item, width: int) -> Text:
        if isinstance(item, str):
            return Text(f"[{item}]", style="bold reverse")
        value = self.doc.value(item.name)
        # the longest keys (gradient_accumulation_steps) still get a space before the value
        text = Text(f"  {item.key:<26}" + (" " if len(item.key) >= 26 else ""), style="bold")
        text.append(toml_value(value))
        return text

    @on(VirtualList.Highlighted, "#set-list")
    def _help(self, event: VirtualList.Highlighted) -> None:
        st = event.item
        help_ = self.query_one("#set-help", Static)
        if not isinstance(st, Setting):
            help_.update("")
            return
        extra = f" Choices: {', '.join(map(str, st.choices))}." if st.choices else ""
        rng = "" if st.min is None else f" At least {st.min:g}."
        rng += "" if st.max is None else f" At most {st.max:g}."
        rng += " Kohya export only: lorabake's trainer ignores it." if st.export_only else ""
        help_.update(Text(f"{st.name}: {st.help}{extra}{rng}"))

    @on(VirtualList.Selected, "#set-list")
    def _edit(self, event: VirtualList.Selected) -> None:
        st = event.item
        if not isinstance(st, Setting):
            return
        self.editing = st
        value = self.doc.value(st.name)
        if st.choices or st.type == "bool":
            choices = st.choices or (True, False)
            sel = self.query_one("#set-choice", Select)
            sel.set_options([(str(c), c) for c in choices])
            sel.value = value if value in choices else Select.BLANK
            sel.display = True
            sel.focus()
        else:
            box = self.query_one("#set-value", Input)
            box.value = str(value)
            box.display = True
            box.focus()

    @on(Select.Changed, "#set-choice")
    def _chosen(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK and self.query_one("#set-choice").display:
            self._set(event.value)

    @on(Input.Submitted, "#set-value")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            value = parse_value(self.editing, event.value)
        except (ValueError, KeyError) as exc:
            self.notify(f"{self.editing.name}: {exc}", severity="error")
            return
        self._set(value)

    def _set(self, value) -> None:
        st = self.editing
        try:
            self.text = set_value_in_text(self.text, st.section, st.key, value)
        except LorabakeError as exc:
            self.notify(str(exc), severity="error")
            return
        from ...core.config.file import parse_config

        self.doc = parse_config(self.text)
        self.changed = True
        for w in ("#set-value", "#set-choice"):
            self.query_one(w).display = False
        lst = self.query_one("#set-list", VirtualList)
        lst.set_items(rows())
        lst.focus()

    def action_close(self) -> None:
        if self.query_one("#set-value").display or self.query_one("#set-choice").display:
            for w in ("#set-value", "#set-choice"):
                self.query_one(w).display = False
            self.query_one("#set-list").focus()
            return
        self.dismiss(self.text if self.changed else None)
