"""Evaluate: the training runs that left LoRA files, the files of the selected run (Space turns
one off or on), its grids, and the chosen grid cell by cell.

g queues a grid of the files that are on (a render job: it waits for its GPU like training and
shows on the Train stage), p probes a trigger word with the base model, arrows move between
cells, [ and ] (or PageUp/PageDown) between the blocks of prompt and seed, Enter zooms a cell,
k keeps the current cell's LoRA file in the keep folder (f sets it), never replacing a file.

Everything that reads files or the registry runs in worker threads; a grid still rendering is
re-read when its manifest's mtime changes (POLL_S).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ...core.base.errors import LorabakeError
from ...core.eval.keep import keep_lora
from ...core.eval.layout import GRIDS_DIR, REQUEST_FILE, grid_folder, new_grid_path
from ...core.eval.manifest import GridView, read_grid
from ...core.eval.request import LoraChoice
from ...core.eval.run_loras import RunInfo, run_info, run_loras
from ...core.run.folder import CONFIG_SNAPSHOT, LORA_SUFFIX
from ..palette import theme_style
from ..widgets.grid_browser import GridBrowser
from ..widgets.virtual_list import VirtualList
from .eval_dialogs import GridDefaults, GridDialog, KeepFolderDialog, ProbeDialog, ZoomScreen
from .stage import StageScreen

POLL_S = 1.0  # a rendering grid's manifest, the run's grids folder
RUNS_S = 10.0  # the run list (a training run saving its first epoch shows up)
EMPTY_HELP = """\
[b]No training runs with LoRA files yet.[/b]

Train one on the Train stage (5); each saved epoch shows up here. Then:

[b]g[/b]  queue a grid: the run's epochs × weights, per prompt and seed, drawn by the base \
model with each file (a render job, queued on its GPU like training)
[b]arrows[/b]  move between the cells of a grid, [b]enter[/b] zooms one
[b]k[/b]  keep the current cell's epoch file: a copy in your keep folder ([b]f[/b] sets it), \
never replacing a file there
[b]p[/b]  probe a trigger word: does the base model already mean something by it?"""


@dataclass(frozen=True, slots=True)
class RunItem:
    path: Path
    name: str
    job_id: str | None
    status: str
    when: float
    files: int


@dataclass(frozen=True, slots=True)
class GridItem:
    out: Path  # the grid PNG the request named
    when: float
    done: int | None  # cells drawn (None: nothing rendered yet)
    total: int | None
    complete: bool

    @property
    def manifest(self) -> Path:
        return self.out.with_suffix(".json")


def _lora_count(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if p.name.endswith(LORA_SUFFIX))
    except OSError:
        return 0


def find_runs(output_dir: Path | None) -> list[RunItem]:
    """Training runs that hold LoRA files, newest first: the registry's lorabake jobs, then
    run folders under the config's output dir that no job names (older or moved runs)."""
    from ...jobs.paths import db_path
    from ...jobs.store import Registry

    found: dict[Path, RunItem] = {}
    if db_path().exists():  # no registry: this user never queued a job; do not make one
        try:
            with Registry(reconcile=False) as reg:
                jobs = reg.jobs()
        except (LorabakeError, sqlite3.Error, OSError):
            jobs = []
        for job in jobs:
            if job.kind != "lorabake" or not job.run_dir:
                continue
            path = Path(job.run_dir)
            if path in found or not (n := _lora_count(path)):
                continue
            found[path] = RunItem(path, job.name, job.id, job.status,
                                  job.started or job.created, n)
    if output_dir is not None:
        try:
            children = [p for p in Path(output_dir).iterdir() if p.is_dir()]
        except OSError:
            children = []
        for path in children:
            if path in found or not (path / CONFIG_SNAPSHOT).is_file():
                continue
            if n := _lora_count(path):
                found[path] = RunItem(path, path.name, None, "", path.stat().st_mtime, n)
    return sorted(found.values(), key=lambda r: -r.when)


