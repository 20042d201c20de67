"""Child process of bench_first_paint.py: open the workbench headless on DIR, note when the
Concepts screen is first painted and when the scanned concepts are painted, print JSON, exit.

    python bench/first_paint_driver.py DIR SPAWN_TIME FIRST_FOLDER

SPAWN_TIME is the parent's time.time() right before it spawned us; every figure printed is
seconds since then, so interpreter start-up and all imports count. (psutil's create_time()
is no substitute: Linux gives it from the boot time in whole seconds, we saw it 0.7 s off.)
The app runs through App.run_test(size=(160, 48)), i.e. Textual's headless driver.
"""

import sys
import time

T_MAIN = time.time()  # first line of our code: the interpreter itself has started

import asyncio  # noqa: E402  (imports after T_MAIN on purpose: they are being timed)

from lorabake_tui.ui.app import make_app  # noqa: E402
from lorabake_tui.ui.screens.concepts import ConceptsScreen  # noqa: E402

T_IMPORTED = time.time()
TIMEOUT_S = 60.0


async def drive(root: str, first_folder: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    painted = asyncio.Event()
    show_dataset = ConceptsScreen.show_dataset

    def timed_show_dataset(self, ds, *args, **kw) -> None:  # the scan's result reaching the table
        show_dataset(self, ds, *args, **kw)
        marks.setdefault("rows", time.time())

    ConceptsScreen.show_dataset = timed_show_dataset  # this process only
    app = make_app(root, images="none", save_settings=False)
    marks["app_built"] = time.time()
    original = app._display

    def display(screen, renderable) -> None:
        # Every frame goes through App._display. Headless, Textual stops before encoding the
        # frame for the terminal; encode it here so the figure includes that cost too.
        original(screen, renderable)
        if renderable is None or app._batch_count or not isinstance(screen, ConceptsScreen):
            return
        frame = renderable.render_segments(app.console) if hasattr(
            renderable, "render_segments") else ""
        now = time.time()
        marks.setdefault("first_paint", now)
        if first_folder in frame:  # the scanned rows (and the thumb strip title) are drawn
            marks.setdefault("populated_paint", now)
            painted.set()

    app._display = display
    async with app.run_test(size=(160, 48)):
        marks["pilot_ready"] = time.time()
        # Hooks above take the times; no tight polling loop here to steal the GIL from the
        # scan thread. Then check the condition from the outside too.
        await asyncio.wait_for(painted.wait(), TIMEOUT_S)
        rows = app.screen.query_one("#concepts").row_count
        if rows == 0 or "rows" not in marks:
            raise RuntimeError("painted the folder name but the concepts table is empty")
        marks["done"] = time.time()
    return marks


def main() -> int:
    root, spawn, first_folder = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    marks = asyncio.run(drive(root, first_folder))
    marks["main"], marks["imported"] = T_MAIN, T_IMPORTED
    import json

    import psutil

    result = {k: v - spawn for k, v in marks.items()}
    result["rss_mib"] = psutil.Process().memory_info().rss / 2**20
    heavy = ("torch", "onnxruntime", "numpy", "PIL", "textual_image", "diffusers")
    result["heavy_modules"] = [m for m in heavy if m in sys.modules]
    result["torch_loaded"] = "torch" in sys.modules
    result["modules"] = len(sys.modules)
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
