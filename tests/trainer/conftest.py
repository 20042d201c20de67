"""The trainer tests' torch threads: one per test, for in-process and child trainers alike.

Two pytest workers share the cores, and the trainer (loop.cpu_threads) takes every core the
process may use unless OMP_NUM_THREADS says otherwise: so it says 1 here."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
