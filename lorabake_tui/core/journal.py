"""The one journal for every change lorabake makes to a user's dataset.

An operation is recorded (with everything needed to reverse it) before any file is touched,
each file change is atomic, and the entry is marked done at the end. So after a crash each
file is either before or after, and the entry left in an "applying" state says how to roll it
back. Undo/redo replay entries; a file changed by someone else since is a conflict that is
reported and left alone, never overwritten.

Layout: <root>/.lorabake/journal/<id>.json and blobs/<sha256> (file contents by hash).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .atomic import atomic_write_bytes, atomic_write_text, fsync_dir, rename_noreplace
from .errors import LorabakeError

STATE_DIRNAME = ".lorabake"

# Entry states. "applying", "undoing" and "redoing" only survive a crash.
APPLYING, DONE, UNDOING, UNDONE, REDOING, ROLLED_BACK = (
    "applying", "done", "undoing", "undone", "redoing", "rolled-back")
IN_FLIGHT = (APPLYING, UNDOING, REDOING)


@dataclass(frozen=True, slots=True)
class Rename:
    """Rename/move a file or folder (paths relative to the dataset root). Never replaces."""
    src: str
    dst: str

    def to_json(self) -> dict:
        return {"kind": "rename", "src": self.src, "dst": self.dst}


@dataclass(frozen=True, slots=True)
class Write:
    """Replace (or create, when before is None) a file's bytes.
    `before`/`after` are sha256 hex digests; the bytes live in blobs/."""
    path: str
    before: str | None
    after: str

    def to_json(self) -> dict:
        return {"kind": "write", "path": self.path, "before": self.before, "after": self.after}


Change = Rename | Write


def _change_from_json(d: dict) -> Change:
    if d["kind"] == "rename":
        return Rename(d["src"], d["dst"])
    if d["kind"] == "write":
        return Write(d["path"], d["before"], d["after"])
    raise ValueError(f"unknown change kind {d['kind']!r}")


@dataclass(slots=True)
class Entry:
    id: int
    op: str  # machine name: "balance", "set-repeats", "tags", ...
    label: str  # what the user sees in history and undo messages
    state: str
    created: str
    changes: list[Change]
    conflicts: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "op": self.op, "label": self.label, "state": self.state,
                "created": self.created, "changes": [c.to_json() for c in self.changes],
                "conflicts": self.conflicts}

    @classmethod
    def from_json(cls, d: dict) -> Entry:
        return cls(d["id"], d["op"], d["label"], d["state"], d["created"],
                   [_change_from_json(c) for c in d["changes"]], list(d.get("conflicts", [])))


class ConflictError(LorabakeError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


class Journal:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.state_dir = self.root / STATE_DIRNAME
        self.dir = self.state_dir / "journal"
        self.blobs = self.dir / "blobs"

    # ---- reading -------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.glob("*.json"):
            try:
                out.append(Entry.from_json(json.loads(p.read_text("utf-8"))))
            except (ValueError, KeyError, OSError) as exc:
                raise LorabakeError(f"journal entry {p} is damaged: {exc}",
                                    "move it out of .lorabake/journal to continue") from exc
        out.sort(key=lambda e: e.id)
        return out

    def interrupted(self) -> Entry | None:
        """An operation a crash or kill left half done, if any."""
        return next((e for e in self.entries() if e.state in IN_FLIGHT), None)

    def can_undo(self) -> Entry | None:
        return next((e for e in reversed(self.entries()) if e.state == DONE), None)

    def can_redo(self) -> Entry | None:
        entries = self.entries()
        last_done = max((e.id for e in entries if e.state == DONE), default=0)
        return next((e for e in entries if e.state == UNDONE and e.id > last_done), None)

    def blob(self, digest: str) -> bytes:
        return (self.blobs / digest).read_bytes()

    # ---- recording -----------------------------------------------------------------------
    def store_blob(self, data: bytes) -> str:
        """Keep bytes that a Write needs to go back or forth; returns their digest."""
        digest = sha256_bytes(data)
        path = self.blobs / digest
        if not path.exists():
            self.blobs.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        return digest

    def write_change(self, rel: str, new: bytes, expected_before: bytes | None) -> Write:
        """A Write from the bytes the caller read (None: the file must not exist yet)."""
        before = self.store_blob(expected_before) if expected_before is not None else None
        return Write(rel, before, self.store_blob(new))

    # ---- operations ----------------------------------------------------------------------
    def apply(self, op: str, label: str, changes: list[Change]) -> Entry:
        """Check every change, record the entry, then perform the changes in order.
        Nothing is modified if any check fails."""
        if not changes:
            raise LorabakeError("nothing to change")
        with self.locked():
            pending = self.interrupted()
            if pending is not None:
                raise LorabakeError(
                    f"an interrupted operation '{pending.label}' is still pending",
                    "roll it back first: `lorabake undo DIR` or the prompt in the workbench")
            problems = self._preflight(changes)
            if problems:
                raise ConflictError(problems[0] if len(problems) == 1 else
                                    f"{len(problems)} conflicts, first: {problems[0]}",
                                    "nothing was changed")
            self._discard_redo(keep=changes)
            entry = Entry(self._next_id(), op, label, APPLYING,
                          datetime.now(UTC).isoformat(timespec="seconds"), list(changes))
            self._save(entry)
            done: list[Change] = []
            try:
                for ch in changes:
                    self._forward(ch)
                    done.append(ch)
            except (OSError, ConflictError) as exc:
                # Someone raced us; put back what we did and forget the entry.
                for ch in reversed(done):
                    with contextlib.suppress(OSError, ConflictError):
                        self._backward(ch)
                entry.state = ROLLED_BACK
                self._save(entry)
                raise LorabakeError(f"{label} failed and was rolled back: {exc}") from exc
            entry.state = DONE
            self._save(entry)
            return entry

    def undo(self) -> Entry | None:
        if not self.dir.is_dir():
            return None  # no journal yet: nothing to undo (and nothing created)
        with self.locked():
            entry = self.can_undo()
            if entry is None:
                return None
            entry.state = UNDOING
            self._save(entry)
            return self._reverse_all(entry, UNDONE)

    def redo(self) -> Entry | None:
        if not self.dir.is_dir():
            return None
        with self.locked():
            entry = self.can_redo()
            if entry is None:
                return None
            problems = self._preflight(entry.changes)
            if problems:
                raise ConflictError(f"cannot redo '{entry.label}': {problems[0]}",
                                    "nothing was changed")
            entry.state = REDOING
            self._save(entry)
            for ch in entry.changes:
                self._forward(ch)
            entry.state = DONE
            self._save(entry)
            return entry

    def recover(self) -> Entry | None:
        """Finish an interrupted operation by putting every file back as it was before it."""
        with self.locked():
            entry = self.interrupted()
            if entry is None:
                return None
            final = UNDONE if entry.state in (UNDOING, REDOING) else ROLLED_BACK
            return self._reverse_all(entry, final)

    # ---- internals -----------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, timeout: float = 10.0) -> Iterator[None]:
        """One writer per dataset across processes (the UI and a CLI run, say)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as exc:
                    if time.monotonic() > deadline:
                        raise LorabakeError(
                            f"another lorabake process is changing {self.root}",
                            "wait for it to finish and try again") from exc
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _next_id(self) -> int:
        return max((e.id for e in self.entries()), default=0) + 1

    def _save(self, entry: Entry) -> None:
        atomic_write_text(self.dir / f"{entry.id:06d}.json",
                          json.dumps(entry.to_json(), indent=1, ensure_ascii=False))

    def _discard_redo(self, keep: list[Change]) -> None:
        """A new operation ends the redo branch, as in any editor."""
        for e in self.entries():
            if e.state in (UNDONE, ROLLED_BACK):
                (self.dir / f"{e.id:06d}.json").unlink(missing_ok=True)
        self._gc_blobs(keep)

    def _gc_blobs(self, pending: list[Change]) -> None:
        """Drop blobs no entry needs; `pending` holds those of the operation starting now."""
        if not self.blobs.is_dir():
            return
        keep: set[str] = set()
        for changes in [*(e.changes for e in self.entries()), pending]:
            for ch in changes:
                if isinstance(ch, Write):
                    keep.update(d for d in (ch.before, ch.after) if d)
        for p in self.blobs.iterdir():
            if p.name not in keep and not p.name.startswith("."):
                p.unlink(missing_ok=True)

    def _preflight(self, changes: list[Change]) -> list[str]:
        """Every reason the changes cannot be applied cleanly, in order."""
        problems: list[str] = []
        claimed: set[str] = set()
        for ch in changes:
            if isinstance(ch, Rename):
                src, dst = self._path(ch.src), self._path(ch.dst)
                if not src.exists():
                    problems.append(f"{ch.src} no longer exists")
                elif dst.exists() or dst.is_symlink():
                    problems.append(f"{ch.dst} already exists (refusing to overwrite)")
                if ch.dst in claimed:
                    problems.append(f"two changes would create {ch.dst}")
                claimed.add(ch.dst)
            else:
                if _file_sha(self._path(ch.path)) != ch.before:
                    problems.append(f"{ch.path} changed on disk since it was read")
        return problems

    def _forward(self, ch: Change) -> None:
        if isinstance(ch, Rename):
            src, dst = self._path(ch.src), self._path(ch.dst)
            if not src.exists() and dst.exists():
                return  # already applied (redo after a crash)
            dst.parent.mkdir(parents=True, exist_ok=True)
            rename_noreplace(src, dst)
            fsync_dir(dst.parent)
        else:
            path = self._path(ch.path)
            cur = _file_sha(path)
            if cur == ch.after:
                return
            if cur != ch.before:
                raise ConflictError(f"{ch.path} changed on disk since it was read")
            atomic_write_bytes(path, self.blob(ch.after))

    def _backward(self, ch: Change) -> None:
        if isinstance(ch, Rename):
            src, dst = self._path(ch.src), self._path(ch.dst)
            if src.exists() and not dst.exists():
                return  # never applied, or already reversed
            if not dst.exists():
                raise ConflictError(f"{ch.dst} is gone; cannot rename it back to {ch.src}")
            if src.exists():
                raise ConflictError(f"{ch.src} exists again; not moving {ch.dst} onto it")
            rename_noreplace(dst, src)
            fsync_dir(src.parent)
        else:
            path = self._path(ch.path)
            cur = _file_sha(path)
            if cur == ch.before:
                return
            if cur != ch.after:
                raise ConflictError(f"{ch.path} was edited after this operation; left as is")
            if ch.before is None:
                path.unlink()
                fsync_dir(path.parent)
            else:
                atomic_write_bytes(path, self.blob(ch.before))

    def _reverse_all(self, entry: Entry, final_state: str) -> Entry:
        entry.conflicts = []
        for ch in reversed(entry.changes):
            try:
                self._backward(ch)
            except ConflictError as exc:
                entry.conflicts.append(exc.message)
            except OSError as exc:
                entry.conflicts.append(f"{exc.filename or ''}: {exc.strerror}")
        entry.state = final_state
        self._save(entry)
        return entry
