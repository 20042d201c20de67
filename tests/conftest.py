"""Shared fixtures: every test gets its own config dir and a clean Textual environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .support.helpers import make_concept


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test reads or writes the developer's real settings; no TEXTUAL_* leaks in."""
    for name in list(os.environ):
        if name.startswith("TEXTUAL_") and not name.startswith("TEXTUAL_SNAPSHOT"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    # caches (the SD1.5 config folder) and state (the jobs registry) stay out of $HOME too;
    # one cache per worker, so it is built once
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def umask():
    """The process umask is 022 for one test (each xdist worker is its own process); the
    fixture's value sets another."""
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    """Three training folders with 40, 18 and 6 images, one without a repeat prefix."""
    root = tmp_path / "ds"
    make_concept(root, "10_outfit_a", 40)
    make_concept(root, "10_outfit_b", 18)
    make_concept(root, "10_outfit_c", 6)
    make_concept(root, "misc", 5)
    return root