def run_grids(run_dir: Path) -> list[GridItem]:
    """The grids queued from the Evaluate stage for a run, newest first: every manifest in
    RUN_DIR/grids, and every render folder there whose job has not written one yet."""
    folder = run_dir / GRIDS_DIR
    outs: set[Path] = set()
    try:
        for p in folder.iterdir():
            if p.suffix == ".json" or p.is_dir() and (p / REQUEST_FILE).is_file():
                outs.add(p.with_suffix(".png"))
    except OSError:
        return []
    items = []
    for out in outs:
        manifest = out.with_suffix(".json")
        done = total = None
        complete = False
        try:
            view = read_grid(manifest) if manifest.is_file() else None
        except LorabakeError:
            view = None
        if view is not None:
            done = len(view.data["cells"])
            total = len(view.rows) * len(view.weights) * len(view.blocks)
            complete = view.complete
        try:
            when = (grid_folder(out) / REQUEST_FILE).stat().st_mtime
        except OSError:
            when = manifest.stat().st_mtime if manifest.exists() else 0.0
        items.append(GridItem(out, when, done, total, complete))
    return sorted(items, key=lambda g: (-g.when, g.out.name))


class EvaluateScreen(StageScreen):
    STAGE = "evaluate"
    TITLE_TEXT = "Evaluate"
    CSS_PATH = "evaluate.tcss"
    BINDINGS = [
        Binding("g", "grid", "Queue grid", id="evaluate.grid"),
        Binding("k", "keep", "Keep epoch", id="evaluate.keep"),
        Binding("p", "probe", "Probe trigger", id="evaluate.probe"),
        Binding("space", "toggle", "Toggle file", id="evaluate.toggle"),
        Binding("f", "keep_folder", "Keep folder", id="evaluate.folder", show=False),
        Binding("right_square_bracket,pagedown", "block(1)", "Next block",
                id="evaluate.next-block", show=False),
        Binding("left_square_bracket,pageup", "block(-1)", "Previous block",
                id="evaluate.prev-block", show=False),
        Binding("a", "all_files", "All files on/off", id="evaluate.all", show=False),
        Binding("f5", "refresh", "Refresh", id="evaluate.refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunItem] = []
        self.run: RunItem | None = None
        self.info: RunInfo | None = None
        self.info_error = ""
        self.loras: list[LoraChoice] = []
        self.off: set[str] = set()  # files turned off (new epochs come in on)
        self.grids: list[GridItem] = []
        self.grid: GridItem | None = None
        self.view: GridView | None = None
        self._stamp: tuple | None = None  # the shown manifest's (mtime_ns, size)
        self._grids_stamp: int | None = None
        self._want_grid: Path | None = None  # a just-queued grid: select it once listed
        self.prompts: list[str] = []  # from the captions: the trigger, then top tags
        self.trigger = ""
        self.subject = ""
        self._reading = False
        self._defaults_generation = -1

    @property
    def project(self):
        return self.app.project

    # ---- layout ---------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="ev-main"):
            with Vertical(id="ev-left"):
                yield VirtualList(self._run_row, id="ev-runs")
                yield VirtualList(self._file_row, id="ev-files")
                yield VirtualList(self._grid_row, id="ev-grids")
            with Vertical(id="ev-right"):
                yield Static(EMPTY_HELP, id="ev-empty")
                yield Static(id="ev-info")
                yield GridBrowser(self.app.images, id="ev-grid")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#ev-runs").border_title = "Runs"
        self.query_one("#ev-files").border_title = "Files"
        self.query_one("#ev-grids").border_title = "Grids"
        self.query_one("#ev-grid").border_title = "Grid"
        self._show_run_panels(False)
        self.query_one("#ev-runs", VirtualList).focus()
        self.set_interval(POLL_S, self._poll)
        self.set_interval(RUNS_S, lambda: self.refresh_runs() if self.is_current else None)
        self.refresh_runs()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.refresh_runs()
        if self._defaults_generation != self.project.generation:
            self._defaults_generation = self.project.generation  # captions changed: reread
            self._load_defaults()

    def _show_run_panels(self, has_runs: bool) -> None:
        self.query_one("#ev-empty").display = not has_runs
        for wid in ("#ev-info", "#ev-grid"):
            self.query_one(wid).display = has_runs

    # ---- the runs -------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        self._load_runs()

    @work(thread=True, exclusive=True, group="eval-runs", exit_on_error=False,
          description="find training runs")
    def _load_runs(self) -> None:
        try:
            output_dir = self.project.settings()[0].saving.output_dir
        except (LorabakeError, OSError):
            output_dir = None  # a broken config: the Config stage says why; jobs still count
        runs = find_runs(output_dir)
        self.app.call_from_thread(self._runs_loaded, runs)

    def _runs_loaded(self, runs: list[RunItem]) -> None:
        if [(r.path, r.files, r.status) for r in runs] == \
                [(r.path, r.files, r.status) for r in self.runs]:
            return
        self.runs = runs
        lst = self.query_one("#ev-runs", VirtualList)
        want = self.run.path if self.run else None
        lst.set_items(runs)
        lst.border_title = f"Runs: {len(runs)}"
        index = next((i for i, r in enumerate(runs) if r.path == want), 0)
        lst.cursor = index
        self._show_run_panels(bool(runs))
        self._select_run(lst.current)

    def _run_row(self, run: RunItem, width: int) -> Text:
        t = Text(f"{run.job_id or '':<7}", style=self._style("muted"))  # no job: a folder
        right = f" {run.files} file{'s' if run.files != 1 else ''}"
        room = max(width - t.cell_len - len(right), 4)
        t.append(run.name[:room].ljust(room), style="bold")
        t.append(right, style=self._style("muted"))
        return t

    # the list's current item, not the event's: set_items announces the cursor it had before
    # the list was reordered (a new run on top), and the cursor is put back after it
    @on(VirtualList.Highlighted, "#ev-runs")
    def _run_highlighted(self) -> None:
        self._select_run(self.query_one("#ev-runs", VirtualList).current)

    @on(VirtualList.Selected, "#ev-runs")
    def _run_chosen(self) -> None:
        self.query_one("#ev-files", VirtualList).focus()

    def _select_run(self, run: RunItem | None) -> None:
        changed = run is None or self.run is None or run.path != self.run.path
        self.run = run
        if run is None:
            self._run_loaded(None, None, "", [], [])
            return
        if changed:
            self.off = set()
            self.grid, self.view, self._stamp, self._grids_stamp = None, None, None, None
        self._load_run(run)

    @work(thread=True, exclusive=True, group="eval-run", exit_on_error=False,
          description="read a run's files")
    def _load_run(self, run: RunItem) -> None:
        info, error = None, ""
        try:
            info = run_info(run.path)
        except LorabakeError as exc:
            error = str(exc)
        try:
            loras = run_loras(run.path, info.output_name if info else None)
        except LorabakeError as exc:
            loras, error = [], error or str(exc)
        grids = run_grids(run.path)
        self.app.call_from_thread(self._run_loaded, run, info, error, loras, grids)

    def _run_loaded(self, run: RunItem | None, info: RunInfo | None, error: str,
                    loras: list[LoraChoice], grids: list[GridItem]) -> None:
        if run is not self.run:
            return  # another run was chosen meanwhile
        self.info, self.info_error, self.loras = info, error, loras
        files = self.query_one("#ev-files", VirtualList)
        files.set_items(loras)
        self._files_title()
        self._grids_loaded(grids)
        self._draw_info()

    # ---- the files --------------------------------------------------------------------------
    def _files_title(self) -> None:
        on_ = len(self.chosen())
        self.query_one("#ev-files").border_title = f"Files: {on_} of {len(self.loras)} on"

    def chosen(self) -> list[LoraChoice]:
        return [c for c in self.loras if c.path not in self.off]

    def _file_row(self, lora: LoraChoice, width: int) -> Text:
        on_ = lora.path not in self.off
        t = Text("[✓] " if on_ else "[ ] ", style=self._style("success" if on_ else "muted",
                                                              bold=on_))
        t.append(f"{lora.label:<10}", style="bold")
        t.append(" " + Path(lora.path).name, style=self._style("muted"))
        return t

    def action_toggle(self) -> None:
        files = self.query_one("#ev-files", VirtualList)
        lora = files.current
        if self.focused is not files or lora is None:
            self.notify("Space turns the highlighted file on or off in the Files list "
                        "(tab to it)", severity="warning")
            return
        self.off ^= {lora.path}
        files.set_items(files.items)
        self._files_title()

    def action_all_files(self) -> None:
        self.off = set() if self.off else {c.path for c in self.loras}
        files = self.query_one("#ev-files", VirtualList)
        files.set_items(files.items)
        self._files_title()

    # ---- the grids --------------------------------------------------------------------------
    def _grids_loaded(self, grids: list[GridItem]) -> None:
        self.grids = grids
        lst = self.query_one("#ev-grids", VirtualList)
        want = self._want_grid or (self.grid.out if self.grid else None)
        lst.set_items(grids)
        lst.border_title = f"Grids: {len(grids)}"
        index = next((i for i, g in enumerate(grids) if g.out == want), None)
        if index is not None:
            lst.cursor = index
            if self._want_grid is not None and index is not None:
                self._want_grid = None
        self._select_grid(lst.current)

    def _grid_row(self, grid: GridItem, width: int) -> Text:
        if grid.complete:
            right, style = f"✓ {grid.done}", self._style("success")
        elif grid.done is None:
            right, style = "queued", self._style("accent")
        else:
            right, style = f"{grid.done}/{grid.total}", self._style("warning", bold=True)
        name = grid.out.stem.removeprefix("grid-")
        room = max(width - len(right) - 1, 4)
        t = Text(name[:room].ljust(room))
        t.append(" " + right, style=style)
        return t

    @on(VirtualList.Highlighted, "#ev-grids")
    def _grid_highlighted(self) -> None:
        self._select_grid(self.query_one("#ev-grids", VirtualList).current)

    @on(VirtualList.Selected, "#ev-grids")
    def _grid_chosen(self) -> None:
        self.query_one("#ev-grid", GridBrowser).focus()

    def _select_grid(self, grid: GridItem | None) -> None:
        if grid is not None and self.grid is not None and grid.out == self.grid.out:
            self.grid = grid  # its progress, fresher
            return
        self.grid, self.view, self._stamp = grid, None, None
        self.query_one("#ev-grid", GridBrowser).set_view(None)
        self._draw_info()
        self._poll()

    def _poll(self) -> None:
        """Re-read what changed on disk: the run's grids folder, the shown manifest."""
        if not self.is_current or self.run is None or self._reading:
            return
        self._reading = True
        self._read_changes(self.run, self.grid, self._grids_stamp, self._stamp)

    @work(thread=True, group="eval-poll", exit_on_error=False,
          description="read grid manifests")
    def _read_changes(self, run: RunItem, grid: GridItem | None, grids_stamp, stamp) -> None:
        grids = view = None
        new_grids_stamp, new_stamp = grids_stamp, stamp
        error = ""
        try:
            try:
                new_grids_stamp = (run.path / GRIDS_DIR).stat().st_mtime_ns
            except OSError:
                new_grids_stamp = None
            if new_grids_stamp != grids_stamp or (grid is not None and not grid.complete):
                grids = run_grids(run.path)  # new grids, and the progress of the rendering
            if grid is not None:
                try:
                    st = grid.manifest.stat()
                    new_stamp = (st.st_mtime_ns, st.st_size)
                except OSError:
                    new_stamp = None
                if new_stamp is not None and new_stamp != stamp:
                    try:
                        view = read_grid(grid.manifest)
                    except LorabakeError as exc:
                        error = str(exc)
        finally:
            self.app.call_from_thread(self._changes_read, run, grid, grids, new_grids_stamp,
                                      view, new_stamp, error)

    def _changes_read(self, run, grid, grids, grids_stamp, view, stamp, error) -> None:
        self._reading = False
        if run is not self.run:
            return
        self._grids_stamp = grids_stamp
        if grid is self.grid or (grid and self.grid and grid.out == self.grid.out):
            if view is not None:
                self._stamp = stamp
                self.view = view
                self.query_one("#ev-grid", GridBrowser).set_view(view)
            elif error:
                self._stamp = stamp
                self.notify(error, title="Grid", severity="error")
        if grids is not None:
            self._grids_loaded(grids)
        self._draw_info()

    # ---- the browser --------------------------------------------------------------------------
    @on(GridBrowser.Moved)
    def _moved(self) -> None:
        self._draw_info()

    @on(GridBrowser.Zoom)
    def _zoom(self) -> None:
        browser = self.query_one("#ev-grid", GridBrowser)
        cell = browser.current_cell()
        self.app.push_screen(ZoomScreen(cell["path"] if cell else None, browser.describe(),
                                        self.app.images))

    def action_block(self, delta: int) -> None:
        browser = self.query_one("#ev-grid", GridBrowser)
        if browser.view is not None:
            browser.set_block(browser.block + delta)

    def _draw_info(self) -> None:
        info = self.query_one("#ev-info", Static)
        browser = self.query_one("#ev-grid", GridBrowser)
        t = Text()
        if self.run is None:
            info.update(t)
            return
        grid = self.grid
        if self.info_error:
            t.append(self.info_error, style=self._style("error"))
        elif grid is None:
            t.append("no grid yet: g queues one of the files that are on",
                     style=self._style("muted"))
        elif self.view is None:
            t.append(f"{grid.out.name}: " + ("queued, nothing drawn yet" if grid.done is None
                                              else "reading …"), style=self._style("accent"))
        else:
            if self.view.complete:
                t.append(f"{grid.out.name} complete", style=self._style("success"))
            else:
                t.append(f"{grid.out.name} rendering {len(self.view.data['cells'])}/"
                         f"{grid.total or '?'}", style=self._style("warning", bold=True))
        if self.info is not None:
            t.append(f" · base {self.info.base}", style=self._style("muted"))
        if self.view is not None:
            t.append("\n")
            t.append_text(browser.describe())
        info.update(t)
        browser.border_title = "Grid" if self.view is None else \
            f"Grid: block {browser.block + 1}/{len(self.view.blocks)} ([ ] or PgUp/PgDn)"

    def recolour(self) -> None:
        self._draw_info()

    def _style(self, role: str | None = None, *, bold: bool = False):
        return theme_style(self.app, role, bold=bold)

    # ---- queueing ---------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="eval-defaults", exit_on_error=False,
          description="read the captions for the grid's prompts")
    def _load_defaults(self) -> None:
        from ...core.captions.store import CaptionStore
        from ...core.eval.prompts import dataset_trigger, default_prompts, subject_tag

        try:
            ds = self.project.fresh_dataset() or self.project.scan()
            records = CaptionStore.load(ds).records
        except (LorabakeError, OSError):
            return  # no captions: the run's sampling prompts, else typed in
        prompts = default_prompts(records)
        trigger, subject = dataset_trigger(records) or "", subject_tag(records)
        self.app.call_from_thread(self._defaults_loaded, prompts, trigger, subject)

    def _defaults_loaded(self, prompts: list[str], trigger: str, subject: str) -> None:
        self.prompts, self.trigger, self.subject = prompts, trigger, subject

    def action_grid(self) -> None:
        if self.run is None:
            self.notify("no run with LoRA files yet: train one on the Train stage (5)",
                        title="Not queued", severity="warning")
            return
        if self.info is None:
            self.notify(self.info_error or "the run is still being read", title="Not queued",
                        severity="error")
            return
        chosen = self.chosen()
        if not chosen:
            self.notify("every file is off: Space in the Files list turns one on (a: all)",
                        title="Not queued", severity="warning")
            return
        prompts = self.prompts or list(self.info.prompts)
        defaults = GridDefaults(base=self.info.base, run_dir=str(self.run.path),
                                out=str(new_grid_path(self.run.path)), prompts=prompts[:3],
                                clip_skip=self.info.clip_skip)
        self.app.push_screen(GridDialog(defaults, chosen), self._queue)

    def _queue(self, req) -> None:
        if req is None:
            return
        self._submit(req, "grid")

    @work(thread=True, group="eval-submit", exit_on_error=False, description="queue a render")
    def _submit(self, req, what: str) -> None:
        from ...jobs import control

        name = None
        if what == "grid":
            # named now, not when the dialog opened: two grids queued in one second differ
            req.out = str(new_grid_path(req.run_dir))
            name = f"grid-{self.info.output_name}" if self.info is not None else None
        try:
            job = control.submit_render(req, start=False, name=name)
        except (LorabakeError, OSError, sqlite3.Error) as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not queued",
                                      severity="error", timeout=12)
            return
        self.app.call_from_thread(self._queued, job, req, what)

    def _queued(self, job, req, what: str) -> None:
        where = "it starts when its GPU is free; the Train stage (5) shows and stops it"
        self.notify(f"queued {job.id} ({what}): {where}", title="Queued")
        if what == "grid":
            self._want_grid = Path(req.out)
            self._grids_stamp = None  # list the new grid at the next poll
            self._poll()

    def action_probe(self) -> None:
        try:
            base = self.project.settings()[0].general.base_model
        except (LorabakeError, OSError) as exc:
            self.notify(str(exc), title="Not queued", severity="error")
            return
        if not base:
            self.notify("no base model in the config: set general.base_model on the Config "
                        "stage (4)", title="Not queued", severity="error")
            return
        probes = self.project.files.state / "probes"

        def out_dir(word: str) -> Path:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in word)[:40]
            return probes / f"{safe or 'word'}-{time.strftime('%Y%m%d-%H%M%S')}"

        self.app.push_screen(ProbeDialog(str(base), self.trigger, self.subject, out_dir),
                             lambda req: self._submit(req, "probe") if req else None)

    # ---- keeping ----------------------------------------------------------------------------
    def action_keep_folder(self) -> None:
        def chosen(folder: str | None) -> None:
            if not folder:
                return
            self.app.settings.keep_folder = folder
            if getattr(self.app, "_save_settings", True):
                try:
                    self.app.settings.save()
                except OSError as exc:
                    self.notify(f"could not save settings: {exc.strerror}",
                                severity="warning")
            self.notify(f"k keeps epochs in {folder}", title="Keep folder")

        self.app.push_screen(KeepFolderDialog(self.app.settings.keep_folder), chosen)

    def _keep_target(self) -> tuple[str, str] | None:
        """(file, label): the highlighted file when the Files list has the focus, else the
        current grid cell's."""
        files = self.query_one("#ev-files", VirtualList)
        if self.focused is files and files.current is not None:
            return files.current.path, files.current.label
        browser = self.query_one("#ev-grid", GridBrowser)
        if browser.view is None:
            return None
        row = browser.view.rows[browser.cursor[0]]
        return str(row["path"]), str(row.get("label", ""))

    def action_keep(self) -> None:
        folder = self.app.settings.keep_folder
        if not folder:
            self.notify("no keep folder set: press f and give the folder your UI loads LoRAs "
                        "from (e.g. stable-diffusion-webui/models/Lora)", title="Not kept",
                        severity="warning", timeout=10)
            return
        target = self._keep_target()
        if target is None:
            self.notify("no grid cell or file chosen: open a grid, or tab to the Files list",
                        title="Not kept", severity="warning")
            return
        self._keep(target[0], folder)

    @work(thread=True, group="eval-keep", exit_on_error=False, description="keep an epoch")
    def _keep(self, src: str, folder: str) -> None:
        try:
            path, copied = keep_lora(src, folder)
        except LorabakeError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not kept",
                                      severity="error", timeout=10)
            return
        note = f"kept as {path}" if copied else f"already there: {path}"
        self.app.call_from_thread(self.notify, note, title="Keep", markup=False)

    def action_refresh(self) -> None:
        self._grids_stamp = self._stamp = None
        self.runs = []
        self.refresh_runs()

    def screen_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Evaluate: set the keep folder", "where k copies LoRA files (f)",
                            self.action_keep_folder)

