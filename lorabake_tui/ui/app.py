"""The workbench application: one mode per workflow stage, keys 1-6 between them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen

from ..core.base.sessions import Sessions
from ..core.base.user_settings import Settings
from ..core.project.project import Project
from ..jobs.notify import FinishWatcher, finish_notice
from .screens.buckets import BucketsScreen
from .screens.concepts import ConceptsScreen
from .screens.config import ConfigScreen
from .screens.evaluate import EvaluateScreen
from .screens.help import HelpScreen, describe_bindings
from .screens.recover import RecoverScreen
from .screens.tags import TagsScreen
from .screens.train import TrainScreen
from .themes import discover_themes, theme_variable_defaults
from .widgets.stagebar import STAGES, StageBar

JOB_POLL_S = 5.0  # how often the app looks for jobs that ended (the Train screen: more often)
NOTICES_KEPT = 100


class StageNotice(Message, bubble=False):
    """An information notice on its way to the stage bar (posted: notify is thread-safe)."""

    def __init__(self, notification: Notification) -> None:
        super().__init__()
        self.notification = notification


class LorabakeApp(App[int]):
    TITLE = "lorabake"
    MODES = {"concepts": ConceptsScreen, "tags": TagsScreen, "buckets": BucketsScreen,
             "config": ConfigScreen, "train": TrainScreen, "evaluate": EvaluateScreen}
    DEFAULT_MODE = "concepts"
    BINDINGS = [
        *(Binding(str(n), f"stage('{key}')", title, id=f"stage.{key}", show=False)
          for n, (key, title) in enumerate(STAGES, start=1)),
        # the stage bar names both: the footers keep their room for the stage's own keys
        Binding("question_mark", "help", "Help", id="help", show=False),
        Binding("q", "quit", "Quit", id="quit", show=False),
    ]

    def __init__(self, project: Project, *, images: str = "none",
                 settings: Settings | None = None, theme: str | None = None,
                 save_settings: bool = True) -> None:
        self.project = project
        self.images = images
        self.settings = settings or Settings()
        self._save_settings = save_settings
        self._wanted_theme = theme or self.settings.theme
        self._job_watcher: FinishWatcher | None = None
        self.notices: deque[Notification] = deque(maxlen=NOTICES_KEPT)  # every one, newest last
        self.sessions = Sessions(project.root)
        super().__init__()
        # the theme is set before the first stage mounts, so nothing is drawn twice at start
        themes, self._theme_errors = discover_themes()
        for t in themes:
            self.register_theme(t)
        if self._wanted_theme in self.available_themes:
            self.theme = self._wanted_theme
        else:
            self._theme_errors.append(f"unknown theme '{self._wanted_theme}'")
            self.theme = "lorabake-dark"

    # ---- notices --------------------------------------------------------------------------
    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Information goes to the stage bar, where it covers no panel; a warning or an error
        is a toast (Textual's), to be read. Every notice is kept in `notices`."""
        notification = Notification(message, title, severity,
                                    self.NOTIFICATION_TIMEOUT if timeout is None else timeout,
                                    markup=markup)
        self.notices.append(notification)
        self.post_message(StageNotice(notification) if severity == "information"
                          else Notify(notification))

    def on_stage_notice(self, event: StageNotice) -> None:
        note = event.notification
        bar = next((s.query_one(StageBar) for s in reversed(self.screen_stack)
                    if s.query(StageBar)), None)
        if bar is None:  # no stage yet (the recovery prompt): a toast after all
            self.post_message(Notify(note))
            return
        bar.show_notice(f"{note.title}: {note.message}" if note.title else note.message,
                        note.timeout)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults(self.current_theme)

    def on_mount(self) -> None:
        for err in self._theme_errors:
            self.notify(err, title="Theme skipped", severity="warning", timeout=8)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        self.sub_title = self.project.name
        self._open_session()
        pending = self.project.journal.interrupted()
        if pending is not None:
            self.push_screen(RecoverScreen(pending))
        # a training job that ends rings the bell whatever screen is open
        self.set_interval(JOB_POLL_S, self._poll_jobs)

    # ---- other workbenches on this dataset ---------------------------------------------
    def _open_session(self) -> None:
        try:
            others = self.sessions.open()
        except OSError:  # a dataset we cannot write to: no undo history to share either
            return
        if others:
            who = "; ".join(s.describe() for s in others)
            self.notify(f"{len(others)} other workbench(es) have this dataset open ({who}). "
                        "You share one undo history: u here can take back a change made "
                        "there (it says so when it does).",
                        title="Dataset open elsewhere", severity="warning", timeout=20)

    def on_unmount(self) -> None:
        self.sessions.close()

    # ---- jobs that end ------------------------------------------------------------------
    def _poll_jobs(self) -> None:
        from ..jobs.paths import db_path

        if db_path().exists():  # no registry yet: this user never started a job
            self.run_worker(self._read_jobs, thread=True, group="job-watch", exclusive=True)

    def _read_jobs(self) -> None:
        from ..jobs.store import Registry

        try:
            with Registry() as reg:
                jobs = reg.jobs()
        except Exception:  # noqa: BLE001 - a busy or damaged registry: try again next time
            return
        self.call_from_thread(self.jobs_seen, jobs)

    def jobs_seen(self, jobs) -> None:
        """Every fresh job list (this poll, or the Train screen's): each job that ended since
        the last one gets one bell and notice."""
        if self._job_watcher is None:
            self._job_watcher = FinishWatcher(jobs)
            return
        for job in self._job_watcher.update(jobs):
            if not getattr(self.settings, "notify_on_finish", True):
                continue
            notice = finish_notice(job)
            self.bell()
            self.notify(notice.message, title=notice.title, severity=notice.severity,
                        timeout=30 if notice.severity == "error" else 15)

    def _remember_theme(self, theme) -> None:
        self.settings.theme = theme.name
        if self._save_settings:
            try:
                self.settings.save()
            except OSError as exc:
                self.notify(f"could not save settings: {exc.strerror}", severity="warning")

    # ---- actions ----------------------------------------------------------------------
    def action_stage(self, key: str) -> None:
        if self.current_mode != key:
            self.switch_mode(key)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(describe_bindings(self.screen)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for n, (key, title) in enumerate(STAGES, start=1):
            yield SystemCommand(f"Go to {title}", f"Stage {n} ({n})",
                                lambda k=key: self.action_stage(k))
        yield SystemCommand("Help", "All keys on this screen (?)", self.action_help)
        yield from getattr(screen, "screen_commands", lambda: [])()
        yield from super().get_system_commands(screen)


def make_app(root: Path, **kwargs) -> LorabakeApp:
    project = Project(root, reg_root=kwargs.pop("reg_root", None),
                      caption_ext=kwargs.pop("caption_ext", None))
    return LorabakeApp(project, **kwargs)
