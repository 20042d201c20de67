"""The Tags screen shows each caption's token count and marks the ones over the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from lorabake_tui.ui.app import make_app
from lorabake_tui.ui.palette import theme_style
from lorabake_tui.ui.widgets.virtual_list import VirtualList

from ..support.helpers import make_concept, settle
from .test_ui_tags import SIZE, open_tags


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_concept(root, "10_a", 3, caption="mira, 1girl, smile")
    long = ", ".join(["mira", *(f"tag number {i}" for i in range(30))])  # 141 tokens
    (root / "10_a" / "img_001.txt").write_text(long + "\n")
    cfg = root / ".lorabake" / "training.toml"
    cfg.parent.mkdir()
    cfg.write_text("[general]\nmax_token_length = 75\n")
    return root


def styles(text) -> set[str]:
    return {str(span.style) for span in text.spans}


async def test_token_counts_and_over_long_highlight(project):
    app = make_app(project, images="none", save_settings=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tags(pilot)
        assert screen.token_settings.max_length == 75
        images = screen.query_one("#image-list", VirtualList)
        rows = {rec.image_rel: screen._image_row(rec, 140) for rec in images.items}
        over = str(theme_style(app, "error", bold=True))  # the theme's error colour, bold
        assert "  6 tok" in rows["10_a/img_000.png"].plain
        assert over not in styles(rows["10_a/img_000.png"])
        assert "  141 tok" in rows["10_a/img_001.png"].plain
        assert over in styles(rows["10_a/img_001.png"])

        await pilot.press("slash", *"tokens>75", "escape")
        await pilot.pause(0.3)
        await settle(pilot)
        assert screen.query_one("#filter", Input).value == "tokens>75"
        assert [r.image_rel for r in screen.matching] == ["10_a/img_001.png"]
        await pilot.press("down", "up")  # highlight it: the detail pane says what is cut
        await pilot.pause(0.3)
        detail = str(screen.query_one("#caption-view", Static).render())
        assert "141 / 75 tokens: 66 cut" in detail
        assert "tag number 29" in detail
