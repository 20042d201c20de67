"""`python tests/support/fake_render.py REQUEST.json --run-dir DIR`: the render process with
the stand-in engine (render_stub.py) instead of torch, for tests of render jobs (queueing,
stopping, the Train and Evaluate stages): the same request, files, events and exit codes as
`python -m lorabake_tui.trainer.render`. $FAKE_RENDER_DELAY seconds per image (default 0)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lorabake_tui.trainer.render import __main__ as render_main  # noqa: E402
from tests.support.render_stub import StubEngine  # noqa: E402


class SlowStub(StubEngine):
    def render(self, prompt, **kw):
        time.sleep(float(os.environ.get("FAKE_RENDER_DELAY", "0")))
        return super().render(prompt, **kw)


class _Engine:
    @staticmethod
    def load(base, **kw):
        return SlowStub()


if __name__ == "__main__":
    sys.modules["lorabake_tui.trainer.render.engine"] = type(sys)("engine")
    sys.modules["lorabake_tui.trainer.render.engine"].RenderEngine = _Engine
    sys.exit(render_main.main())
