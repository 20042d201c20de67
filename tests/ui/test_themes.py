"""Both shipped themes give every colour the UI uses, legibly; a theme change recolours what
is on screen; checkboxes say on and off by their glyph, legible in both themes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.color import Color
from textual.theme import Theme
from textual.widgets import DataTable

from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.palette import ROLES, theme_color, theme_style
from lorabake_tui.ui.screens.buckets import BucketsScreen
from lorabake_tui.ui.screens.concepts import ConceptsScreen
from lorabake_tui.ui.themes import bundled_theme_dirs, load_theme_file, theme_variable_defaults
from lorabake_tui.ui.widgets.checkbox import Checkbox
from lorabake_tui.ui.widgets.virtual_list import VirtualList

from ..support.helpers import settle

SHIPPED = ["lorabake-dark", "lorabake-light"]
TEXT_ROLES = ["error", "warning", "success", "muted", "accent", "primary", "secondary", "bar"]
MIN_CONTRAST = 3.0  # WCAG's floor for large text; terminal cells are small, so no lower


def shipped_theme(name: str) -> Theme:
    return load_theme_file(bundled_theme_dirs()[0] / f"{name}.toml")


def variables(theme: Theme) -> dict[str, str]:
    """The CSS variables the app gets for `theme` (as App.get_css_variables builds them)."""
    return {**theme_variable_defaults(theme), **theme.to_color_system().generate(),
            **theme.variables}


def luminance(color: Color) -> float:
    """WCAG relative luminance."""
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Color, b: Color) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_role_has_a_colour_that_reads_on_the_theme(name):
    v = variables(shipped_theme(name))
    app = SimpleNamespace(theme_variables=v)
    assert {role: theme_color(app, role) for role in ROLES if theme_color(app, role) is None} \
        == {}
    for ground in ("background", "surface", "panel"):  # screens, lists, status lines
        under = Color.parse(v[ground])
        low = {role: round(contrast(Color.parse(theme_color(app, role)), under), 2)
               for role in TEXT_ROLES}
        assert min(low.values()) >= MIN_CONTRAST, (ground, low)


def test_a_theme_without_the_extra_variables_gets_its_own_colours():
    theme = Theme(name="bare", primary="#336699")
    assert theme_variable_defaults(theme) == {"share-bar": "#336699"}


class Boxes(App):
    def compose(self) -> ComposeResult:
        yield Checkbox("on", True, id="on")
        yield Checkbox("off", id="off")


@pytest.mark.parametrize("name", SHIPPED)
async def test_checked_and_unchecked_boxes_differ_by_glyph_and_both_read(name):
    app = Boxes()
    async with app.run_test() as pilot:
        app.register_theme(shipped_theme(name))
        app.theme = name
        await pilot.pause()
        on, off = app.query_one("#on", Checkbox), app.query_one("#off", Checkbox)
        assert on.render().plain.startswith("[✓]")
        assert off.render().plain.startswith("[ ]")
        for box in (on, off):
            style = box.get_visual_style("toggle--button")
            assert contrast(style.background + style.foreground, style.background) \
                >= MIN_CONTRAST, (box.id, style)
        off.focus()
        await pilot.press("space")
        assert off.value and off.render().plain.startswith("[✓]")


class Rows(App):
    def compose(self) -> ComposeResult:
        yield VirtualList(lambda item, width: Text(item, style=theme_style(self.app, "error")))

    def on_mount(self) -> None:
        self.query_one(VirtualList).set_items(["the cursor's row", "a failed job"])


def row_colour(rows: VirtualList) -> str:
    return next(s.style.color.triplet.hex for s in rows.render_line(1) if "job" in s.text)


async def test_a_list_draws_its_rows_again_in_the_new_theme():
    app = Rows()
    async with app.run_test() as pilot:
        for name in SHIPPED:
            app.register_theme(shipped_theme(name))
        app.theme = SHIPPED[0]
        await pilot.pause()
        rows = app.query_one(VirtualList)
        dark = row_colour(rows)
        assert dark == theme_color(app, "error").lower()
        app.theme = SHIPPED[1]
        await pilot.pause()
        assert row_colour(rows) == theme_color(app, "error").lower() != dark


async def test_the_stage_screens_draw_their_text_again_in_the_new_theme(small_dataset):
    app = make_app(small_dataset, images="none", save_settings=False, theme="lorabake-dark")
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        concepts = app.screen
        assert isinstance(concepts, ConceptsScreen)

        def repeats_colour() -> str:  # "misc" has no repeats: the cell says so in red
            cell = concepts.query_one("#concepts", DataTable).get_cell("train:misc", "repeats")
            return cell.style.color.triplet.hex

        dark = repeats_colour()
        assert dark == theme_color(app, "error").lower()
        await pilot.press("3")
        await settle(pilot)
        buckets = app.screen
        assert isinstance(buckets, BucketsScreen)
        images = buckets.query_one("#bk-images", VirtualList)
        images.focus()
        await pilot.press("down", "down")
        assert images.cursor == 2
        app.theme = "lorabake-light"
        await settle(pilot)
        assert images.cursor == 2  # redrawn in the new colours, not recomputed from the top
        await pilot.press("1")
        await settle(pilot)
        assert repeats_colour() == theme_color(app, "error").lower() != dark  # while away
