"""What the UI and the CLI do to jobs: submit (start now or queue), stop, resume, remove,
reorder, follow an external kohya run. Every function takes an open Registry (`reg=`) or
opens the user's own; user mistakes raise LorabakeError with a hint.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import time
import tomllib
from collections.abc import Collection, Iterator
from pathlib import Path

from ..core.base.atomic import atomic_write_text
from ..core.base.errors import LorabakeError
from ..core.config.file import read_config_text, with_absolute_paths
from ..core.eval.layout import REQUEST_FILE, render_folder
from ..core.eval.request import GridRequest, ProbeRequest, write_request
from ..core.run.event_reader import finished_end
from ..core.run.folder import STATE_DIR, RunFolder
from .paths import configs_dir
from .procs import create_time, is_alive, send, send_group
from .spawn import launch, render_command, trainer_command
from .store import ACTIVE, RESUMABLE, Job, Registry
from .supervisor import ensure_supervisor

STOP_TIMEOUT_S = 60.0
_GPUS = re.compile(r"^\d+(,\d+)*$")


def open_registry(*, supervise: bool = True) -> Registry:
    """The user's registry, reconciled with the process table; with `supervise`, a queue
    left without its supervisor (killed, machine rebooted) gets one again."""
    reg = Registry()
    if supervise:
        ensure_supervisor(reg)
    return reg


@contextlib.contextmanager
def _registry(reg: Registry | None) -> Iterator[Registry]:
    if reg is not None:
        yield reg
        return
    own = Registry()
    try:
        yield own
    finally:
        own.close()


def normalize_gpus(gpus: str | None) -> str:
    """'0, 1' -> '0,1'; '' means the default device."""
    text = re.sub(r"\s+", "", gpus or "")
    if text and not _GPUS.match(text):
        raise LorabakeError(f"bad GPU list {gpus!r}", "give device numbers like 0 or 0,1")
    return text


def _busy_with(reg: Registry, run_dir: Path) -> Job | None:
    for job in reg.jobs(statuses=("queued", *ACTIVE)):
        if job.run_dir and Path(job.run_dir) == run_dir:
            return job
    return None


def default_run_dir(data: dict, base_dir: Path, name: str, *, taken: Collection[Path] = (),
                    now: float | None = None) -> Path:
    """`[saving] output_dir` (relative to the config's folder) / `{output_name}-{stamp}`."""
    saving = data.get("saving") if isinstance(data.get("saving"), dict) else {}
    out = Path(str(saving.get("output_dir") or "output")).expanduser()
    if not out.is_absolute():
        out = base_dir / out
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = out / f"{name}-{stamp}"
    n = 1
    while path.exists() or path in taken:  # two submissions in one second
        n += 1
        path = out / f"{name}-{stamp}-{n}"
    return path


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "run"


def submit(config_path: Path | str, *, gpus: str = "", run_dir: Path | str | None = None,
           start: bool = True, reg: Registry | None = None,
           trainer_cmd: list[str] | None = None) -> Job:
    """Snapshot CONFIG and start it now (`start=True`) or queue it (start=False)."""
    path = Path(config_path).expanduser().resolve()
    text = read_config_text(path)
    return submit_text(text, base_dir=path.parent, source=str(path), gpus=gpus,
                       run_dir=run_dir, start=start, reg=reg, trainer_cmd=trainer_cmd)


def submit_text(text: str, *, base_dir: Path | str, source: str = "", name: str | None = None,
                gpus: str = "", run_dir: Path | str | None = None, start: bool = True,
                reg: Registry | None = None, trainer_cmd: list[str] | None = None) -> Job:
    """Like submit, from the config's text (the Config screen's saved text); relative paths
    in it are taken relative to `base_dir`."""
    base_dir = Path(base_dir).expanduser().resolve()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LorabakeError(f"{source or 'config'}: not valid TOML: {exc}",
                            "fix the line it names") from None
    gpus = normalize_gpus(gpus)
    saving = data.get("saving") if isinstance(data.get("saving"), dict) else {}
    name = _safe_name(name or str(saving.get("output_name") or "") or Path(source).stem or "run")
    with _registry(reg) as reg:
        if run_dir is not None:
            rd = Path(run_dir).expanduser().resolve()
            if RunFolder(rd).holds_run():
                raise LorabakeError(f"{rd} already holds a run",
                                    "choose another --run-dir, or resume that run")
        else:
            taken = {Path(j.run_dir) for j in reg.jobs() if j.run_dir}
            rd = default_run_dir(data, base_dir, name, taken=taken)
        if other := _busy_with(reg, rd):
            raise LorabakeError(f"{rd} is the run dir of {other.id} ({other.status})")
        snaps = configs_dir(reg.path.parent)
        snaps.mkdir(parents=True, exist_ok=True)
        snap = snaps / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(3)}.toml"
        # the snapshot lives in the state dir: paths relative to the config's folder are
        # written out absolute (comments and layout kept)
        atomic_write_text(snap, with_absolute_paths(text, base_dir))
        os.chmod(snap, 0o444)  # immutable: editing the config later never changes this job
        now = time.time()
        job = reg.add(kind="lorabake", name=name, status="running" if start else "queued",
                      config=str(snap), source=source, run_dir=str(rd), workdir=str(base_dir),
                      command=trainer_cmd or trainer_command(), gpus=gpus, created=now,
                      started=now if start else None)
        if start:
            return launch(reg, job)
        ensure_supervisor(reg)
        return reg.get(job.id)


