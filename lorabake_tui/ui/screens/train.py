"""Train: the jobs (running, then queued in queue order, then finished) and, for the selected
one, a live dashboard: progress, speed, ETA, loss and learning-rate charts, GPU load, saved
checkpoints, the newest samples, warnings and the end of its log.

Jobs run detached (jobs layer): quitting the workbench or losing the SSH connection never
stops them, and re-opening shows a run's whole history. Everything that reads files or the
registry runs in worker threads; the history of the selected job is read once from its
events.jsonl and then only from the byte offset it reached, every POLL_S seconds.
"""

from __future__ import annotations

import sqlite3
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Log, Static

from ...core.base.errors import LorabakeError
from ...core.run.event_reader import last_event
from ...core.run.events import STATE_SAVE, EventType, is_lora_save, render_as_step
from ...jobs import control
from ...jobs.history import JobHistory
from ...jobs.kohya_log import latest_kohya_step
from ...jobs.notify import checkpoint_label, duration, human_size
from ...jobs.store import RESUMABLE, Job, Registry
from ..palette import theme_style
from ..widgets.gpu import GpuMeter
from ..widgets.plot import LinePlot, Series
from ..widgets.sample_strip import SampleStrip
from ..widgets.virtual_list import VirtualList
from .job_dialogs import (
    FORCE_TIMEOUT_S,
    ConfirmDialog,
    LogScreen,
    StopDialog,
    highlighted_log,
)
from .stage import StageScreen

POLL_S = 0.5  # the selected job's new events
JOBS_S = 2.0  # the job list, from the registry
LOG_LINES = 200
ALERTS = 4
CLIPBOARD_S = 20.0  # the copied path stays up long enough to select it by hand
# status -> (palette role, bold)
STATUS_ROLE = {"queued": ("accent", False), "running": ("success", True),
               "stopping": ("warning", True), "done": ("success", False),
               "stopped": ("warning", False), "failed": ("error", True),
               "crashed": ("error", True)}
STATUS_MARK = {"queued": "…", "running": "▶", "stopping": "■", "done": "✓", "stopped": "‖",
               "failed": "✗", "crashed": "✗"}
EMPTY_HELP = """\
[b]No training jobs yet.[/b]

[b]a[/b]  queue this project's config (.lorabake/training.toml, made in Config: 4, ctrl+s): \
it starts as soon as its GPU is free, right away when nothing else runs there.
[b]A[/b]  start it now, even beside another job on the same GPU.

Jobs run detached: quit the workbench or lose the SSH connection and they go on. Open it \
again (or `lorabake jobs attach ID`) and the dashboard shows the whole run.

From a shell: `lorabake jobs start CONFIG`, `lorabake jobs list`."""


@dataclass(frozen=True, slots=True)
class JobRow:
    job: Job
    step: dict | None  # its latest step event
    queue_pos: int | None  # 1-based, queued jobs only


@dataclass(frozen=True, slots=True)
class HistoryView:
    """A copy of a JobHistory for the UI thread: the worker goes on appending to its own."""

    job_id: str
    events: int
    steps: array
    loss: array
    avg_loss: array
    lrs: tuple[array, ...]
    latest: dict[str, dict]
    loras: tuple[dict, ...]  # LoRA save events, oldest first
    state_save: dict | None
    sample: dict | None  # the newest sample event
    alerts: tuple[dict, ...]  # warnings and errors, newest last
    log: tuple[str, ...]
    steps_since_start: int

    @property
    def last_step(self) -> dict | None:
        step = self.latest.get(EventType.STEP)
        if step is None and (image := self.latest.get(EventType.RENDER)) is not None:
            return render_as_step(image)  # a render job: images drawn stand for steps
        return step


def snapshot(h: JobHistory, job_id: str, prev: HistoryView | None) -> HistoryView:
    if prev is not None and prev.events == h.event_count:
        arrays = (prev.steps, prev.loss, prev.avg_loss, prev.lrs)  # nothing new: share
    else:
        arrays = (h.steps[:], h.loss[:], h.avg_loss[:], tuple(a[:] for a in h.lrs))
    saves = list(h.saves)
    loras = tuple(s for s in saves if is_lora_save(s))
    state = next((s for s in reversed(saves) if s.get("kind") == STATE_SAVE), None)
    alerts = sorted([*h.warnings, *h.errors], key=lambda e: e.get("t") or 0)[-ALERTS:]
    return HistoryView(job_id, h.event_count, *arrays, latest=dict(h.latest), loras=loras,
                       state_save=state, sample=h.samples[-1] if h.samples else None,
                       alerts=tuple(alerts), log=tuple(h.log),
                       steps_since_start=h.steps_since_start)


