"""Another lorabake process on a dataset, for tests of what two of them share: a workbench
(it holds a session, see core/base/sessions.py) or a bare command. It can make one change
through the journal (a concept folder rename) before it says "ready"; it then waits until its
stdin closes (`stop`) or it is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from .paths import REPO

OTHER = textwrap.dedent("""
    import sys
    from lorabake_tui.core.base.journal import Journal, Rename
    from lorabake_tui.core.base.sessions import Sessions
    root, kind, rename = sys.argv[1], sys.argv[2], sys.argv[3:]
    if kind == "workbench":
        Sessions(root).open()
    if rename:
        Journal(root).apply("set-repeats", "repeats of 10_a -> 20_a", [Rename(*rename)])
    print("ready", flush=True)
    sys.stdin.read()
""")


def start_other(root, kind: str, *rename: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", OTHER, str(root), kind, *rename],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen, sig=None) -> None:
    if sig is None:
        proc.stdin.close()
    else:
        proc.send_signal(sig)
    proc.wait(timeout=20)
