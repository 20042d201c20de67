"""The `lorabake` command: every workbench operation, headless."""

from .main import main

__all__ = ["main"]
