"""Undo/redo from any screen: one place that runs the journal and tells the user."""

from __future__ import annotations

from textual.widget import Widget

from ..core.base.errors import LorabakeError
from ..core.base.journal import Entry, Journal
from ..core.base.sessions import describe_origin


def run_history(widget: Widget, journal: Journal, which: str) -> Entry | None:
    """Undo ("undo") or redo ("redo") the last change; an interrupted operation is rolled
    back first. Notifies the outcome; returns the entry that changed files, if any."""
    try:
        if which == "undo" and journal.interrupted() is not None:
            entry = journal.recover()
        else:
            entry = journal.undo() if which == "undo" else journal.redo()
    except LorabakeError as exc:
        widget.notify(str(exc), title=f"Cannot {which}", severity="error", timeout=10)
        return None
    if entry is None:
        widget.notify(f"nothing to {which}")
        return None
    if entry.conflicts:
        widget.notify("\n".join(entry.conflicts[:5]), title=f"{which}: some files left alone",
                      severity="warning", timeout=15)
    else:
        who = describe_origin(entry.origin)
        if who:  # the shared history took back someone else's change: say so, and longer
            widget.notify(f"{entry.label}: a change made by {who}",
                          title="Undid" if which == "undo" else "Redid", severity="warning",
                          timeout=12)
        else:
            widget.notify(f"{'Undid' if which == 'undo' else 'Redid'}: {entry.label}")
    return entry
