"""Who has a dataset open, and who made each change: workbench sessions and change origins.

Each running workbench holds one file in `<root>/.lorabake/sessions/`, locked (flock) for its
whole life. The kernel drops the lock when the process ends, however it ends (SIGKILL too),
so a file nobody holds is a leftover and is removed by the next look. A second workbench on
the same dataset sees the first at start and is warned: both share one undo history.

The journal stamps every entry with `current_origin()` (this process: its workbench session,
or the command with its pid), and `describe_origin` turns a stamp into the words undo and redo
use when they take back a change that another workbench or a command made.

flock is reliable on local filesystems; on a network filesystem two machines may not see each
other's locks (the origins in the journal still tell whose change an undo takes back).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .project_files import ProjectFiles


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # "<host>-<pid>-<started ms>": unique even when a pid is reused
    pid: int
    host: str
    user: str
    started: float  # time.time()
    tty: str | None = None  # the terminal it runs in, when it has one

    def describe(self) -> str:
        """'pid 1234 on /dev/pts/3, open since 12:01' (the host named when it is another)."""
        where = f" on {self.tty}" if self.tty else ""
        if self.host != socket.gethostname():
            where += f" at {self.host}"
        since = time.strftime("%H:%M", time.localtime(self.started))
        return f"pid {self.pid}{where}, open since {since}"


_current: Session | None = None  # this process's workbench session, once it has opened one


def current_origin() -> str:
    """The stamp for a change made by this process."""
    if _current is not None:
        return f"workbench {_current.id}"
    return f"command {socket.gethostname()}-{os.getpid()}"


def describe_origin(origin: str | None) -> str | None:
    """Words for a change made elsewhere ('another workbench (pid 1234)', 'the lorabake
    command (pid 99)'); None when this process made it, or nobody recorded who did."""
    if not origin or origin == current_origin():
        return None
    kind, _, ident = origin.partition(" ")
    # "<host>-<pid>-<ms>" for a workbench, "<host>-<pid>" for a command (a host may hold "-")
    parts = ident.rsplit("-", 2 if kind == "workbench" else 1)
    pid = parts[1] if len(parts) > 1 else "?"
    if kind == "workbench":
        return f"another workbench (pid {pid})"
    return f"the lorabake command (pid {pid})"


class Sessions:
    """The workbench sessions of one dataset."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.dir = ProjectFiles(self.root).state / "sessions"
        self._fd: int | None = None
        self._path: Path | None = None

    def open(self) -> list[Session]:
        """Register this process as a workbench on the dataset, for as long as it runs.
        Returns the other workbenches that have it open (an empty list: alone). A dataset
        folder that does not exist is left uncreated (nothing to share)."""
        global _current
        if not self.root.is_dir():
            return []
        self.dir.mkdir(parents=True, exist_ok=True)
        me = Session(f"{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000)}",
                     os.getpid(), socket.gethostname(), _user(), time.time(), _tty())
        path = self.dir / f"{me.id}.json"
        # locked before it gets its name: nobody ever sees it unheld and takes it for a leftover
        tmp = self.dir / f".{me.id}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps(asdict(me)).encode("utf-8"))
        os.replace(tmp, path)
        self._fd, self._path = fd, path
        _current = me
        return self.others()

    def others(self) -> list[Session]:
        """The workbenches, other than this one, that have the dataset open now."""
        out = []
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.json")):
            if path == self._path:
                continue
            session = _read_if_held(path)
            if session is not None:
                out.append(session)
        return out

    def close(self) -> None:
        global _current
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self._path.unlink()
        os.close(self._fd)
        self._fd = self._path = None
        _current = None


def _read_if_held(path: Path) -> Session | None:
    """The session in `path` if its workbench still runs (it holds the lock); a leftover of
    one that ended is removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: that workbench runs
            try:
                return Session(**json.loads(os.read(fd, 65536).decode("utf-8")))
            except (ValueError, TypeError, UnicodeDecodeError):
                return None
        with contextlib.suppress(OSError):
            path.unlink()  # nobody holds it: its workbench has ended
        return None
    finally:
        os.close(fd)


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def _tty() -> str | None:
    for stream in (sys.stdin, sys.stdout):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if stream.isatty():
                return os.ttyname(stream.fileno())
    return None