def submit_render(req: GridRequest | ProbeRequest, *, gpus: str = "", start: bool = False,
                  reg: Registry | None = None, name: str | None = None,
                  command: list[str] | None = None) -> Job:
    """Queue a grid or a probe as a render job (kind "render"): it waits for its GPUs like a
    training job and runs detached in its render folder (core/eval/layout.py), which gets
    the request as request.json. `start=True` starts it now whatever else runs."""
    req.check()
    gpus = normalize_gpus(gpus)
    folder = render_folder(req).expanduser().resolve()
    with _registry(reg) as reg:
        if RunFolder(folder).holds_run():
            raise LorabakeError(f"{folder} already holds a render",
                                "choose another output name (-o)")
        if other := _busy_with(reg, folder):
            raise LorabakeError(f"{folder} is the folder of {other.id} ({other.status})")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            request = folder / REQUEST_FILE
            write_request(req, request)
        except OSError as exc:
            raise LorabakeError(f"{folder}: {exc.strerror or exc}",
                                "choose an output folder you can write to") from None
        default = f"{req.kind}-{Path(req.out).stem}" if isinstance(req, GridRequest) else \
            f"probe-{req.word}"
        now = time.time()
        job = reg.add(kind="render", name=_safe_name(name or default),
                      status="running" if start else "queued", config=str(request),
                      source=getattr(req, "run_dir", "") or str(request), run_dir=str(folder),
                      workdir=str(folder), command=command or render_command(), gpus=gpus,
                      created=now, started=now if start else None)
        if start:
            return launch(reg, job)
        ensure_supervisor(reg)
        return reg.get(job.id)


def stop(ref: str, *, force: bool = False, wait: bool = False, timeout: float = STOP_TIMEOUT_S,
         reg: Registry | None = None) -> Job:
    """Ask a running job to stop: SIGTERM to its runner, which passes it to the trainer (it
    finishes the step, saves state, exits 3; the job ends `stopped`). With `wait`, return once
    it has ended, or after `timeout` seconds still `stopping`. With `force`, wait up to
    `timeout` seconds, then SIGKILL its whole process group (the job ends `crashed`)."""
    with _registry(reg) as reg:
        job = reg.get(ref)
        if job.status == "queued":
            raise LorabakeError(f"{job.id} is queued, not running",
                                f"take it out of the queue: lorabake jobs remove {job.id}")
        if not job.active:
            raise LorabakeError(f"{job.id} is not running (it is {job.status})")
        if job.kind == "kohya":
            if not job.pid or not is_alive(job.pid, job.pid_ctime):
                raise LorabakeError(f"{job.id} is a followed kohya run with no known process",
                                    "stop it where it runs, or follow it with --pid")
            target = job.pid
        elif is_alive(job.pid, job.pid_ctime):
            target = job.pid
        elif is_alive(job.child_pid, job.child_ctime):
            target = job.child_pid  # the runner is gone; the trainer itself still runs
        elif job.pid is None and job.child_pid is None:
            raise LorabakeError(f"{job.id} is still starting", "try again in a moment")
        else:
            reg.reconcile()
            return reg.get(job.id)
        send(target, signal.SIGTERM)
        reg.transition(job.id, ACTIVE, status="stopping", stop_requested=time.time())
        if force:
            _kill_after(reg, job, timeout)
        elif wait:
            _wait_ended(reg, job, timeout)
        return reg.get(job.id)


def _alive(job: Job) -> bool:
    return is_alive(job.pid, job.pid_ctime) or is_alive(job.child_pid, job.child_ctime)


