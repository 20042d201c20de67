"""`lorabake jobs`: start, queue, stop, resume and follow training jobs from a shell.

Jobs run detached from the terminal (an SSH drop does not end them); these commands only
talk to the registry and read the runs' files, so any of them can be run from anywhere.
"""

from __future__ import annotations

import argparse
import codecs
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..core.base.errors import LorabakeError
from ..core.run.events import EventType, render_as_step
from ..core.run.folder import STDOUT_LOG, TRAIN_LOG
from .common import Parser, print_json

DESCRIPTION = """\
Training jobs: each runs detached (closing the terminal or an SSH drop never stops it).
A queue runs one job at a time per GPU set; jobs on other GPUs run side by side."""

EPILOG = """\
examples:
  lorabake jobs start training.toml --gpus 0      start now on GPU 0
  lorabake jobs start other.toml --queue          run when the default GPU is free
  lorabake jobs attach j-0003                     the dashboard on it (quit leaves it running)
  lorabake jobs stop 3 --wait && lorabake jobs resume 3
                                                 stop (state is saved), then continue
  lorabake jobs follow kohya.log --pid 4242       watch a kohya sd-scripts run"""

LIST_WIDTH = 100


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lorabake jobs", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    s = sub.add_parser("list", help="all jobs, oldest first (the default command)")
    s.add_argument("--json", action="store_true", help="print a JSON list")

    s = sub.add_parser("start", help="start a config now, or queue it")
    s.add_argument("config", help="the training TOML (a snapshot is taken now)")
    s.add_argument("--gpus", default="", metavar="0,1",
                   help="CUDA devices (CUDA_VISIBLE_DEVICES); jobs sharing one take turns")
    s.add_argument("--queue", action="store_true", help="queue it instead of starting now")
    s.add_argument("--run-dir", metavar="DIR",
                   help="where the run goes (default: output_dir/output_name-TIMESTAMP)")

    s = sub.add_parser("stop", help="stop a job (it saves its state; resume continues it)")
    s.add_argument("id")
    s.add_argument("--wait", action="store_true",
                   help="return once it has stopped (exit 1 if still stopping after "
                        "--timeout seconds), so `resume` can follow")
    s.add_argument("--force", action="store_true",
                   help="kill it if it has not stopped after --timeout seconds")
    s.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait (with --wait or --force; default 60)")

    s = sub.add_parser("resume", help="continue a stopped, failed or crashed job: its next "
                       "attempt, same id and run dir (a finished run is refused)")
    s.add_argument("id")
    s.add_argument("--queue", action="store_true", help="queue it instead of starting now")

    s = sub.add_parser("remove", help="take a job out of the queue (or forget a finished one)")
    s.add_argument("id")

    s = sub.add_parser("move", help="move a queued job up or down the queue")
    s.add_argument("id")
    s.add_argument("direction", choices=("up", "down", "top", "bottom"))

    s = sub.add_parser("log", help=f"print a job's {TRAIN_LOG} (or its console output)")
    s.add_argument("id")
    s.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    s.add_argument("--stdout", action="store_true",
                   help=f"the console output ({STDOUT_LOG}: tracebacks) instead of {TRAIN_LOG}")
    s.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")

    s = sub.add_parser("follow", help="follow an external kohya sd-scripts run by its log")
    s.add_argument("logfile", help="the file kohya's stdout+stderr go to")
    s.add_argument("--pid", type=int, help="kohya's process id (lets `jobs stop` stop it)")
    s.add_argument("--name", help="a name for the list (default: the log's name)")

    s = sub.add_parser("attach", help="open the dashboard on a job (quitting leaves it running)")
    s.add_argument("id")
    s.add_argument("--plain", action="store_true",
                   help="print a progress line per second instead (also when not a terminal)")
    return p


def main(argv: list[str]) -> int:
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["list", *argv]  # `lorabake jobs` and `lorabake jobs --json`
    args = build_parser().parse_args(argv)
    from ..jobs.control import open_registry

    reg = open_registry()
    try:
        return COMMANDS[args.cmd](args, reg)
    except sqlite3.OperationalError as exc:  # held by another process past the busy timeout
        raise LorabakeError(f"job registry {reg.path}: {exc}", "try again") from None
    finally:
        reg.close()


# ---- list ----------------------------------------------------------------------------------

def _latest_step(job) -> dict | None:
    from ..core.run.event_reader import last_event
    from ..jobs.kohya_log import latest_kohya_step

    if job.status == "queued":
        return None
    if job.kind == "kohya":
        return latest_kohya_step(job.log_path) if job.log_path else None
    if job.kind == "render":
        image = last_event(job.events_path, EventType.RENDER)
        return render_as_step(image) if image else None
    if job.finished and job.ended:
        # a later attempt (resume) may write on in the same events.jsonl: this one's last
        return last_event(job.events_path, EventType.STEP,
                          where=lambda ev: ev.get("t", 0) <= job.ended)
    return last_event(job.events_path, EventType.STEP)


