"""An overview of the captions in view: outliers, empty and missing captions, tags on a single
image, and the tags that set each concept apart (the overlap reasoning behind triggers)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ...core.captions.tagstats import TagStats


def stats_text(stats: TagStats) -> Content:
    # Content styles name the theme's variables, so the text follows a theme change
    warning = "$text-warning"
    t: list[str | tuple[str, str]] = []
    t.append((f"{stats.images} images, {stats.captioned} with tags, "
              f"{len(stats.frequencies)} distinct tags\n", "bold"))
    if stats.outliers:
        t.append(("\nOutliers (failed tagger output?)\n", f"bold {warning}"))
        for o in stats.outliers[:20]:
            t.append(f"  {o.rel}: {o.reason}\n")
    if stats.missing:
        t.append((f"\n{len(stats.missing)} image(s) without a caption\n", warning))
    if stats.empty:
        t.append((f"{len(stats.empty)} empty caption(s)\n", warning))
    if stats.singletons:
        t.append((f"\n{len(stats.singletons)} tag(s) on a single image\n", "bold"))
        t.append(("  " + ", ".join(stats.singletons[:40])
                  + (" …" if len(stats.singletons) > 40 else "") + "\n", "dim"))
    t.append(("\nTags that set each concept apart (share here / elsewhere)\n", "bold"))
    for c in stats.concepts:
        t.append((f"  {c.folder} ({c.images}): ", "bold"))
        t.append((", ".join(f"{tag} {a:.0%}/{b:.0%}" for tag, a, b in c.distinctive)
                  or "nothing stands out", "" if c.distinctive else "dim"))
        t.append("\n")
    return Content.assemble(*t)


class StatsDialog(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape,v,q", "close", "Close")]

    def __init__(self, stats: TagStats, scope: str) -> None:
        super().__init__()
        self.stats, self.scope = stats, scope

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="wide"):
            # the scope holds the user's filter text: "[" in it is text, not markup
            yield Static(Content.from_markup("[b]Overview[/b] of $scope", scope=self.scope),
                         classes="title")
            yield Static(stats_text(self.stats))
            yield Static("[b]esc[/b] close", classes="keys")

    def action_close(self) -> None:
        self.dismiss(None)
