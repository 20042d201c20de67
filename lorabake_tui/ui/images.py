"""Choosing the image renderer. textual-image asks the terminal what it supports when it is
first imported, which must happen before the app takes over the terminal: see launch.py."""

from __future__ import annotations

from textual.widget import Widget


def prepare_renderer(mode: str) -> None:
    """Import textual-image now (before App.run) unless previews are off."""
    if mode != "none":
        import textual_image.widget  # noqa: F401  (the import probes the terminal)


def image_widget_class(mode: str) -> type[Widget] | None:
    """The widget class that draws a PIL image in `mode`, or None for text-only previews."""
    if mode == "none":
        return None
    from textual_image import widget as ti

    return {"auto": ti.Image, "sixel": ti.SixelImage, "tgp": ti.TGPImage,
            "halfcell": ti.HalfcellImage}[mode]
