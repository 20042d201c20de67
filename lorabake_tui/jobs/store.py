"""The job store: the `Job` row and the registry, one SQLite file in the user's state dir
that the UI, the CLI, the supervisor and every job's runner read and write at the same time.

WAL mode lets readers go on while one process writes; every write is one short
`BEGIN IMMEDIATE` transaction and waits (busy timeout) rather than failing when another
process holds the lock. The database only records what the processes report: `reconcile()`
checks it against the process table, so a job never stays "running" after its process died
(the stale-pid complaint about other tools' job databases); what a finished job's run folder
says about how it ended is outcome.py's.

One job is one run folder: a resume is a new attempt of the same job (`begin_attempt`), the
row's status, times, pids and exit code are the current attempt's and `attempts` keeps the
earlier ones. Rows from before that (schema 1 made a new job per resume, `resume_of` the
old one) stay readable; `superseded_by` finds their later attempts so that none of them is
resumed again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.base.errors import LorabakeError
from ..core.run.folder import TRAIN_LOG, RunFolder
from .outcome import OUTCOMES, finish_fields, kohya_finish_fields
from .paths import db_path, ensure_state_dir
from .procs import is_alive

ACTIVE = ("running", "stopping")
FINISHED = OUTCOMES
STATUSES = ("queued", *ACTIVE, *FINISHED)
RESUMABLE = ("stopped", "failed", "crashed")
KINDS = ("lorabake", "kohya", "render")
GPU_KINDS = ("lorabake", "render")  # kinds we start: they hold their GPUs while active
# a job is marked running before its runner exists; give the spawn this long to report a pid
START_GRACE_S = 60.0
BUSY_TIMEOUT_S = 15.0
# 1: the jobs table; 2: `attempts` (earlier attempts of the job, a JSON list)
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'lorabake',
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    run_dir TEXT NOT NULL DEFAULT '',
    log_path TEXT,
    workdir TEXT,
    command TEXT,
    gpus TEXT NOT NULL DEFAULT '',
    position INTEGER,
    resume INTEGER NOT NULL DEFAULT 0,
    resume_of TEXT,
    attempts TEXT NOT NULL DEFAULT '[]',
    pid INTEGER,
    pid_ctime REAL,
    pgid INTEGER,
    child_pid INTEGER,
    child_ctime REAL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    stop_requested REAL,
    exit_code INTEGER,
    last_message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""
# columns added after schema 1, added to an older database on open; each has a default, so
# rows written before (and by an older lorabake, which never names them) stay valid
_ADDED_COLUMNS = {"attempts": "TEXT NOT NULL DEFAULT '[]'"}


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """An earlier attempt of a job: when it ran and how it ended (its first message line)."""

    started: float | None
    ended: float | None
    status: str
    exit_code: int | None
    message: str = ""

    @classmethod
    def from_json(cls, data: Any) -> AttemptRecord | None:
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            return None
        return cls(_num(data.get("started")), _num(data.get("ended")), data["status"],
                   data["exit_code"] if isinstance(data.get("exit_code"), int) else None,
                   str(data.get("message") or ""))

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "ended": self.ended, "status": self.status,
                "exit_code": self.exit_code, "message": self.message}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass(frozen=True, slots=True)
class Job:
    """One row. Times are unix seconds. `pid`/`pid_ctime`/`pgid` are the runner's (the
    wrapper that waits for the trainer); `child_pid`/`child_ctime` the trainer's."""

    seq: int
    id: str
    kind: str
    name: str
    status: str
    config: str  # the immutable snapshot the trainer reads
    source: str  # the config file the user submitted (for display)
    run_dir: str
    log_path: str | None  # kohya: the followed console log
    workdir: str | None
    command: list[str] | None  # the trainer's argv before CONFIG/--resume
    gpus: str
    position: int | None
    resume: bool  # start the trainer with --resume (every attempt after the first)
    resume_of: str | None  # schema 1 only: the job an older resume row continued
    attempts: tuple[AttemptRecord, ...]  # the earlier attempts, oldest first
    pid: int | None
    pid_ctime: float | None
    pgid: int | None
    child_pid: int | None
    child_ctime: float | None
    created: float
    started: float | None
    ended: float | None
    stop_requested: float | None
    exit_code: int | None
    last_message: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def attempt(self) -> int:
        """Which attempt the row's status is about: 1, then 2 after the first resume, ..."""
        return len(self.attempts) + 1

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def events_path(self) -> Path:
        return self.folder.events

    @property
    def has_state(self) -> bool:
        return self.folder.has_state()

    def log_file(self, prefer: str = TRAIN_LOG) -> Path | None:
        """What `jobs log` shows: the followed log (kohya), else `prefer`, else train.log,
        else stdout.log."""
        if self.kind == "kohya" and self.log_path:
            return Path(self.log_path)
        return self.folder.log_file(prefer)


_COLUMNS = tuple(f.name for f in fields(Job))
_WRITABLE = frozenset(_COLUMNS) - {"seq", "id"}
_REF = re.compile(r"^(?:j-?)?0*(\d+)$", re.IGNORECASE)


