"""Where things are in the checkout, for tests that run commands or read bundled files."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "lorabake_tui"
FAKE_TRAINER = Path(__file__).resolve().with_name("fake_trainer.py")
VENV_LORABAKE = REPO / ".venv" / "bin" / "lorabake"
FAKE_RENDER = Path(__file__).resolve().with_name("fake_render.py")