def job_json(job) -> dict:
    step = _latest_step(job)
    return {"id": job.id, "status": job.status, "config": job.config or job.source,
            "run_dir": job.run_dir, "pid": job.pid,
            "step": step.get("step") if step else None,
            "total_steps": step.get("total_steps") if step else None,
            "kind": job.kind, "name": job.name, "gpus": job.gpus, "position": job.position,
            "exit_code": job.exit_code, "last_message": job.last_message,
            "resume_of": job.resume_of, "attempt": job.attempt,
            "attempts": [a.to_json() for a in job.attempts], "created": job.created,
            "started": job.started, "ended": job.ended}


def cmd_list(args, reg) -> int:
    jobs = reg.jobs()
    if args.json:
        print_json([job_json(j) for j in jobs])
        return 0
    if not jobs:
        print("no jobs (start one: lorabake jobs start CONFIG)")
        return 0
    queue = {j.id: n for n, j in enumerate(reg.queue(), start=1)}
    print(f"{'ID':<8} {'STATUS':<9} {'ATTEMPT':<7} {'PROGRESS':<13} {'GPUS':<5} {'NAME':<20} "
          "RUN DIR")
    for job in jobs:
        step = _latest_step(job)
        if job.status == "queued":
            progress = f"#{queue.get(job.id, '?')} in queue"
        elif step:
            progress = f"{step.get('step')}/{step.get('total_steps') or '?'}"
        else:
            progress = "-"
        name = job.name + (" (kohya)" if job.kind == "kohya" else "")
        print(f"{job.id:<8} {job.status:<9} {job.attempt:<7} {progress:<13} "
              f"{job.gpus or '-':<5} {name[:20]:<20} {job.run_dir}")
        if job.status in ("failed", "crashed") and job.last_message:
            print(f"{'':<8} {job.last_message.splitlines()[0][:LIST_WIDTH]}")
    return 0


# ---- start / stop / resume / queue edits ---------------------------------------------------

def _lane_note(reg, job) -> None:
    from ..jobs.supervisor import gpu_set

    others = [j for j in reg.jobs(statuses=("running", "stopping"), kinds=("lorabake",))
              if j.id != job.id and gpu_set(j.gpus) & gpu_set(job.gpus)]
    if others:
        print(f"note: {', '.join(j.id for j in others)} also running on "
              f"{'GPU ' + job.gpus if job.gpus else 'the default GPU'}; use --queue to wait "
              "for it", file=sys.stderr)


def _started(reg, job) -> None:
    if job.status == "queued":
        n = next((i for i, j in enumerate(reg.queue(), start=1) if j.id == job.id), "?")
        print(f"queued {job.id} ({job.name}), #{n} in the queue -> {job.run_dir}")
        return
    print(f"started {job.id} ({job.name}) -> {job.run_dir}")
    print(f"  watch it: lorabake jobs attach {job.id}    stop it: lorabake jobs stop {job.id}")
    _lane_note(reg, job)


def cmd_start(args, reg) -> int:
    from ..jobs.control import submit

    job = submit(args.config, gpus=args.gpus, run_dir=args.run_dir, start=not args.queue,
                 reg=reg)
    _started(reg, job)
    return 0


def cmd_stop(args, reg) -> int:
    from ..jobs.control import stop

    if args.force:
        print(f"stopping; killing it if still running after {args.timeout:g} s ...",
              file=sys.stderr)
    job = stop(args.id, force=args.force, wait=args.wait, timeout=args.timeout, reg=reg)
    if job.status == "stopping" and args.wait:
        print(f"{job.id}: still stopping after {args.timeout:g} s (it finishes its step and "
              f"saves its state); `lorabake jobs stop {job.id} --force` kills it",
              file=sys.stderr)
        return 1
    if job.status == "stopping":
        print(f"{job.id}: asked to stop; it finishes its step and saves its state "
              f"(`lorabake jobs list` shows when it has)")
    else:
        print(f"{job.id}: {job.status}" + (f": {job.last_message.splitlines()[0]}"
                                           if job.last_message else ""))
    return 0


def cmd_resume(args, reg) -> int:
    from ..jobs.control import resume

    job = resume(args.id, start=not args.queue, reg=reg)
    print(f"{job.id}: attempt {job.attempt} continues the run in {job.run_dir} from its saved "
          "state")
    _started(reg, job)
    return 0