def appended(old: tuple[str, ...], new: tuple[str, ...]) -> list[str] | None:
    """The lines `new` adds to `old` when it is the same bounded window slid on; None when
    it is not (another log, or more new lines than the window holds)."""
    if not old:
        return list(new)
    for dropped in range(len(old)):
        tail = old[dropped:]
        if new[:len(tail)] == tail:
            return list(new[len(tail):])
    return None


def sort_rows(rows: list[JobRow]) -> list[JobRow]:
    """Running first, then the queue in its order, then finished ones, newest first."""
    active = [r for r in rows if r.job.active]
    queued = sorted((r for r in rows if r.job.status == "queued"),
                    key=lambda r: r.queue_pos or 0)
    done = sorted((r for r in rows if r.job.finished),
                  key=lambda r: -(r.job.ended or r.job.created))
    return active + queued + done


def eta_left(step: dict | None, job: Job) -> float | None:
    """The trainer's ETA minus the time since it said so (a stalled run's ETA must not
    stand still)."""
    if not step or not job.active or not isinstance(step.get("eta_s"), (int, float)):
        return None
    age = time.time() - step["t"] if isinstance(step.get("t"), (int, float)) else 0.0
    return max(0.0, step["eta_s"] - max(0.0, age))


def fraction(step: dict | None) -> float | None:
    if not step:
        return None
    n, total = step.get("step"), step.get("total_steps")
    if isinstance(n, int) and isinstance(total, int) and total > 0:
        return min(1.0, n / total)
    return None


def _num(v: Any, spec: str) -> str | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format(v, spec)
    return None


