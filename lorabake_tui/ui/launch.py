"""Start the workbench for real (terminal, settings, renderer probing)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..core.base.user_settings import Settings


def run_app(root: Path, *, reg_root: Path | None, caption_ext: str | None, images: str | None,
            theme: str | None, attach_job: str | None = None) -> int:
    """`attach_job`: open on the Train screen with that job selected."""
    settings = Settings.load()
    mode = images or settings.images
    if images:
        settings.images = images  # remembered like the theme
        try:
            settings.save()
        except OSError:
            pass
    from .images import prepare_renderer

    prepare_renderer(mode)  # must precede App.run: textual-image probes the terminal on import
    kwargs = dict(reg_root=reg_root, caption_ext=caption_ext, images=mode, settings=settings,
                  theme=theme)
    if attach_job:
        app = make_attached_app(root, attach_job, **kwargs)
    else:
        from .app import make_app

        app = make_app(root, **kwargs)
    result = app.run()
    return result or 0


def make_attached_app(root: Path, job_id: str, **kwargs):
    """The workbench opening on the Train screen with `job_id` selected (make_app's
    arguments)."""
    from ..core.project.project import Project
    from .app import LorabakeApp

    class AttachedApp(LorabakeApp):
        DEFAULT_MODE = "train"  # read by App.__init__: the first screen shown

    project = Project(root, reg_root=kwargs.pop("reg_root", None),
                      caption_ext=kwargs.pop("caption_ext", None))
    app = AttachedApp(project, **kwargs)
    app.attach_job = job_id  # the Train screen selects it once the job list is read
    return app


def job_project(config: str | Path | None) -> tuple[Path, Path | None, str]:
    """(training root, regularization root, caption extension) named by a job's config
    snapshot; the current folder when its train_dir is gone (or it has no config)."""
    data: dict = {}
    if config:
        try:
            data = tomllib.loads(Path(config).read_text("utf-8")).get("data") or {}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
    if not isinstance(data, dict):
        data = {}

    def folder(key: str) -> Path | None:
        value = data.get(key)
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            if path.is_dir():
                return path
        return None

    ext = data.get("caption_extension")
    return (folder("train_dir") or Path.cwd(), folder("reg_dir"),
            ext if isinstance(ext, str) and ext.startswith(".") else ".txt")


def attach_view(job_id: str, *, reg=None) -> int:
    """`lorabake jobs attach ID`: the workbench on the Train screen, that job selected. Its
    project is the dataset the job trains on. Quitting never touches the job."""
    from ..jobs.control import open_registry

    own = reg is None
    reg = reg or open_registry()
    try:
        job = reg.get(job_id)
    finally:
        if own:
            reg.close()
    root, reg_root, caption_ext = job_project(job.config)
    return run_app(root, reg_root=reg_root, caption_ext=caption_ext, images=None, theme=None,
                   attach_job=job.id)