def cmd_remove(args, reg) -> int:
    from ..jobs.control import remove

    job = remove(args.id, reg=reg)
    if job.kind == "kohya":
        what = "no longer followed (the kohya run itself is not touched)"
    elif job.status == "queued":
        what = "removed from the queue"
    else:
        what = "forgotten (its run dir is kept)"
    print(f"{job.id} ({job.name}) {what}")
    return 0


def cmd_move(args, reg) -> int:
    from ..jobs.control import move

    delta = {"up": -1, "down": 1, "top": -(10 ** 9), "bottom": 10 ** 9}[args.direction]
    index = move(args.id, delta, reg=reg)
    print(f"{reg.get(args.id).id} is now #{index + 1} in the queue")
    return 0


def cmd_follow(args, reg) -> int:
    from ..jobs.control import follow

    job = follow(args.logfile, pid=args.pid, name=args.name, reg=reg)
    print(f"following {job.log_path} as {job.id}" +
          ("" if job.pid else " (no --pid: it shows as running until the log says it ended)"))
    return 0


# ---- log / attach --------------------------------------------------------------------------

def _log_path(job, stdout: bool, follow: bool) -> Path | None:
    if follow and not stdout and job.kind == "lorabake":
        # the trainer creates train.log a moment after it starts: wait for it, rather than
        # settling for stdout.log
        path = job.folder.train_log
        return path if path.exists() else None
    return job.log_file(STDOUT_LOG if stdout else TRAIN_LOG)


def cmd_log(args, reg) -> int:
    job = reg.get(args.id)
    path = _log_path(job, args.stdout, args.follow)
    if path is None and not args.follow:
        raise LorabakeError(f"{job.id} has no log yet in {job.run_dir}")
    if args.lines is not None and path is not None:
        from ..jobs.logs import tail_lines

        for line in tail_lines(path, args.lines):
            print(line)
        if not args.follow:
            return 0
        offset = path.stat().st_size
    else:
        offset = 0
    if not args.follow:
        _copy(path, 0, codecs.getincrementaldecoder("utf-8")(errors="replace"))
        return 0
    try:
        return _follow_log(reg, job, path, offset, args.stdout)
    except KeyboardInterrupt:
        return 0  # leaving the view never touches the job


def _copy(path: Path, offset: int, decoder) -> int:
    """Print `path` from `offset`; the new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(1 << 16):
                sys.stdout.write(decoder.decode(chunk))
                offset += len(chunk)
    except FileNotFoundError:
        return offset
    sys.stdout.flush()
    return offset


def _follow_log(reg, job, path: Path | None, offset: int, stdout: bool,
                interval: float = 0.5) -> int:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        if path is None:
            path = _log_path(job, stdout, True)
        if path is not None:
            offset = _copy(path, offset, decoder)
        if not (job.active or job.status == "queued"):
            if path is not None:
                _copy(path, offset, decoder)
            elif (out := job.log_file(STDOUT_LOG)) is not None:
                _copy(out, 0, decoder)  # it ended before writing train.log: show why
            return 0
        time.sleep(interval)
        reg.reconcile()
        job = reg.get(job.id)


def attach_plain(job_id: str, *, reg=None, interval: float = 1.0) -> int:
    """One progress line per second until the job ends (`attach --plain`, or output that
    is not a terminal)."""
    from ..jobs.control import open_registry
    from ..jobs.history import JobHistory
    from ..jobs.notify import finish_message, progress_line

    own = reg is None
    reg = reg or open_registry()
    try:
        job = reg.get(job_id)
        history = JobHistory.for_job(job)
        while True:
            history.poll()
            if job.finished:
                print(finish_message(job), flush=True)
                return 0
            print(progress_line(job, history), flush=True)
            time.sleep(interval)
            reg.reconcile()
            job = reg.get(job.id)
    except KeyboardInterrupt:
        return 0  # detaching leaves the job running
    finally:
        if own:
            reg.close()


def attach_dashboard(job_id: str, *, reg=None) -> int:
    """The workbench on its Train screen, with the job selected."""
    from ..ui.launch import attach_view

    return attach_view(job_id, reg=reg)


# the `attach` view: swappable, any (job_id, reg=...) -> int
ATTACH_VIEW: Callable[..., int] = attach_dashboard


def cmd_attach(args, reg) -> int:
    job = reg.get(args.id)
    if args.plain or not (sys.stdout.isatty() and sys.stdin.isatty()):
        return attach_plain(job.id, reg=reg)
    return ATTACH_VIEW(job.id, reg=reg)


COMMANDS = {"list": cmd_list, "start": cmd_start, "stop": cmd_stop, "resume": cmd_resume,
            "remove": cmd_remove, "move": cmd_move, "log": cmd_log, "follow": cmd_follow,
            "attach": cmd_attach}