def _row_to_job(row: sqlite3.Row) -> Job:
    data = {k: row[k] for k in _COLUMNS}
    data["command"] = json.loads(data["command"]) if data["command"] else None
    data["resume"] = bool(data["resume"])
    data["attempts"] = _decode_attempts(data["attempts"])
    return Job(**data)


def _decode_attempts(text: str | None) -> tuple[AttemptRecord, ...]:
    try:
        items = json.loads(text or "[]")
    except ValueError:
        return ()  # a damaged list loses the history of attempts, never the job
    records = (AttemptRecord.from_json(x) for x in items) if isinstance(items, list) else ()
    return tuple(r for r in records if r is not None)


def _encode(field: str, value: Any) -> Any:
    if field == "command" and value is not None:
        return json.dumps(list(value))
    if field == "resume":
        return int(bool(value))
    if field == "attempts":
        return json.dumps([a.to_json() for a in value])
    if isinstance(value, Path):
        return str(value)
    return value


# ---- the registry --------------------------------------------------------------------------

class Registry:
    """A connection to jobs.sqlite. Safe to share between threads of one process (one lock);
    every process opens its own. `reconcile=True` (the default, for the UI and the CLI)
    checks running jobs against the process table on open."""

    def __init__(self, path: Path | str | None = None, *, reconcile: bool = True) -> None:
        if path is None:
            path = db_path(ensure_state_dir())
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        # isolation_level=None: no implicit transactions; writes use BEGIN IMMEDIATE below
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        try:
            self._setup()
        except sqlite3.OperationalError as exc:
            self._db.close()
            raise LorabakeError(f"job registry {self.path}: {exc}",
                                "another lorabake process holds it; try again") from None
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise LorabakeError(f"job registry {self.path} is damaged: {exc}",
                                "move it aside; an empty one is made next time") from None
        if reconcile:
            self.reconcile()

    def _setup(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("PRAGMA journal_mode = WAL")  # not on every filesystem (NFS)
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self.transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(stmt)
                # an older database: CREATE IF NOT EXISTS left its table as it was
                have = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
                for name, decl in _ADDED_COLUMNS.items():
                    if name not in have:
                        self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so two processes never both read-then-write
        (the other waits up to the busy timeout)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- reading ---------------------------------------------------------------------------
    def jobs(self, *, statuses: Iterable[str] | None = None,
             kinds: Iterable[str] | None = None) -> list[Job]:
        """Jobs, oldest first."""
        sql, args = "SELECT * FROM jobs", []
        where = []
        if statuses is not None:
            st = list(statuses)
            where.append(f"status IN ({','.join('?' * len(st))})")
            args += st
        if kinds is not None:
            ks = list(kinds)
            where.append(f"kind IN ({','.join('?' * len(ks))})")
            args += ks
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [_row_to_job(r) for r in rows]

    def queue(self) -> list[Job]:
        """Queued jobs in the order they will start (lanes permitting)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status = 'queued' "
                                    "ORDER BY position, seq").fetchall()
        return [_row_to_job(r) for r in rows]

    def find(self, ref: str) -> Job | None:
        """By id (`j-0012`), or by its number (`12`, `j12`)."""
        ref = str(ref).strip()
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (ref,)).fetchone()
            if row is None and (m := _REF.match(ref)):
                row = self._db.execute("SELECT * FROM jobs WHERE seq = ?",
                                       (int(m.group(1)),)).fetchone()
        return _row_to_job(row) if row is not None else None

    def get(self, ref: str) -> Job:
        job = self.find(ref)
        if job is None:
            raise LorabakeError(f"no job {ref!r}", "see `lorabake jobs list` for the ids")
        return job

    # ---- writing ---------------------------------------------------------------------------
    def add(self, **values: Any) -> Job:
        """A new job; `status` is required. Queued jobs go to the end of the queue."""
        bad = set(values) - _WRITABLE
        if bad:
            raise ValueError(f"unknown job fields: {sorted(bad)}")
        if values.get("status") not in STATUSES:
            raise ValueError(f"bad status {values.get('status')!r}")
        values.setdefault("created", time.time())
        with self.transaction() as db:
            if values["status"] == "queued" and values.get("position") is None:
                values["position"] = db.execute(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM jobs WHERE status = 'queued'"
                ).fetchone()[0]
            cols = ["id", *values]
            # the id comes from the row number, which only exists once the row does
            cur = db.execute(
                f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [f"tmp-{os.getpid()}-{time.monotonic_ns()}",
                 *(_encode(k, v) for k, v in values.items())])
            seq = cur.lastrowid
            db.execute("UPDATE jobs SET id = ? WHERE seq = ?", (f"j-{seq:04d}", seq))
        return self.get(f"j-{seq:04d}")

    def update(self, job_id: str, **values: Any) -> None:
        self.transition(job_id, None, **values)

    def transition(self, job_id: str, from_statuses: Iterable[str] | None,
                   **values: Any) -> bool:
        """Set `values` on the job if its status is one of `from_statuses` (None: any);
        False when it was not (another process got there first)."""
        bad = set(values) - _WRITABLE
        if bad:
            raise ValueError(f"unknown job fields: {sorted(bad)}")
        if "status" in values and values["status"] not in STATUSES:
            raise ValueError(f"bad status {values['status']!r}")
        if not values:
            return True
        sets = ", ".join(f"{k} = ?" for k in values)
        args: list[Any] = [_encode(k, v) for k, v in values.items()] + [job_id]
        sql = f"UPDATE jobs SET {sets} WHERE id = ?"
        if from_statuses is not None:
            st = list(from_statuses)
            sql += f" AND status IN ({','.join('?' * len(st))})"
            args += st
        with self.transaction() as db:
            return db.execute(sql, args).rowcount > 0

    def begin_attempt(self, job_id: str, from_statuses: Iterable[str], *, start: bool,
                      gpus: str | None = None, now: float | None = None) -> Job | None:
        """The job's next attempt, in one transaction: the current one goes into `attempts`
        and the row starts over, running (`start`) or queued at the end of the queue, with
        --resume. None when its status is not one of `from_statuses` (any more)."""
        now = time.time() if now is None else now
        st = list(from_statuses)
        with self.transaction() as db:
            row = db.execute(f"SELECT * FROM jobs WHERE id = ? AND status IN "
                             f"({','.join('?' * len(st))})", [job_id, *st]).fetchone()
            if row is None:
                return None
            job = _row_to_job(row)
            done = AttemptRecord(job.started, job.ended, job.status, job.exit_code,
                                 (job.last_message.splitlines() or [""])[0])
            values: dict[str, Any] = {
                "status": "running" if start else "queued", "resume": True,
                "attempts": (*job.attempts, done), "started": now if start else None,
                "ended": None, "exit_code": None, "stop_requested": None, "last_message": "",
                "pid": None, "pid_ctime": None, "pgid": None, "child_pid": None,
                "child_ctime": None, "position": None}
            if gpus is not None:
                values["gpus"] = gpus
            if not start:
                values["position"] = db.execute(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM jobs WHERE status = 'queued'"
                ).fetchone()[0]
            db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                       [*(_encode(k, v) for k, v in values.items()), job_id])
        return self.get(job_id)

    def superseded_by(self, job: Job) -> Job | None:
        """A later job row of the same run folder (an attempt made before attempts were kept
        in one row, or a second job pointed at the folder): `job` is history, not the run's
        current state."""
        if not job.run_dir:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE seq > ? AND kind = ? AND (run_dir = ? OR resume_of = ?)"
                " ORDER BY seq DESC LIMIT 1", (job.seq, job.kind, job.run_dir, job.id)
            ).fetchone()
        return _row_to_job(row) if row is not None else None

    def delete(self, job_id: str, *, only_statuses: Iterable[str] | None = None) -> bool:
        sql, args = "DELETE FROM jobs WHERE id = ?", [job_id]
        if only_statuses is not None:
            st = list(only_statuses)
            sql += f" AND status IN ({','.join('?' * len(st))})"
            args += st
        with self.transaction() as db:
            return db.execute(sql, args).rowcount > 0

    def move(self, job_id: str, delta: int) -> int:
        """Move a queued job `delta` places (negative: towards the front); its new index."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = 'queued' "
                                            "ORDER BY position, seq")]
            if job_id not in ids:
                raise LorabakeError(f"{job_id} is not queued", "only queued jobs can be moved")
            i = ids.index(job_id)
            j = max(0, min(len(ids) - 1, i + delta))
            ids.insert(j, ids.pop(i))
            db.executemany("UPDATE jobs SET position = ? WHERE id = ?",
                           [(n + 1, jid) for n, jid in enumerate(ids)])
        return j

    # ---- the process table -----------------------------------------------------------------
    def reconcile(self, *, now: float | None = None) -> list[Job]:
        """Settle every running/stopping job whose process is gone (or whose pid now belongs
        to another process): the exit code its runner recorded, else what its events say,
        else `crashed` with its last output. Returns the jobs it changed."""
        now = time.time() if now is None else now
        changed = []
        for job in self.jobs(statuses=ACTIVE):
            update = self._settle(job, now)
            if update and self.transition(job.id, ACTIVE, **update):
                changed.append(self.get(job.id))
        return changed

    def _settle(self, job: Job, now: float) -> dict[str, Any] | None:
        if job.kind == "kohya":
            if job.pid and is_alive(job.pid, job.pid_ctime):
                return None
            return kohya_finish_fields(job, now=now)
        if is_alive(job.pid, job.pid_ctime) or is_alive(job.child_pid, job.child_ctime):
            return None
        if job.pid is None and job.child_pid is None and \
                now - (job.started or job.created) < START_GRACE_S:
            return None  # still being spawned
        return finish_fields(job, job.folder.read_exit_code(), now=now)

