"""Start the workbench for real (terminal, settings, renderer probing)."""

from __future__ import annotations

from pathlib import Path

from ..core.settings import Settings


def run_app(root: Path, *, reg_root: Path | None, caption_ext: str, images: str | None,
            theme: str | None) -> int:
    settings = Settings.load()
    mode = images or settings.images
    if images:
        settings.images = images  # remembered like the theme
        try:
            settings.save()
        except OSError:
            pass
    from .images import prepare_renderer

    prepare_renderer(mode)  # must precede App.run: textual-image probes the terminal on import
    from .app import make_app

    app = make_app(root, reg_root=reg_root, caption_ext=caption_ext, images=mode,
                   settings=settings, theme=theme)
    result = app.run()
    return result or 0
