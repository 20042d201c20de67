"""The architecture is enforced, not just described."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" not in proc.stdout.split("Contracts:")[-1].replace("0 broken", "")


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_ui_does_not_import_torch():
    mods = _modules_after("import lorabake_tui.ui.app, lorabake_tui.ui.launch, "
                          "lorabake_tui.cli.main")
    assert "lorabake_tui.ui.app" in mods  # the import really happened
    heavy = {"torch", "diffusers", "transformers", "peft", "accelerate"} & mods
    assert not heavy


def test_torch_is_installed_so_the_check_above_means_something():
    # the train extra is part of the test install: if torch were missing the UI test
    # would pass trivially
    import importlib.util

    assert importlib.util.find_spec("torch") is not None


def test_core_stays_free_of_textual():
    mods = _modules_after("import lorabake_tui.core.dataset.scan, "
                          "lorabake_tui.core.dataset.balance, "
                          "lorabake_tui.core.base.journal, lorabake_tui.demo.draw")
    assert not {"textual", "torch", "rich"} & mods


def test_cli_scan_path_does_not_load_textual(tmp_path):
    (tmp_path / "1_a").mkdir()
    code = ("import sys; from lorabake_tui.cli import main; "
            f"main(['scan', {str(tmp_path)!r}, '--json'])")
    assert "textual" not in _modules_after(code)


def _cycles(graph) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return out


def test_no_import_cycles_anywhere():
    import grimp

    graph = grimp.build_graph("lorabake_tui", exclude_type_checking_imports=True)
    assert len(graph.modules) > 100  # the package really was read
    assert _cycles(graph) == []
    # the check finds a cycle when there is one
    graph.add_import(importer="lorabake_tui.core.base.errors",
                     imported="lorabake_tui.core.base.atomic")
    graph.add_import(importer="lorabake_tui.core.base.atomic",
                     imported="lorabake_tui.core.base.errors")
    assert _cycles(graph)
