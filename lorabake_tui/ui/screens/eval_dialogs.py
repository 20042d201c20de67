"""The Evaluate stage's dialogs: a new grid (weights, prompts, seeds, sampler; Enter queues it),
a trigger probe, the keep folder, and one cell zoomed to the whole screen.

The grid and probe dialogs build the request with core/eval/request.py's parsers, so a bad
field gets the same one-line message as on the command line, and return it checked; the
screen queues it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from ...core.base.errors import LorabakeError
from ...core.eval.request import (
    DEFAULT_SAMPLER,
    GridRequest,
    LoraChoice,
    ProbeRequest,
    RenderSettings,
    cell_count,
    parse_size,
    parse_weights,
    seed_list,
)
from ..images import image_widget_class
from ..palette import theme_style
from .plan_dialog import PlanDialog

DEFAULT_WEIGHTS_TEXT = "0,0.4,0.7,1"
PROMPTS = 3  # prompt fields in the grid dialog: each adds a block per seed


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise LorabakeError(f"{what} {text.strip()!r} is not a whole number") from None


def _float(text: str, what: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise LorabakeError(f"{what} {text.strip()!r} is not a number") from None


@dataclass(slots=True)
class GridDefaults:
    base: str
    run_dir: str
    out: str
    prompts: list[str]
    clip_skip: int = 1


class FormDialog(PlanDialog):
    """Labelled inputs side by side, a few per line, and a summary line that checks them."""

    DEFAULT_CSS = """
    FormDialog .ev-line { height: auto; }
    FormDialog .ev-line .opt { width: 1fr; height: auto; }
    FormDialog #ev-summary { height: auto; margin-top: 1; }
    FormDialog.-tiny #ev-summary { margin-top: 0; }
    """

    def field(self, fid: str, label: str, value: str, placeholder: str = "") -> Widget:
        box = Vertical(classes="opt")
        box.compose_add_child(Label(label))
        box.compose_add_child(Input(value, placeholder=placeholder, id=fid,
                                    select_on_focus=False))
        return box

    def text(self, fid: str) -> str:
        return self.query_one(f"#{fid}", Input).value

    def settings(self) -> RenderSettings:
        w, h = parse_size(self.text("ev-size"))
        return RenderSettings(steps=_int(self.text("ev-steps"), "steps"),
                              cfg=_float(self.text("ev-cfg"), "cfg"), width=w, height=h,
                              sampler=self.text("ev-sampler").strip() or DEFAULT_SAMPLER,
                              clip_skip=self.clip_skip)

    clip_skip = 1

    def keys_hint(self) -> str:
        return (f"[b]enter[/b] {self.APPLY_LABEL.lower()}  [b]esc[/b] "
                f"{self.CANCEL_LABEL.lower()}  [b]tab[/b] next field")

    def compose_preview(self) -> ComposeResult:
        yield Static(id="ev-summary")

    def ready(self) -> None:
        self.recompute()

    def build(self):
        raise NotImplementedError

    def summary(self, req) -> str:
        raise NotImplementedError

    @on(Input.Changed)
    def _changed(self) -> None:
        self.recompute()

    def recompute(self) -> None:
        out = self.query_one("#ev-summary", Static)
        try:
            req = self.build()
            req.check()
        except LorabakeError as exc:
            out.update(Text(str(exc), style=theme_style(self.app, "error")))
            return
        out.update(Text(self.summary(req), style=theme_style(self.app, "success")))

    def apply(self) -> None:
        try:
            req = self.build()
            req.check()
        except LorabakeError as exc:
            self.notify(str(exc), title="Not queued", severity="error")
            return
        self.dismiss(req)


class GridDialog(FormDialog):
    """Returns a checked GridRequest, or None."""

    APPLY_LABEL = "Queue"

    def __init__(self, defaults: GridDefaults, loras: list[LoraChoice]) -> None:
        super().__init__()
        self.defaults, self.loras = defaults, loras
        self.clip_skip = defaults.clip_skip

    def dialog_title(self) -> str:
        return (f"[b]Queue a grid[/b]  {len(self.loras)} file(s) of "
                f"{Path(self.defaults.run_dir).name}")

    def compose_fields(self) -> ComposeResult:
        prompts = self.defaults.prompts + [""] * PROMPTS
        for i in range(PROMPTS):
            with Horizontal(classes="ev-line"):
                yield self.field(f"ev-prompt{i}", f"Prompt {i + 1}" + (" (optional)" if i else ""),
                                 prompts[i], "the trigger, then what the picture shows")
        with Horizontal(classes="ev-line"):
            yield self.field("ev-weights", "Weights", DEFAULT_WEIGHTS_TEXT, "0,0.4,0.7,1")
            yield self.field("ev-seed", "First seed", "1")
            yield self.field("ev-seeds", "Seeds", "1")
        with Horizontal(classes="ev-line"):
            yield self.field("ev-steps", "Steps", "20")
            yield self.field("ev-cfg", "CFG", "7")
            yield self.field("ev-size", "Size", "512x512")
            yield self.field("ev-sampler", "Sampler", DEFAULT_SAMPLER)

    def first_focus(self) -> Widget | None:
        return self.query_one("#ev-prompt0", Input)

    def build(self) -> GridRequest:
        prompts = [p.strip() for p in (self.text(f"ev-prompt{i}") for i in range(PROMPTS))
                   if p.strip()]
        if not prompts:
            raise LorabakeError("no prompt", "write one in Prompt 1 (the trigger first)")
        seeds = seed_list(_int(self.text("ev-seed"), "seed"),
                          _int(self.text("ev-seeds"), "seed count"))
        return GridRequest(base=self.defaults.base, loras=list(self.loras),
                           weights=parse_weights(self.text("ev-weights")), prompts=prompts,
                           seeds=seeds, out=self.defaults.out, render=self.settings(),
                           run_dir=self.defaults.run_dir)

    def summary(self, req: GridRequest) -> str:
        return (f"{len(req.loras)} file(s) × {len(req.weights)} weight(s) × "
                f"{len(req.prompts)} prompt(s) × {len(req.seeds)} seed(s) = "
                f"{cell_count(req)} images · {req.render.width}×{req.render.height}, "
                f"{req.render.steps} steps")


class ProbeDialog(FormDialog):
    """Returns a checked ProbeRequest (its out_dir from `out_dir(word)`), or None."""

    APPLY_LABEL = "Queue"

    def __init__(self, base: str, word: str, subject: str, out_dir) -> None:
        super().__init__()
        self.base, self.word, self.subject, self.out_dir = base, word, subject, out_dir

    def dialog_title(self) -> str:
        return ("[b]Probe a trigger word[/b]  the base model draws it over a few seeds: "
                "varied pictures mean the model has no settled meaning for it")

    def compose_fields(self) -> ComposeResult:
        with Horizontal(classes="ev-line"):
            yield self.field("ev-word", "Word", self.word, "the trigger")
            yield self.field("ev-subject", "With subject tag", self.subject, "(none)")
        with Horizontal(classes="ev-line"):
            yield self.field("ev-seed", "First seed", "1")
            yield self.field("ev-seeds", "Seeds", "4")
            yield self.field("ev-steps", "Steps", "20")
        with Horizontal(classes="ev-line"):
            yield self.field("ev-cfg", "CFG", "7")
            yield self.field("ev-size", "Size", "512x512")
            yield self.field("ev-sampler", "Sampler", DEFAULT_SAMPLER)

    def first_focus(self) -> Widget | None:
        return self.query_one("#ev-word", Input)

    def build(self) -> ProbeRequest:
        word = self.text("ev-word").strip()
        seeds = seed_list(_int(self.text("ev-seed"), "seed"),
                          _int(self.text("ev-seeds"), "seed count"))
        return ProbeRequest(base=self.base, word=word, seeds=seeds,
                            out_dir=str(self.out_dir(word)) if word else "",
                            subject=self.text("ev-subject").strip(), render=self.settings())

    def summary(self, req: ProbeRequest) -> str:
        groups = 3 if req.subject else 2
        return (f"{groups * len(req.seeds)} images (no prompt, the word"
                f"{', the word with ' + req.subject if req.subject else ''}) -> {req.out_dir}")


class KeepFolderDialog(FormDialog):
    """Returns the folder (expanded, existing) or None."""

    APPLY_LABEL = "Set"

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def dialog_title(self) -> str:
        return ("[b]Keep folder[/b]  k copies the current cell's LoRA file here, never "
                "replacing a file (remembered in your settings)")

    def compose_fields(self) -> ComposeResult:
        yield self.field("ev-folder", "Folder", self.current,
                         "e.g. ~/stable-diffusion-webui/models/Lora")

    def build(self) -> Path:
        text = self.text("ev-folder").strip()
        if not text:
            raise LorabakeError("no folder given", "give the folder your UI loads LoRAs from")
        path = Path(text).expanduser()
        if not path.is_dir():
            raise LorabakeError(f"{path}: not a folder", "give an existing folder")
        return path.resolve()

    def recompute(self) -> None:
        out = self.query_one("#ev-summary", Static)
        try:
            path = self.build()
        except LorabakeError as exc:
            out.update(Text(str(exc), style=theme_style(self.app, "error")))
            return
        out.update(Text(f"keep into {path}", style=theme_style(self.app, "success")))

    def apply(self) -> None:
        try:
            path = self.build()
        except LorabakeError as exc:
            self.notify(str(exc), title="Keep folder", severity="error")
            return
        self.dismiss(str(path))


class ZoomScreen(ModalScreen[None]):
    """One cell over the whole screen (its picture, when previews are on), its labels under
    it; Esc, Enter or q go back."""

    DEFAULT_CSS = """
    ZoomScreen { background: $background; }
    ZoomScreen > #zoom-image { width: 100%; height: 1fr; }
    ZoomScreen > .placeholder { content-align: center middle; color: $text-muted; }
    ZoomScreen > #zoom-info { height: auto; padding: 0 1; background: $boost; }
    """
    BINDINGS = [Binding("escape,enter,q", "close", "Back")]

    def __init__(self, path: str | None, info: Text, mode: str) -> None:
        super().__init__()
        self.path, self.info, self.mode = path, info, mode

    def compose(self) -> ComposeResult:
        cls = image_widget_class(self.mode)
        image = None
        if cls is not None and self.path:
            try:
                from PIL import Image

                with Image.open(self.path) as im:
                    image = im.convert("RGB")
            except OSError:
                image = None
        if image is not None:
            yield cls(image, id="zoom-image")
        else:
            why = "not drawn yet" if not self.path else (
                "image previews are off (--images)" if cls is None else "could not be read")
            yield Static(f"{self.path or ''}\n{why}", id="zoom-image", classes="placeholder")
        info = self.info.copy()
        info.append("   esc back", style="dim")
        yield Static(info, id="zoom-info")

    def action_close(self) -> None:
        self.dismiss(None)