def _wait_ended(reg: Registry, job: Job, timeout: float) -> bool:
    """True once `job` is no longer active (its processes gone), False after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = reg.get(job.id)
        if not job.active or not _alive(job):
            reg.reconcile()
            return True
        time.sleep(0.2)
    return False


def _kill_after(reg: Registry, job: Job, timeout: float) -> None:
    if _wait_ended(reg, job, timeout):
        return
    job = reg.get(job.id)
    if job.kind == "kohya":
        send(job.pid, signal.SIGKILL)
    else:
        if job.pgid and is_alive(job.pid, job.pid_ctime):
            send_group(job.pgid, signal.SIGKILL)
        if is_alive(job.child_pid, job.child_ctime):
            send(job.child_pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while _alive(job) and time.monotonic() < end:
        time.sleep(0.05)
    reg.transition(job.id, ACTIVE, status="crashed", exit_code=-signal.SIGKILL,
                   ended=time.time(), last_message=f"force-stopped: still running {timeout:g} s "
                   "after SIGTERM, so it was killed (SIGKILL); its state may be older than "
                   "the last step")


def resume(ref: str, *, start: bool = True, gpus: str | None = None,
           reg: Registry | None = None) -> Job:
    """Continue a stopped, failed or crashed run from its saved state: the same job, its next
    attempt (store.begin_attempt), started with `--resume` in the same run dir. Refused for
    a finished run and for an earlier attempt that a later job row of its run folder
    superseded (rows from before attempts were kept in one job)."""
    with _registry(reg) as reg:
        job = reg.get(ref)
        why = resume_refusal(reg, job)
        if why is not None:
            raise why
        gpus = None if gpus is None else normalize_gpus(gpus)
        new = reg.begin_attempt(job.id, RESUMABLE, start=start, gpus=gpus)
        if new is None:
            raise LorabakeError(f"{job.id} changed meanwhile (now {reg.get(job.id).status})")
        if start:
            return launch(reg, new)
        ensure_supervisor(reg)
        return reg.get(new.id)


def resume_refusal(reg: Registry, job: Job) -> LorabakeError | None:
    """Why `job` cannot be resumed (one line naming it, with a hint), None when it can."""
    if job.kind == "render":
        return LorabakeError(f"{job.id} is a render (grid or probe): it is not resumed",
                             "queue it again from the Evaluate stage or the command")
    if job.kind != "lorabake":
        return LorabakeError(f"{job.id} is a followed kohya run",
                             "resume it with kohya's own --resume")
    if job.status == "done":
        return LorabakeError(f"{job.id} cannot be resumed: it finished (done); nothing is "
                             "left to train", "train again as a new job: lorabake jobs start "
                             "CONFIG")
    if job.status not in RESUMABLE:
        return LorabakeError(f"{job.id} is {job.status}",
                             "only stopped, failed or crashed jobs can be resumed")
    if later := reg.superseded_by(job):
        return LorabakeError(f"{job.id} cannot be resumed: it is an earlier attempt of the run "
                             f"in {job.run_dir}, which {later.id} continued ({later.status})",
                             f"resume {later.id} instead" if later.status in RESUMABLE
                             else "see `lorabake jobs list`")
    if (end := finished_end(job.events_path)) is not None:
        return LorabakeError(f"{job.id} cannot be resumed: its run in {job.run_dir} already "
                             f"finished (done{_at(end.get('t'))})", "train again as a new job: "
                             "lorabake jobs start CONFIG")
    if not job.has_state:
        return LorabakeError(f"{job.id} has no saved state in {job.run_dir}/{STATE_DIR}",
                             "it ended before its first save: start it again with "
                             "`lorabake jobs start`")
    if other := _busy_with(reg, Path(job.run_dir)):
        return LorabakeError(f"{job.run_dir} is already in use by {other.id} "
                             f"({other.status})")
    return None


def _at(t) -> str:
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        return ""
    return time.strftime(" on %Y-%m-%d at %H:%M", time.localtime(t))


def remove(ref: str, *, reg: Registry | None = None) -> Job:
    """Take a queued job out of the queue, or forget a finished one (its run dir stays), or
    stop following a kohya run (the run itself is not touched)."""
    with _registry(reg) as reg:
        job = reg.get(ref)
        if job.active and job.kind != "kohya":
            raise LorabakeError(f"{job.id} is {job.status}",
                                f"stop it first: lorabake jobs stop {job.id}")
        allowed = None if job.kind == "kohya" else ("queued", "done", "stopped", "failed",
                                                    "crashed")
        if not reg.delete(job.id, only_statuses=allowed):
            raise LorabakeError(f"{job.id} changed meanwhile (now {reg.get(job.id).status})")
        if job.status == "queued" and job.config and \
                not any(j.config == job.config for j in reg.jobs()):
            with contextlib.suppress(OSError):
                Path(job.config).unlink()  # a snapshot only this job used
        return job


def move(ref: str, delta: int, *, reg: Registry | None = None) -> int:
    """Move a queued job `delta` places (-1: one up, towards the front); its new index."""
    with _registry(reg) as reg:
        job = reg.get(ref)
        if job.status != "queued":
            raise LorabakeError(f"{job.id} is {job.status}, not queued",
                                "only queued jobs can be moved")
        return reg.move(job.id, delta)


def follow(log_path: Path | str, *, pid: int | None = None, name: str | None = None,
           reg: Registry | None = None) -> Job:
    """Register an external kohya run: followed through its console log, never started by
    us (and stopped only through `pid`, when given)."""
    path = Path(log_path).expanduser().resolve()
    if not path.is_file():
        raise LorabakeError(f"{path} is not a file",
                            "give the file kohya's output goes to (e.g. `... 2>&1 | tee LOG`)")
    ctime = None
    if pid is not None:
        ctime = create_time(pid)
        if ctime is None:
            raise LorabakeError(f"no process {pid}", "check the pid with `ps`")
    with _registry(reg) as reg:
        for other in reg.jobs(statuses=ACTIVE, kinds=("kohya",)):
            if other.log_path == str(path):
                raise LorabakeError(f"{path} is already followed as {other.id}")
        now = time.time()
        return reg.add(kind="kohya", name=_safe_name(name or path.stem), status="running",
                       source=str(path), run_dir=str(path.parent), log_path=str(path),
                       pid=pid, pid_ctime=ctime, created=now, started=now)
