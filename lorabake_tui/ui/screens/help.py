"""`?`: every key that works on the current screen, and the workflow in five lines."""

from __future__ import annotations

from rich.markup import escape
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
"""


def describe_bindings(screen: Screen) -> list[tuple[str, str]]:
    """(key, description) for every shown binding active on `screen`, app ones included."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _key, active in screen.active_bindings.items():
        b = active.binding
        if not b.description or b.description in seen and not b.show:
            continue
        seen.add(b.description)
        rows.append((screen.app.get_key_display(b), b.description))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-height: 90%; height: auto;
        border: thick $primary; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", show=True)]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        lines = ["[b]Keys on this screen[/b]"]
        # a key such as "[" or a description with brackets must not be read as markup
        lines += [f"  [b]{escape(f'{k:>10}')}[/b]  {escape(d)}" for k, d in self.keys]
        with VerticalScroll():
            yield Static("\n".join(lines), id="help-keys")
            yield Static("\n" + WORKFLOW, id="help-workflow")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