class TrainScreen(StageScreen):
    STAGE = "train"
    TITLE_TEXT = "Train"
    CSS_PATH = "train.tcss"
    BINDINGS = [
        Binding("a", "queue", "Queue", id="train.queue"),
        Binding("A", "start_now", "Start now", id="train.start"),
        Binding("x", "stop", "Stop", id="train.stop"),
        Binding("r", "resume", "Resume", id="train.resume"),
        Binding("c", "copy_path", "Copy path", id="train.copy"),
        Binding("l", "open_log", "Log", id="train.log"),
        # in ? help, not the footer: it keeps to 80 columns
        Binding("delete,d", "remove", "Remove", id="train.remove", show=False),
        Binding("K,shift+up", "move(-1)", "Move up", id="train.up", show=False),
        Binding("J,shift+down", "move(1)", "Move down", id="train.down", show=False),
        Binding("f5", "refresh", "Refresh", id="train.refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.reg: Registry | None = None
        self.rows: list[JobRow] = []
        self.job: Job | None = None  # the selected job, as of the last refresh
        self.view: HistoryView | None = None
        self._history: JobHistory | None = None
        self._gen = 0  # bumped when another job is selected: late answers are dropped
        self._in_flight: set[int] = set()
        self._jobs_busy = False
        self._head_rows = 0
        self._finished_steps: dict[tuple[str, float | None], dict | None] = {}
        self._want: str | None = None  # a job id to select once the list has it

    @property
    def project(self):
        return self.app.project

    # ---- layout -------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="tr-main"):
            with Vertical(id="tr-left"):
                yield VirtualList(self._job_row, id="tr-jobs")
            with Vertical(id="tr-right"):
                yield Static(EMPTY_HELP, id="tr-empty")
                with Vertical(id="tr-dash"):
                    yield Static(id="tr-head")
                    yield GpuMeter(id="tr-gpu")
                    with Horizontal(id="tr-charts"):
                        yield LinePlot(id="tr-loss", empty="no steps yet")
                        yield LinePlot(id="tr-lr", empty="no steps yet")
                    yield Static(id="tr-alerts")
                    yield SampleStrip(self.app.images, id="tr-samples")
                    with Horizontal(id="tr-bottom"):
                        yield VirtualList(self._save_row, id="tr-saves")
                        yield highlighted_log(max_lines=LOG_LINES, id="tr-log")

    def on_mount(self) -> None:
        self._want = getattr(self.app, "attach_job", None)  # `lorabake jobs attach ID`
        self.query_one("#tr-jobs").border_title = "Jobs"
        self.query_one("#tr-loss").border_title = "Loss"
        self.query_one("#tr-lr").border_title = "Learning rate"
        self.query_one("#tr-saves").border_title = "Checkpoints"
        self.query_one("#tr-log").border_title = "Log (l: all of it)"
        for wid in ("#tr-dash", "#tr-alerts", "#tr-samples"):
            self.query_one(wid).display = False
        self.query_one("#tr-jobs", VirtualList).focus()
        self.set_interval(JOBS_S, self.refresh_jobs)
        self.set_interval(POLL_S, self._tick)
        self.refresh_jobs()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.refresh_jobs()

    def on_unmount(self) -> None:
        if self.reg is not None:
            try:
                self.reg.close()
            except sqlite3.Error:
                pass

    def _show(self, widget, visible: bool) -> None:
        """Show or hide, touching the style only on a change (each change is a layout pass
        of the whole screen)."""
        w = self.query_one(widget) if isinstance(widget, str) else widget
        if w.display != visible:
            w.display = visible

    # ---- the job list -------------------------------------------------------------------
    def refresh_jobs(self) -> None:
        if not self._jobs_busy:
            self._jobs_busy = True
            self._load_jobs()

    @work(thread=True, group="train-jobs", exit_on_error=False,
          description="read the job registry")
    def _load_jobs(self) -> None:
        try:
            if self.reg is None:
                # reconciles, and restarts the supervisor of a queue left without one
                self.reg = control.open_registry(supervise=True)
            else:
                self.reg.reconcile()
            jobs = self.reg.jobs()
            order = {j.id: n for n, j in enumerate(self.reg.queue(), start=1)}
            rows = [JobRow(j, self._latest_step(j), order.get(j.id)) for j in jobs]
        except (LorabakeError, sqlite3.Error, OSError) as exc:
            self.app.call_from_thread(self._jobs_failed, str(exc))
            return
        self.app.call_from_thread(self._jobs_loaded, sort_rows(rows))

    def _latest_step(self, job: Job) -> dict | None:
        """(worker thread) The job's last step event, read from the end of its files."""
        if job.status == "queued":
            return None
        key = (job.id, job.ended)
        if job.finished and key in self._finished_steps:
            return self._finished_steps[key]  # a finished job's files no longer change
        if job.kind == "kohya":
            step = latest_kohya_step(job.log_path) if job.log_path else None
        elif job.kind == "render":
            image = last_event(job.events_path, EventType.RENDER)
            step = render_as_step(image) if image else None
        elif job.finished and job.ended:
            # a resume writes on in the same events.jsonl: this attempt's last step
            step = last_event(job.events_path, EventType.STEP,
                              where=lambda ev: ev.get("t", 0) <= job.ended)
        else:
            step = last_event(job.events_path, EventType.STEP)
        if job.finished:
            self._finished_steps[key] = step
        return step

    def _jobs_failed(self, message: str) -> None:
        self._jobs_busy = False
        self.notify(message, title="Job registry", severity="error", timeout=10)

    def _jobs_loaded(self, rows: list[JobRow]) -> None:
        self._jobs_busy = False
        self.app.jobs_seen([r.job for r in rows])  # the app rings for jobs that ended
        self.rows = rows
        lst = self.query_one("#tr-jobs", VirtualList)
        want = self._want or (self.job.id if self.job else None)
        lst.set_items(rows)
        lst.border_title = self._jobs_title(rows)
        index = next((i for i, r in enumerate(rows) if r.job.id == want), None)
        if index is None and want is None and rows:
            index = 0  # nothing chosen yet: the first (running) job
        if index is not None:
            lst.cursor = index
            if not lst.scroll_y <= index < lst.scroll_y + lst.size.height:
                lst.scroll_to(y=max(0, index - lst.size.height // 2), animate=False)
            self._want = None
        self._select(lst.current.job if lst.current is not None else None)

    def _jobs_title(self, rows: list[JobRow]) -> str:
        running = sum(1 for r in rows if r.job.active)
        queued = sum(1 for r in rows if r.job.status == "queued")
        return f"Jobs: {running} running, {queued} queued, {len(rows)} in all"

    def _style(self, role: str | None = None, *, bold: bool = False) -> Style:
        return theme_style(self.app, role, bold=bold)

    def _status_style(self, status: str) -> Style:
        role, bold = STATUS_ROLE.get(status, (None, False))
        return self._style(role, bold=bold)

    def _job_row(self, row: JobRow, width: int) -> Text:
        job = row.job
        style = self._status_style(job.status)
        text = Text(f"{STATUS_MARK.get(job.status, '?')} ", style=style)
        text.append(f"{job.id} ", style="bold")
        text.append(f"{job.status:<8} ", style=style)
        step = row.step
        if self.view is not None and self.view.job_id == job.id and self.view.last_step:
            step = self.view.last_step  # fresher than the list's
        if job.status == "queued":
            right = f"#{row.queue_pos or '?'}" + (f" GPU {job.gpus}" if job.gpus else "")
        else:
            frac = fraction(step)
            right = f"{frac:4.0%}" if frac is not None else ""
            if (eta := eta_left(step, job)) is not None:
                right += f" {duration(eta)}"
        name = job.name + (" (kohya)" if job.kind == "kohya" else "")
        if job.kind == "render" and not job.name.startswith(("grid", "probe")):
            name += " (render)"
        if job.attempt > 1:
            right += f" try {job.attempt}"  # resumed: its attempt ("attempt N" in the head)
        room = max(width - text.cell_len - len(right) - 1, 4)
        text.append(name[:room].ljust(room))
        text.append(" " + right, style="dim")
        return text

    @on(VirtualList.Highlighted, "#tr-jobs")
    def _job_highlighted(self) -> None:
        current = self.query_one("#tr-jobs", VirtualList).current
        self._select(current.job if current is not None else None)

    # ---- the selected job ---------------------------------------------------------------
    def _select(self, job: Job | None) -> None:
        old = self.job
        self.job = job
        if (old is not None and old.kind == "render") != (job is not None and job.kind == "render"):
            self.refresh_bindings()  # resume: not offered for a render
        self._show("#tr-empty", job is None)
        self._show("#tr-dash", job is not None)
        if job is None:
            self._history = None
            self.view = None
            return
        if old is None or old.id != job.id or self._history is None:
            self._gen += 1
            self.view = None
            self._history = JobHistory.for_job(job, log_lines=LOG_LINES)
            self.query_one("#tr-loss", LinePlot).clear()
            self.query_one("#tr-lr", LinePlot).clear()
            self.query_one("#tr-saves", VirtualList).set_items([])
            self.query_one("#tr-log", Log).clear()
            self.query_one("#tr-samples", SampleStrip).clear()
            self._show("#tr-samples", False)
            self._show("#tr-alerts", False)
            self.query_one("#tr-gpu", GpuMeter).show_gpus(job.gpus)
            self._draw_head()
            # paint the header (progress from the list) first: parsing a long history holds
            # the GIL in big json.loads calls, so the screen would wait for it
            self.call_after_refresh(self._poll)
            return
        self._draw_head()

    def _tick(self) -> None:
        if self.job is None or not self.is_current:
            return
        self._poll()
        self._draw_head()  # the ETA and elapsed time move on between events

    def _poll(self) -> None:
        if self._history is None or self._gen in self._in_flight:
            return
        self._in_flight.add(self._gen)
        self._read_history(self._history, self.job.id, self._gen, self.view)

    @work(thread=True, group="train-history", exit_on_error=False,
          description="read the run's events")
    def _read_history(self, history: JobHistory, job_id: str, gen: int,
                      prev: HistoryView | None) -> None:
        view = None
        try:
            history.poll()
            view = snapshot(history, job_id, prev if prev and prev.job_id == job_id else None)
        except OSError:
            pass  # the run dir went away (a removed disk, a deleted run): keep what we have
        finally:
            self.app.call_from_thread(self._history_read, gen, view)

    def _history_read(self, gen: int, view: HistoryView | None) -> None:
        self._in_flight.discard(gen)
        if gen != self._gen or view is None:
            return
        old, self.view = self.view, view
        if old is None or old.events != view.events:
            self._draw_charts(view)
            self._draw_saves(view, old)
            self._draw_alerts(view, old)
            self._draw_samples(view, old)
            jobs = self.query_one("#tr-jobs", VirtualList)
            jobs.set_items(jobs.items)  # the selected row's progress and ETA, from the view
        if old is None or old.log != view.log:
            self._draw_log(view, old)
        if self._status_behind(view):
            self.refresh_jobs()  # the run moved on before the registry list did
        self._draw_head()

    def _status_behind(self, view: HistoryView) -> bool:
        job = self.job
        if job is None or job.finished:
            return False
        if job.status == "queued":
            # a start written after it was queued (a resumed job's history has its earlier
            # attempts' starts: those are older than the end of its last attempt)
            start = view.latest.get(EventType.START)
            since = job.attempts[-1].ended if job.attempts else None
            return start is not None and (start.get("t") or 0) >= (since or job.created)
        end = view.latest.get(EventType.END)
        return end is not None and (end.get("t") or 0) >= (job.started or 0) - 1

    # ---- drawing the dashboard ------------------------------------------------------------
    def _draw_head(self) -> None:
        job, view = self.job, self.view
        head = self.query_one("#tr-head", Static)
        if job is None:
            return
        # a first attempt still queued has no run dir yet: nothing to chart (a queued resume
        # shows the history of its earlier attempts)
        waiting = job.status == "queued" and not job.attempts
        self._show("#tr-charts", not waiting and job.kind != "render")  # no loss to chart
        self._show("#tr-bottom", not waiting)
        muted = self._style("muted")
        t = Text()
        t.append(f"{job.id} ", style="bold")
        t.append(f"{job.name} ", style="bold")
        t.append(f"{STATUS_MARK.get(job.status, '')} {job.status}",
                 style=self._status_style(job.status))
        if job.attempts:
            t.append(f"   attempt {job.attempt}", style="bold")
            earlier = ", ".join(a.status for a in job.attempts[-3:])
            t.append(f" (earlier: {'…, ' if len(job.attempts) > 3 else ''}{earlier})",
                     style=muted)
        t.append(f"   GPU {job.gpus or 'default'}", style=muted)
        if job.resume_of:
            t.append(f"   resumes {job.resume_of}", style=muted)
        t.append(f"   {job.run_dir}\n", style=muted)
        row = next((r for r in self.rows if r.job.id == job.id), None)
        if view is not None:
            step, latest = view.last_step, view.latest
        else:
            # the history is still being read: the list's last step (read from the end of
            # the file) shows the progress meanwhile
            step, latest = (row.step if row else None), {}
        if job.status == "queued":
            pos = row.queue_pos if row else None
            t.append(f"#{pos or '?'} in the queue: starts when GPU {job.gpus or 'default'} "
                     "is free (K and J move it, d removes it)", style=self._style("accent"))
        elif view is None and step is None:
            t.append("reading its history …", style=muted)
        elif job.kind == "render" and step:
            self._render_progress(t, job, step)
        elif job.kind == "render" and job.active:
            t.append("starting: loading the base model …", style=self._style("warning"))
        elif step and job.active and view is not None and not view.steps_since_start:
            t.append(f"starting: resumes after step {step.get('step')}",
                     style=self._style("warning"))
        elif step:
            self._progress(t, job, latest, step)
            if view is None:
                t.append("\nreading its history for the charts …", style=muted)
        elif job.active:
            t.append("starting: loading the model and caching latents …",
                     style=self._style("warning"))
        else:
            t.append("no steps were recorded", style=muted)
        if job.finished and job.last_message:
            lines = job.last_message.splitlines()
            t.append("\n" + lines[0], style=self._status_style(job.status))
            for line in lines[1:3]:
                t.append("\n  " + line, style=muted)
        # a layout pass re-renders the whole screen: only when the header's height changes
        # (its lines never wrap: train.tcss)
        rows = t.plain.count("\n") + 1
        head.update(t, layout=rows != self._head_rows)
        self._head_rows = rows

    def _bar(self, t: Text, job: Job, frac: float) -> None:
        width = max(10, min(60, self.query_one("#tr-head").size.width - 70))
        filled = round(frac * width)
        t.append("█" * filled, style=self._style("error" if job.status == "failed"
                                                  else "success"))
        t.append("░" * (width - filled), style="dim")

    def _render_progress(self, t: Text, job: Job, step: dict) -> None:
        """A grid or a probe: images drawn of all, time per image, ETA, the last one."""
        frac = fraction(step) or 0.0
        self._bar(t, job, frac)
        t.append(f" image {step.get('step')}/{step.get('total_steps') or '?'}", style="bold")
        t.append(f" {frac:.0%}\n")
        image = (self.view.latest.get(EventType.RENDER) or {}) if self.view is not None else {}
        parts: list[tuple[str, str | Style]] = []
        if job.active and (v := _num(image.get("s_per_image"), ".1f")) is not None:
            parts.append((f"{v} s/image", "bold"))
        if (eta := eta_left(step, job)) is not None:
            parts.append((f"ETA {duration(eta)}", self._style("accent", bold=True)))
        if job.started:
            parts.append((f"{'elapsed' if job.active else 'took'} "
                          f"{duration((job.ended or time.time()) - job.started)}",
                          self._style("muted")))
        if isinstance(image.get("label"), str):
            parts.append((f"last: {image['label']}", ""))
        for i, (text, style) in enumerate(parts):
            if i:
                t.append(" · ", style=self._style("muted"))
            t.append(text, style=style)

    def _progress(self, t: Text, job: Job, latest: dict[str, dict], step: dict) -> None:
        n, total = step.get("step"), step.get("total_steps")
        frac = fraction(step) or 0.0
        self._bar(t, job, frac)
        t.append(f" step {n}/{total or '?'}", style="bold")
        t.append(f" {frac:.0%}")
        epochs = (latest.get(EventType.EPOCH) or {}).get("epochs") or \
            (latest.get(EventType.START) or {}).get("epochs")
        if step.get("epoch") is not None:
            t.append(f"   epoch {step['epoch']}" + (f"/{epochs}" if epochs else ""),
                     style="bold")
        t.append("\n")
        parts: list[tuple[str, str | Style]] = []
        if job.active:
            if (v := _num(step.get("it_per_s"), ".2f")) is not None:
                parts.append((f"{v} it/s", "bold"))
            if (v := _num(step.get("samples_per_s"), ".2f")) is not None:
                parts.append((f"{v} samples/s", ""))
            if (eta := eta_left(step, job)) is not None:
                parts.append((f"ETA {duration(eta)}", self._style("accent", bold=True)))
        if job.started:
            parts.append((f"{'elapsed' if job.active else 'took'} "
                          f"{duration((job.ended or time.time()) - job.started)}",
                          self._style("muted")))
        if (v := _num(step.get("loss"), ".4f")) is not None:
            parts.append((f"loss {v}", ""))
        if (v := _num(step.get("avg_loss"), ".4f")) is not None:
            parts.append((f"avg {v}", "bold"))
        lr = step.get("lr")
        if isinstance(lr, list) and lr:
            parts.append(("lr " + "/".join(_num(x, ".1e") or "?" for x in lr), ""))
        if (v := _num(step.get("vram_gb"), ".1f")) is not None:
            parts.append((f"VRAM {v} GB peak", ""))
        for i, (text, style) in enumerate(parts):
            if i:
                t.append(" · ", style=self._style("muted"))
            t.append(text, style=style)

    def _draw_charts(self, view: HistoryView) -> None:
        x = view.steps
        self.query_one("#tr-loss", LinePlot).set_data(
            x, [Series(view.loss, "$muted", "loss"), Series(view.avg_loss, "$primary", "avg")])
        colors = ("$accent", "$secondary", "$warning", "$success")
        lrs = [Series(a, colors[i % len(colors)], f"group {i + 1}" if len(view.lrs) > 1 else "")
               for i, a in enumerate(view.lrs)]
        self.query_one("#tr-lr", LinePlot).set_data(x, lrs)

    def _save_row(self, ev: dict, width: int) -> Text:
        start = self.view.latest.get(EventType.START) if self.view is not None else None
        name_of_run = (start or {}).get("output_name")
        label = checkpoint_label(ev, name_of_run if isinstance(name_of_run, str) else None)
        text = Text(f"{label:<11} ", style="bold")
        size = ev.get("bytes")
        size_text = f" {human_size(size)}" if isinstance(size, int) else ""
        name = Path(str(ev.get("path", "?"))).name
        room = max(width - text.cell_len - len(size_text), 8)
        if len(name) > room:  # keep the end: the epoch/step number is there
            name = "…" + name[-(room - 1):]
        text.append(name.ljust(room))
        text.append(size_text, style=self._style("muted"))
        return text

    def _draw_saves(self, view: HistoryView, old: HistoryView | None) -> None:
        lst = self.query_one("#tr-saves", VirtualList)
        if old is not None and old.loras == view.loras and old.state_save == view.state_save:
            return
        follow = old is None or lst.cursor >= len(lst.items) - 1
        lst.set_items(list(view.loras))
        state = view.state_save
        lst.border_title = f"Checkpoints: {len(view.loras)}" + (
            f" · state @ {state.get('step')}" if state and state.get("step") is not None
            else " · state saved" if state else "")
        if follow:
            lst.action_jump(-1)

    def _draw_alerts(self, view: HistoryView, old: HistoryView | None) -> None:
        if old is not None and old.alerts == view.alerts:
            return
        box = self.query_one("#tr-alerts", Static)
        self._show(box, bool(view.alerts))
        self._log_to_end()
        t = Text()
        for ev in view.alerts:
            if t:
                t.append("\n")
            error = ev.get("type") == EventType.ERROR
            stamp = time.strftime("%H:%M:%S", time.localtime(ev["t"])) \
                if isinstance(ev.get("t"), (int, float)) and ev["t"] > 0 else ""
            role = "error" if error else "warning"
            t.append("✗ " if error else "! ", style=self._style(role, bold=True))
            t.append(f"{stamp} ", style=self._style("muted"))
            t.append(str(ev.get("message", "")), style=self._style(role))
        box.update(t)

    def _draw_samples(self, view: HistoryView, old: HistoryView | None) -> None:
        if old is not None and old.sample == view.sample:
            return
        strip = self.query_one("#tr-samples", SampleStrip)
        paths = [str(p) for p in (view.sample or {}).get("paths") or []]
        self._show(strip, bool(paths))
        self._log_to_end()
        if paths:
            epoch = view.sample.get("epoch")
            strip.show(f"Samples{f' after epoch {epoch}' if epoch is not None else ''}", paths)

    def _draw_log(self, view: HistoryView, old: HistoryView | None) -> None:
        log = self.query_one("#tr-log", Log)
        new = appended(old.log, view.log) if old is not None else None
        if new is None:
            log.clear()
            new = list(view.log)
        if new:
            log.write_lines(new)
            self._log_to_end()

    def _log_to_end(self) -> None:
        """Keep the newest log line in sight, also when the panels above it appear or go
        (a layout after the write would leave it scrolled short) - unless the user is
        reading the log (it has the focus)."""
        log = self.query_one("#tr-log", Log)
        if not log.has_focus:
            self.call_after_refresh(log.scroll_end, animate=False)

    # ---- actions --------------------------------------------------------------------------
    @work(thread=True, group="train-op", exit_on_error=False, description="job operation")
    def _job_op(self, fn: Callable[[Registry], Any], after: Callable[[Any], None],
                title: str) -> None:
        try:
            if self.reg is None:
                self.reg = control.open_registry(supervise=True)
            result = fn(self.reg)
        except (LorabakeError, OSError, sqlite3.Error) as exc:
            self.app.call_from_thread(self.notify, str(exc), title=title, severity="error",
                                      timeout=12)
            return
        self.app.call_from_thread(after, result)

    def _after_submit(self, job: Job) -> None:
        self._want = job.id
        if job.status == "queued":
            self.notify(f"{job.id} ({job.name}) is queued; it starts when GPU "
                        f"{job.gpus or 'default'} is free", title="Queued")
        else:
            self.notify(f"{job.id} ({job.name}) started -> {job.run_dir}", title="Started")
        self.refresh_jobs()

    def _submit(self, start: bool) -> None:
        path = self.project.files.config
        if not path.is_file():
            self.notify(f"no training config yet ({path}): make one in Config (4) and save "
                        "it (ctrl+s)", title="Not queued", severity="error", timeout=10)
            return
        self._job_op(lambda reg: control.submit(path, start=start, reg=reg),
                     self._after_submit, "Not queued")

    def action_queue(self) -> None:
        """Queue the config: it starts as soon as its GPU is free."""
        self._submit(start=False)

    def action_start_now(self) -> None:
        self._submit(start=True)

    def _need_job(self) -> Job | None:
        if self.job is None:
            self.notify("no job selected", severity="warning")
        return self.job

    def action_stop(self) -> None:
        job = self._need_job()
        if job is None:
            return
        if not job.active:
            hint = "d takes it out of the queue" if job.status == "queued" else \
                "it has ended"
            self.notify(f"{job.id} is {job.status}: {hint}", severity="warning")
            return

        def chosen(choice: str | None) -> None:
            if choice == "stop":
                self._job_op(lambda reg: control.stop(job.id, reg=reg), self._after_stop,
                             "Not stopped")
            elif choice == "force":
                self.notify(f"{job.id}: asked to stop; killed if still running in "
                            f"{FORCE_TIMEOUT_S:g} s", title="Force stop")
                self._job_op(lambda reg: control.stop(job.id, force=True,
                                                      timeout=FORCE_TIMEOUT_S, reg=reg),
                             self._after_stop, "Not stopped")

        self.app.push_screen(StopDialog(job), chosen)

    def _after_stop(self, job: Job) -> None:
        if job.status == "stopping":
            self.notify(f"{job.id}: finishing its step and saving its state", title="Stopping")
        self.refresh_jobs()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # a grid or probe is queued again, not resumed
        return not (action == "resume" and self.job is not None and self.job.kind == "render")

    def action_resume(self) -> None:
        job = self._need_job()
        if job is None:
            return
        if job.kind == "render":
            self.notify(f"{job.id} is a render (grid or probe): it is not resumed; queue it "
                        "again on Evaluate (6)", title="Not resumed", severity="warning")
            return
        if job.status == "done":
            self.notify(f"{job.id} finished (done): nothing to resume (a queues the config "
                        "as a new run)",
                        title="Not resumed", severity="warning")
            return
        if job.status not in RESUMABLE:
            self.notify(f"{job.id} is {job.status}: only stopped, failed or crashed jobs "
                        "resume", title="Not resumed", severity="warning")
            return

        def after(new: Job) -> None:
            self._want = new.id
            self.notify(f"{new.id}: attempt {new.attempt} continues from its saved state"
                        + (" as soon as its GPU is free" if new.status == "queued" else ""),
                        title="Resuming")
            self.refresh_jobs()

        # queued, not started: the supervisor starts it at once unless its GPU is busy
        self._job_op(lambda reg: control.resume(job.id, start=False, reg=reg), after,
                     "Not resumed")

    def action_remove(self) -> None:
        job = self._need_job()
        if job is None:
            return
        if job.active:
            self.notify(f"{job.id} is {job.status}: stop it first (x)", severity="warning")
            return

        def after(gone: Job) -> None:
            self.notify(f"{gone.id} " + ("removed from the queue" if gone.status == "queued"
                                         else "forgotten; its run dir is kept"))
            self.refresh_jobs()

        def remove() -> None:
            self._job_op(lambda reg: control.remove(job.id, reg=reg), after, "Not removed")

        if job.status == "queued":
            remove()
            return
        self.app.push_screen(
            ConfirmDialog(f"Forget {job.id} ({job.name})?",
                          f"It leaves the list; its files stay in {job.run_dir}."),
            lambda yes: remove() if yes else None)

    def action_move(self, delta: int) -> None:
        job = self._need_job()
        if job is None:
            return
        if job.status != "queued":
            self.notify(f"{job.id} is {job.status}: only queued jobs move", severity="warning")
            return
        self._job_op(lambda reg: control.move(job.id, delta, reg=reg),
                     lambda _index: self.refresh_jobs(), "Not moved")

    def action_copy_path(self) -> None:
        saves = self.query_one("#tr-saves", VirtualList)
        ev = saves.current if self.focused is saves else None
        if ev is None and self.view is not None and self.view.loras:
            ev = self.view.loras[-1]  # the final LoRA of a finished run, else the newest
        if ev is None or not ev.get("path"):
            self.notify("no LoRA saved yet", severity="warning")
            return
        path = str(ev["path"])
        # OSC 52: the terminal (through SSH and tmux, if they let it) puts it on its clipboard.
        # Nobody answers whether it did, so the path is shown to be selected by hand too.
        self.app.copy_to_clipboard(path)
        # the path last: a notice cut short keeps its start and its end
        self.notify(path, title="Sent to the terminal's clipboard (tmux: set -g set-clipboard on)",
                    timeout=CLIPBOARD_S, markup=False)

    def action_open_log(self) -> None:
        job = self._need_job()
        if job is not None:
            self.app.push_screen(LogScreen(job))

    def action_refresh(self) -> None:
        self.refresh_jobs()
        self._poll()
