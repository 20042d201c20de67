"""`?`: every key that works on the current screen, and the workflow in a few lines."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

WORKFLOW = """\
[b]The workflow[/b]
1 Concepts  folders N_name (N = repeats); balance: ~1000 (AdamW) or 500 (Prodigy)
            samples per concept per epoch
2 Tags      clean captions: trigger first, prune, synonyms, delete noise
3 Buckets   see how kohya will bucket and crop your images
4 Config    review the training TOML
5 Train     run and watch the trainer
6 Evaluate  grids of epochs x weights; keep the best epoch
"""


def literal(text: str) -> str:
    """`text` as markup that shows it as it is: every "[" escaped (Rich's escape leaves a
    lone "[" alone, and "[" before the closing "[/b]" then swallows the tag)."""
    return text.replace("[", "\\[")


# where a binding is defined -> the heading it is listed under, in this order
SECTIONS = ("This stage", "Everywhere", "In the focused list or field")


# Textual's own screen keys (tab, shift+tab, copy) are defined on every screen: not the stage's
SCREEN_BASICS = {b.action for b in Screen.BINDINGS if isinstance(b, Binding)}


def describe_bindings(screen: Screen) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every binding with a description active on `screen`, grouped by where it is defined:
    the stage's own first, then the app's, then the focused widget's (cursor keys and such).
    A key hidden from the footer to save room is still listed here; an action bound to more
    than one key is one row naming them all."""
    groups: dict[str, dict[str, list[str]]] = {name: {} for name in SECTIONS}
    for _key, active in screen.active_bindings.items():
        b = active.binding
        if not b.description:
            continue
        if active.node is screen and b.action not in SCREEN_BASICS:
            section = SECTIONS[0]
        elif active.node is screen or active.node is screen.app:
            section = SECTIONS[1]
        else:
            section = SECTIONS[2]
        keys = groups[section].setdefault(b.description, [])
        shown = screen.app.get_key_display(b)
        if shown not in keys:
            keys.append(shown)
    return [(name, [(" ".join(keys), what) for what, keys in rows.items()])
            for name, rows in groups.items() if rows]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; max-height: 100%; height: auto;
        border: thick $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", show=True)]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.groups = groups
        self.keys = [row for _, rows in groups for row in rows]

    def compose(self) -> ComposeResult:
        lines: list[str] = []
        for heading, rows in self.groups:
            lines += ["" if lines else "", f"[b]{heading}[/b]"]
            # a key such as "[" or a description with brackets must not be read as markup
            lines += [f"  [b]{literal(f'{k:>10}')}[/b]  {literal(d)}" for k, d in rows]
        with VerticalScroll():
            yield Static("\n".join(lines[1:]), id="help-keys")
            yield Static("\n" + WORKFLOW, id="help-workflow")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
