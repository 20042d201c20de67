"""The image tools from the workbench: pick a tool, read its plan (what happens to which
file), Enter runs it on every core with a progress bar (Esc cancels: nothing is written),
as one undoable step with the originals kept in .lorabake/originals/. Keys: PlanDialog's."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from ...core.base.errors import LorabakeError
from ...core.dataset.imagetools import (
    ImageOptions,
    ImagePlan,
    apply_image_plan,
    find_duplicates,
    find_lowres,
    plan_images,
)
from ...core.images.imageops import DEFAULT_BACKGROUND, parse_color, parse_size
from ..palette import theme_style
from .plan_dialog import PlanDialog

TOOLS = [("Convert to PNG (webp, avif, gif frames, jpg, bmp), EXIF-rotated upright", "convert"),
         ("Pad to square (white)", "pad"), ("Resize", "resize"),
         ("Upscale low-res images", "upscale"), ("Find near-duplicates", "dupes"),
         ("List low-res images", "lowres")]
REPORTS = ("dupes", "lowres")
SHOWN = 12


class ImageToolDialog(PlanDialog[bool]):
    """Returns whether any file changed."""

    APPLY_LABEL, CANCEL_LABEL = "Run", "Close"
    PROGRESS = True

    def __init__(self, root: Path, caption_ext: str, tool: str = "convert") -> None:
        super().__init__()
        self.root, self.caption_ext, self.tool = root, caption_ext, tool
        self.plan: ImagePlan | None = None
        self.changed = False
        self._timer = None

    def dialog_title(self) -> str:
        return "[b]Image tools[/b]  originals move to .lorabake/originals; one undoable step"

    def compose_fields(self) -> ComposeResult:
        yield Label("Tool (space opens the list; enter runs it)")
        yield Select(TOOLS, value=self.tool, allow_blank=False, id="tool")
        with Horizontal(id="tool-options"):
            with Vertical(classes="opt"):
                yield Label("Size WxH (resize)")
                yield Input("512x512", id="opt-size")
            with Vertical(classes="opt"):
                yield Label("Min side (upscale, low-res)")
                yield Input("512", id="opt-min-side", restrict=r"[0-9]*")
            with Vertical(classes="opt"):
                yield Label("Background")
                yield Input(DEFAULT_BACKGROUND, id="opt-background")
        yield Label("ONNX upscaler model (optional; else Lanczos)")
        yield Input("", placeholder="/path/to/RealESRGAN_x4.onnx", id="opt-model")

    def compose_preview(self) -> ComposeResult:
        with VerticalScroll(id="tool-preview"):
            yield Static(id="tool-summary")

    def first_focus(self) -> Widget | None:
        return self.query_one("#tool", Select)  # choosing the tool comes first

    def cancel_result(self) -> bool:
        return self.changed

    def ready(self) -> None:
        self.replan()

    def options(self) -> ImageOptions:
        try:
            size = parse_size(self.query_one("#opt-size", Input).value)
            typed = self.query_one("#opt-background", Input).value
            background = parse_color(typed or DEFAULT_BACKGROUND)
        except ValueError as exc:
            raise LorabakeError(str(exc)) from None
        min_side = int(self.query_one("#opt-min-side", Input).value or "512")
        model = self.query_one("#opt-model", Input).value.strip() or None
        return ImageOptions(background=background, size=size, min_side=min_side, model=model)

    @on(Input.Changed)
    def _typed(self) -> None:
        # planning reads every image header: wait for a pause in typing
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.replan)

    @on(Select.Changed, "#tool")
    def replan(self) -> None:
        if self.running:
            return
        self.tool = str(self.query_one("#tool", Select).value)
        summary = self.query_one("#tool-summary", Static)
        self.plan = None
        muted, warn = theme_style(self.app, dim=True), theme_style(self.app, "warning")
        if self.tool in REPORTS:
            summary.update(Text("a report: nothing is changed. Enter runs it.", style=muted))
            return
        try:
            self.plan = plan = plan_images(self.root, self.tool, self.options(),
                                           caption_ext=self.caption_ext)
        except (LorabakeError, ValueError) as exc:
            summary.update(Text(str(exc), style=theme_style(self.app, "error")))
            return
        text = Text(f"{len(plan.todo)} image(s) to {plan.operation}", style="bold")
        others = {a: plan.count(a) for a in ("skip", "conflict", "error") if plan.count(a)}
        if others:
            text.append(" · " + ", ".join(f"{n} {a}" for a, n in others.items()), style=warn)
        text.append("\n")
        order = {plan.operation: 0, "error": 1, "conflict": 2}  # what happens first, skips last
        for f in sorted(plan.files, key=lambda f: order.get(f.action, 3))[:SHOWN]:
            style = "" if f.action == plan.operation else warn if f.action != "skip" else muted
            target = f" → {', '.join(f.new_paths)}" if f.new_paths else ""
            text.append(f"  {f.action:8} {f.path}{target}  {f.reason or f.error or ''}\n",
                        style=style)
        if len(plan.files) > SHOWN:
            text.append(f"  … and {len(plan.files) - SHOWN} more\n", style=muted)
        for note in plan.notes:
            text.append(f"{note}\n", style=muted)
        summary.update(text)

    def apply(self) -> None:
        if self._timer is not None:  # run what is shown, not a plan a pending edit replaces
            self._timer.stop()
            self.replan()
        if self.tool not in REPORTS and (self.plan is None or not self.plan.todo):
            self.notify("nothing to do with these settings: read the plan above",
                        severity="warning")
            return
        self.start_progress()
        self.run_tool(self.tool, self.plan)

    def stop_work(self) -> None:
        self.workers.cancel_group(self, "image-tool")
        self.notify("cancelling…")

    @work(thread=True, exclusive=True, group="image-tool", exit_on_error=False,
          description="run an image tool")
    def run_tool(self, tool: str, plan: ImagePlan | None) -> None:
        worker = get_current_worker()
        progress = self.progress_from_thread
        try:
            if tool == "dupes":
                out = find_duplicates(self.root, caption_ext=self.caption_ext,
                                      progress=progress, cancelled=lambda: worker.is_cancelled)
            elif tool == "lowres":
                out = find_lowres(self.root, self.options().min_side,
                                  caption_ext=self.caption_ext)
            else:
                out = apply_image_plan(plan, progress=progress,
                                       cancelled=lambda: worker.is_cancelled)
        except (LorabakeError, OSError) as exc:
            self.app.call_from_thread(self._finished, tool, None, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a worker pool failure must not leave the dialog stuck
            self.app.call_from_thread(self._finished, tool, None,
                                      f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._finished, tool, out, None)

    def _finished(self, tool: str, out, error: str | None) -> None:
        self.stop_progress()
        summary = self.query_one("#tool-summary", Static)
        if error:
            summary.update(Text(f"nothing changed: {error}", style=theme_style(self.app,
                                                                                "error")))
            return
        if tool == "dupes":
            text = Text(f"{len(out.groups)} group(s) of near-duplicates in {out.images} "
                        "images\n", style="bold")
            for group in out.groups[:20]:
                text.append("  " + ", ".join(f"{p} ({d})" for p, d in group) + "\n")
            summary.update(text)
            return
        if tool == "lowres":
            low, bad = out
            text = Text(f"{len(low)} image(s) with a side below the minimum\n", style="bold")
            for item in low[:40]:
                text.append(f"  {item.path} {item.size[0]}×{item.size[1]}\n")
            summary.update(text)
            return
        if out.cancelled:
            summary.update(Text("cancelled: nothing was written", style="bold"))
            return
        failed = out.failures
        msg = f"{len(out.changed)} image(s) done; originals in .lorabake/originals (u undo)"
        if failed:
            msg += f"\n{len(failed)} left alone: {failed[0].path}: {failed[0].error}"
        self.notify(msg, title="Images", severity="warning" if failed else "information")
        self.changed = self.changed or out.applied
        self.dismiss(self.changed)
