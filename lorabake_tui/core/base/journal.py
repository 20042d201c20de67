"""The one journal for every change lorabake makes to a user's dataset.

An operation is recorded (with everything needed to reverse it) before any file is touched,
each file change is atomic, and the entry is marked done at the end. So after a crash each
file is either before or after, and the entry left in an "applying" state says how to roll it
back. Undo/redo replay entries; a file changed by someone else since is a conflict that is
reported and left alone, never overwritten.

Every write is checked by content right before its target is replaced (atomic.write_batch):
the target must still hold the bytes the caller read, which are the bytes kept for undo. A
file that fails (edited meanwhile, read-only, a link) is left out of the operation and
listed in `entry.skipped` (or refuses the whole operation). A caption that is a link to a
file inside the dataset is written at its target, so the link stays a link; a link to
anything else is left alone.

Layout in <root>/.lorabake/journal/: <id>.json (the entry, written once), <id>.state (its
state and conflicts, small, rewritten at each transition; also the writes left out while
applying, when there were any) and <id>.blobs (the old and new
bytes of the files it writes, packed in one file so a 10k-caption edit is two files, not 20k).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .atomic import (
    CHANGED,
    EXISTS,
    GONE,
    LINK,
    READ_ONLY,
    atomic_write_text,
    bytes_kept_elsewhere,
    file_sha256,
    fsync_dir,
    is_read_only,
    remove_checked,
    rename_noreplace,
    temp_path,
    write_batch,
)
from .errors import LorabakeError
from .project_files import ProjectFiles
from .sessions import current_origin

# Entry states. "applying", "undoing" and "redoing" only survive a crash.
APPLYING, DONE, UNDOING, UNDONE, REDOING, ROLLED_BACK = (
    "applying", "done", "undoing", "undone", "redoing", "rolled-back")
IN_FLIGHT = (APPLYING, UNDOING, REDOING)

# Tests only: called with the entry once it and its bytes are on disk (state "applying"),
# before the first file is touched. None in production.
after_recorded: Callable[[Entry], None] | None = None


@dataclass(frozen=True, slots=True)
class Rename:
    """Rename/move a file or folder (paths relative to the dataset root). Never replaces."""
    src: str
    dst: str

    def to_json(self) -> dict:
        return {"kind": "rename", "src": self.src, "dst": self.dst}


@dataclass(frozen=True, slots=True)
class Write:
    """Replace (or create, when before is None) a file's bytes. `before`/`after` are sha256
    digests of bytes kept in the entry's blob pack; `stat` is (size, mtime_ns) of the file as
    it was read, a cheap first filter for a change made since (the content is checked again
    right before the file is replaced). `via`: the link the caller named, when `path` is
    that link's target."""
    path: str
    before: str | None
    after: str
    stat: tuple[int, int] | None = None
    via: str | None = None

    @property
    def name(self) -> str:
        """The path the caller gave (what messages name)."""
        return self.via or self.path

    def to_json(self) -> dict:
        d = {"kind": "write", "path": self.path, "before": self.before, "after": self.after}
        if self.stat is not None:
            d["stat"] = list(self.stat)
        if self.via is not None:
            d["via"] = self.via
        return d


Change = Rename | Write


def _change_from_json(d: dict) -> Change:
    if d["kind"] == "rename":
        return Rename(d["src"], d["dst"])
    if d["kind"] == "write":
        stat = tuple(d["stat"]) if d.get("stat") else None
        return Write(d["path"], d["before"], d["after"], stat,  # type: ignore[arg-type]
                     d.get("via"))
    raise ValueError(f"unknown change kind {d['kind']!r}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ChangeSet:
    """Changes being assembled for one operation, with the bytes its writes need."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.blobs: dict[str, bytes] = {}

    def rename(self, src: str, dst: str) -> None:
        self.changes.append(Rename(src, dst))

    def write(self, rel: str, new: bytes, old: bytes | None,
              stat: tuple[int, int] | None = None) -> None:
        """`old`: the bytes the caller read (None: the file must not exist yet)."""
        before = self._keep(old) if old is not None else None
        self.changes.append(Write(rel, before, self._keep(new), stat))

    def _keep(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        self.blobs[digest] = data
        return digest

    def __len__(self) -> int:
        return len(self.changes)


@dataclass(slots=True)
class Entry:
    id: int
    op: str  # machine name: "balance", "set-repeats", "tags", ...
    label: str  # what the user sees in history and undo messages
    state: str
    created: str
    changes: list[Change]
    conflicts: list[str] = field(default_factory=list)  # left alone by the last undo/rollback
    skipped: list[str] = field(default_factory=list)  # left out, with the reason
    blob_index: dict[str, tuple[int, int]] = field(default_factory=dict)
    origin: str | None = None  # who made it (sessions.current_origin); older entries: None
    # indexes (in <id>.json's changes) of writes the content check left out while applying;
    # `changes` holds the others only
    left_out: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "op": self.op, "label": self.label, "state": self.state,
                "created": self.created, "changes": [c.to_json() for c in self.changes],
                "conflicts": self.conflicts, "skipped": self.skipped,
                "blobs": {k: list(v) for k, v in self.blob_index.items()},
                "origin": self.origin}

    @classmethod
    def from_json(cls, d: dict) -> Entry:
        return cls(d["id"], d["op"], d["label"], d["state"], d["created"],
                   [_change_from_json(c) for c in d["changes"]], list(d.get("conflicts", [])),
                   list(d.get("skipped", [])),
                   {k: (v[0], v[1]) for k, v in d.get("blobs", {}).items()}, d.get("origin"))

    @property
    def tmp_tag(self) -> str:
        return f"lorabake-{self.id}"


class ConflictError(LorabakeError):
    pass


def _file_sha(path: str | Path) -> str | None:
    """sha256 of the file's bytes, None when it is missing; never through a link (a link
    gives a value no digest equals)."""
    try:
        return file_sha256(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "<a link>"
        raise


def stat_signature(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, None when it is missing: how a write tells whether the
    file changed since it was read (the journal's preflight, the project's config)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns)


class Journal:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self._root_s = str(self.root)
        files = ProjectFiles(self.root)
        self.state_dir = files.state
        self.dir = files.journal
        self._lock_path = files.lock
        self._cache: dict[str, tuple[tuple[int, int], Entry]] = {}

    # ---- reading -------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.glob("*.json"):
            out.append(self._load(p))
        out.sort(key=lambda e: e.id)
        return out

    def _load(self, p: Path) -> Entry:
        # big entries (thousands of writes) are parsed once, not at every undo check; the
        # cached one is never handed out (callers change state and conflicts)
        sig = stat_signature(p)
        hit = self._cache.get(p.name)
        try:
            if hit is not None and hit[0] == sig:
                base = hit[1]
            else:
                base = Entry.from_json(json.loads(p.read_text("utf-8")))
                if sig is not None:
                    self._cache[p.name] = (sig, base)
            entry = dataclasses.replace(base, conflicts=list(base.conflicts),
                                        skipped=list(base.skipped))
            side = p.with_suffix(".state")
            if side.exists():
                state = json.loads(side.read_text("utf-8"))
                entry.state = state["state"]
                entry.conflicts = list(state.get("conflicts", []))
                if state.get("left_out"):  # optional: only when a write was left out
                    entry.left_out = [int(i) for i in state["left_out"]]
                    gone = set(entry.left_out)
                    entry.changes = [c for i, c in enumerate(base.changes) if i not in gone]
                    entry.skipped = list(state.get("skipped", entry.skipped))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise LorabakeError(f"journal entry {p} is damaged: {exc}",
                                "move it out of .lorabake/journal to continue") from exc
        return entry

    def interrupted(self) -> Entry | None:
        """An operation a crash or kill left half done, if any. Asked before every change:
        the small <id>.state files answer it, so the (possibly large) entries are parsed
        only for one in flight, or one whose state file is missing or unreadable."""
        for p, state in self._states():
            if state in IN_FLIGHT:
                return self._load(p)
        return None

    def _states(self) -> list[tuple[Path, str]]:
        """(entry file, state) of every entry, oldest first, from the small state files; an
        entry is parsed only when its state file is missing (killed before it) or damaged."""
        if not self.dir.is_dir():
            return []
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                state = json.loads(p.with_suffix(".state").read_text("utf-8"))["state"]
            except (OSError, ValueError, KeyError, TypeError):
                state = self._load(p).state
            out.append((p, state))
        return out

    def can_undo(self) -> Entry | None:
        # from the state files: only the entry found is parsed
        p = next((p for p, state in reversed(self._states()) if state == DONE), None)
        return None if p is None else self._load(p)

    def can_redo(self) -> Entry | None:
        states = self._states()
        last = max((i for i, (_, state) in enumerate(states) if state == DONE), default=-1)
        p = next((p for p, state in states[last + 1:] if state == UNDONE), None)
        return None if p is None else self._load(p)

    def _read_blobs(self, entry: Entry) -> dict[str, bytes]:
        """All of an entry's blobs in one read (thousands of captions: one file)."""
        if not entry.blob_index:
            return {}
        pack = self._blob_path(entry.id).read_bytes()
        out = {}
        for digest, (offset, length) in entry.blob_index.items():
            data = pack[offset:offset + length]
            if len(data) != length:
                raise LorabakeError(f"journal blobs of entry {entry.id} are truncated")
            out[digest] = data
        return out

    # ---- operations ----------------------------------------------------------------------
    def apply(self, op: str, label: str, changes: ChangeSet | list[Change], *,
              skip_conflicts: bool = False) -> Entry:
        """Check every change, record the entry, then perform the changes in order.

        A change that cannot apply cleanly (a file changed since it was read, seen by its
        size and mtime now or by its content right before it is replaced; a read-only file;
        a link out of the dataset; a rename onto an existing path) refuses the whole
        operation with nothing modified (rolled back), or with `skip_conflicts` leaves just
        that file out and lists it in `entry.skipped`.
        """
        cs = changes if isinstance(changes, ChangeSet) else _as_changeset(changes)
        if not cs.changes:
            raise LorabakeError("nothing to change")
        with self.locked():
            pending = self.interrupted()
            if pending is not None:
                raise LorabakeError(
                    f"an interrupted operation '{pending.label}' is still pending",
                    "roll it back first: `lorabake undo DIR` or the prompt in the workbench")
            todo, problems = self._preflight(cs.changes, redo=False)
            if problems and not skip_conflicts:
                raise ConflictError(_first(problems), "nothing was changed")
            if not todo:
                raise ConflictError(f"every file was left alone: {problems[0]}",
                                    "nothing was changed")
            self._discard_redo()
            entry = Entry(self._next_id(), op, label, APPLYING,
                          datetime.now(UTC).isoformat(timespec="seconds"), todo,
                          skipped=problems, origin=current_origin())
            self._save_blobs(entry, cs.blobs)
            self._save(entry)
            self._save_state(entry)
            if after_recorded is not None:
                after_recorded(entry)
            try:
                refused = self._run_forward(entry, entry.changes, fresh=True)
                if refused:
                    self._leave_out(entry, refused)
                    if not skip_conflicts:
                        raise ConflictError(_first([m for _, m in refused]))
            except (OSError, ConflictError) as exc:
                # Someone raced us: put back what we did and keep the entry as rolled back.
                self._reverse_all(entry, ROLLED_BACK)
                raise LorabakeError(f"{label} failed and was rolled back: {exc}") from exc
            if not entry.changes:  # the content check left every file out: nothing done
                entry.state = ROLLED_BACK
                self._save_state(entry)
                raise ConflictError(f"every file was left alone: {entry.skipped[0]}",
                                    "nothing was changed")
            entry.state = DONE
            self._save_state(entry)
            return entry

    def undo(self) -> Entry | None:
        if not self.dir.is_dir():
            return None  # no journal yet: nothing to undo (and nothing created)
        with self.locked():
            entry = self.can_undo()
            if entry is None:
                return None
            entry.state = UNDOING
            self._save_state(entry)
            return self._reverse_all(entry, UNDONE)

    def redo(self) -> Entry | None:
        """Replay the last undone entry. Refused, nothing changed, if a file is not as undo
        left it; a file that changes during the redo itself is left alone, as a conflict."""
        if not self.dir.is_dir():
            return None
        with self.locked():
            entry = self.can_redo()
            if entry is None:
                return None
            _, problems = self._preflight(entry.changes, redo=True)
            if problems:
                raise ConflictError(f"cannot redo '{entry.label}': {problems[0]}",
                                    "nothing was changed")
            entry.state = REDOING
            entry.conflicts = []
            self._save_state(entry)
            refused = self._run_forward(entry, entry.changes)
            entry.conflicts = [msg for _, msg in refused]
            entry.state = DONE
            self._save_state(entry)
            return entry

    def recover(self) -> Entry | None:
        """Finish an interrupted operation by putting every file back as it was before it."""
        with self.locked():
            entry = self.interrupted()
            if entry is None:
                return None
            final = UNDONE if entry.state in (UNDOING, REDOING) else ROLLED_BACK
            return self._reverse_all(entry, final, crashed=True)

    # ---- internals -----------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, timeout: float = 10.0) -> Iterator[None]:
        """One writer per dataset across processes (the UI and a CLI run, say)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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

    def _blob_path(self, entry_id: int) -> Path:
        return self.dir / f"{entry_id:06d}.blobs"

    def _next_id(self) -> int:
        # entry files are named by id: no need to parse them
        ids = [int(p.stem) for p in self.dir.glob("*.json") if p.stem.isdigit()]
        return max(ids, default=0) + 1

    def _save(self, entry: Entry) -> None:
        atomic_write_text(self.dir / f"{entry.id:06d}.json",
                          json.dumps(entry.to_json(), ensure_ascii=False))

    def _save_state(self, entry: Entry) -> None:
        """A transition rewrites only this small file, not the (possibly large) entry."""
        state: dict = {"state": entry.state, "conflicts": entry.conflicts}
        if entry.left_out:
            state["left_out"] = entry.left_out
            state["skipped"] = entry.skipped
        atomic_write_text(self.dir / f"{entry.id:06d}.state",
                          json.dumps(state, ensure_ascii=False))

    def _save_blobs(self, entry: Entry, blobs: dict[str, bytes]) -> None:
        needed = {d for ch in entry.changes if isinstance(ch, Write)
                  for d in (ch.before, ch.after) if d}
        if not needed:
            return
        # streamed into one file: new images can be hundreds of MB, never join them in memory
        path = self._blob_path(entry.id)
        tmp = path.with_name(path.name + ".tmp")
        offset = 0
        with open(tmp, "wb") as fh:
            for digest in sorted(needed):
                data = blobs[digest]
                entry.blob_index[digest] = (offset, len(data))
                fh.write(data)
                offset += len(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(self.dir)

    def _discard_redo(self) -> None:
        """A new operation ends the redo branch, as in any editor."""
        for p, state in self._states():
            if state in (UNDONE, ROLLED_BACK):
                p.unlink(missing_ok=True)
                p.with_suffix(".state").unlink(missing_ok=True)
                p.with_suffix(".blobs").unlink(missing_ok=True)
                self._cache.pop(p.name, None)

    def _preflight(self, changes: list[Change], *, redo: bool
                   ) -> tuple[list[Change], list[str]]:
        """(changes that can apply cleanly, reasons for those that cannot).

        A new operation: a file is checked by its (size, mtime) when the caller gave them
        (the content is checked when it is replaced), and a write to a link becomes a write
        to its target. A redo: by content, a file may already be as the entry left it (an
        undo that left it alone), and a link where a file was written is a problem."""
        ok: list[Change] = []
        problems: list[str] = []
        written: dict[str, Write] = {}
        claimed: set[str] = set()  # created by an earlier rename or write of the operation
        vacated: set[str] = set()  # moved away by an earlier rename of the same operation
        for ch in changes:
            if isinstance(ch, Rename):
                src, dst = self._path(ch.src), self._path(ch.dst)
                if not os.path.lexists(src):
                    problems.append(f"{ch.src} no longer exists")
                elif os.path.lexists(dst):
                    problems.append(f"{ch.dst} already exists (refusing to overwrite)")
                elif ch.dst in claimed or ch.dst in written:
                    problems.append(f"two changes would create {ch.dst}")
                else:
                    claimed.add(ch.dst)
                    vacated.add(ch.src)
                    ok.append(ch)
                continue
            path = os.path.join(self._root_s, ch.path)  # a string: pathlib costs more here
            try:
                st: os.stat_result | None = os.lstat(path)
            except FileNotFoundError:
                st = None
            if not redo and ch.path not in vacated and st is not None \
                    and stat_mod.S_ISLNK(st.st_mode):
                ch, problem = self._resolve_link(ch)
                if problem is not None:
                    problems.append(problem)
                    continue
                path = os.path.join(self._root_s, ch.path)  # the link's target, a file
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    st = None
            first = written.get(ch.path)
            if first is not None:
                if (first.before, first.after) != (ch.before, ch.after):
                    problems.append(_same_file(ch, first))
                continue  # the very same edit twice (two links to one file): once is enough
            if redo and st is not None and stat_mod.S_ISREG(st.st_mode) \
                    and _file_sha(path) == ch.after:
                clean = True  # already done: the redo skips it
            elif ch.before is None:
                clean = (st is None or ch.path in vacated) and ch.path not in claimed
            elif st is not None and stat_mod.S_ISLNK(st.st_mode):
                problems.append(_refusal(ch, LINK))
                continue
            elif st is not None and is_read_only(st.st_mode):
                problems.append(_refusal(ch, READ_ONLY))
                continue
            elif not redo and ch.stat is not None:
                clean = st is not None and (st.st_size, st.st_mtime_ns) == ch.stat
            else:
                clean = _file_sha(path) == ch.before
            if clean:
                written[ch.path] = ch
                ok.append(ch)
            else:
                problems.append(_refusal(ch, EXISTS if ch.before is None else CHANGED))
        return ok, problems

    def _resolve_link(self, ch: Write) -> tuple[Write, str | None]:
        """A write to a link: to its target when that is a file inside the dataset (so the
        link stays a link), else left alone with the reason. Only the last path component
        counts: a concept folder may itself be a link to anywhere."""
        path = self._path(ch.path)
        if not os.path.islink(path):
            return ch, None
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root):
            return ch, f"{ch.path}: is a link to a file outside the dataset: left alone"
        if not real.is_file():
            return ch, f"{ch.path}: is a link to a missing file: left alone"
        return dataclasses.replace(ch, path=os.path.relpath(real, self.root),
                                   via=ch.path), None

    def _leave_out(self, entry: Entry, refused: list[tuple[int, str]]) -> None:
        """Writes the content check refused while applying: out of the entry (undo, redo and
        rollback never touch them) and into its skipped list, saved in <id>.state."""
        gone = {i for i, _ in refused}
        entry.left_out = sorted(gone)
        entry.skipped = entry.skipped + [msg for _, msg in refused]
        entry.changes = [c for i, c in enumerate(entry.changes) if i not in gone]
        self._save_state(entry)

    def _run_forward(self, entry: Entry, changes: list[Change], *, fresh: bool = False
                     ) -> list[tuple[int, str]]:
        """Apply in order; consecutive writes go through one batch (one filesystem sync).
        Each write's target must still hold its `before` bytes (or not exist) right before
        it is replaced; returns (index in `changes`, reason) for those left alone.
        `fresh`: preflight just checked every file, so none can be applied already."""
        batch: list[tuple[int, Path, bytes, str | None]] = []
        refused: list[tuple[int, str]] = []
        blobs = self._read_blobs(entry)

        def flush() -> None:
            # a file swapped out is reused for the next change only: see `_torn`
            out = write_batch([(p, data) for _, p, data, _ in batch], entry.tmp_tag,
                              [want for *_, want in batch],
                              chained=[k > 0 and batch[k - 1][0] == i - 1
                                       for k, (i, *_) in enumerate(batch)])
            refused.extend((batch[k][0], _refusal(changes[batch[k][0]], why))
                           for k, why in out)
            batch.clear()

        # the blob pack holds every byte on disk: files are replaced without a sync each,
        # and one sync at the end comes before the caller marks the entry done
        with bytes_kept_elsewhere(self.root):
            for i, ch in enumerate(changes):
                if isinstance(ch, Write):
                    path = self._path(ch.path)
                    if fresh or _file_sha(path) != ch.after:  # redo skips what is done
                        if not fresh:
                            path.parent.mkdir(parents=True, exist_ok=True)
                        batch.append((i, path, blobs[ch.after], ch.before))
                    continue
                flush()
                src, dst = self._path(ch.src), self._path(ch.dst)
                if not os.path.lexists(src) and os.path.lexists(dst):
                    continue  # already applied (redo after a crash)
                dst.parent.mkdir(parents=True, exist_ok=True)
                rename_noreplace(src, dst)
                fsync_dir(dst.parent)
            flush()
        return refused

    def _reverse_all(self, entry: Entry, final_state: str, *, crashed: bool = False) -> Entry:
        """Put every file back as before `entry`, newest change first; record conflicts.
        `crashed`: the entry was found interrupted (see `_torn`)."""
        if entry.state in IN_FLIGHT:
            self._clean_temp_files(entry)  # a crash may have left some behind
        entry.conflicts = []
        blobs = self._read_blobs(entry)
        # (index, change, path, bytes to put back, sha256 the file must still hold)
        restore: list[tuple[int, Write, Path, bytes, str]] = []
        delete: list[tuple[Write, Path, str]] = []

        def flush() -> None:
            # writes are batched, but never reordered across a rename; each file must still
            # hold what the entry wrote right before it is put back
            # a file swapped out is reused for the next change (the one before it) only: see
            # `_torn`; never while recovering, when what is swapped out may be a torn file
            with bytes_kept_elsewhere(self.root):
                out = write_batch([(p, data) for *_, p, data, _ in restore], entry.tmp_tag,
                                  [want for *_, want in restore],
                                  chained=[k > 0 and not crashed and restore[k - 1][0] == i + 1
                                           for k, (i, *_) in enumerate(restore)])
            entry.conflicts.extend(_refusal(restore[k][1], why, undo=True) for k, why in out)
            for ch, path, want in delete:
                why = remove_checked(path, want)
                if why is not None:
                    entry.conflicts.append(_refusal(ch, why, undo=True))
            for d in {p.parent for _, p, _ in delete}:
                fsync_dir(d)
            restore.clear()
            delete.clear()

        for i in reversed(range(len(entry.changes))):
            ch = entry.changes[i]
            try:
                if isinstance(ch, Write):
                    path = self._path(ch.path)
                    if os.path.islink(path):
                        raise ConflictError(_refusal(ch, LINK, undo=True))
                    cur = _file_sha(path)
                    if cur == ch.before:
                        continue
                    if cur != ch.after and not (crashed and self._torn(entry, i, blobs)):
                        raise ConflictError(
                            f"{ch.name} was edited after this operation; left as is")
                    if is_read_only(os.stat(path).st_mode):
                        raise ConflictError(_refusal(ch, READ_ONLY))
                    if ch.before is None:
                        delete.append((ch, path, cur))
                    else:
                        restore.append((i, ch, path, blobs[ch.before], cur))
                else:
                    flush()
                    self._rename_back(ch)
            except ConflictError as exc:
                entry.conflicts.append(exc.message)
            except OSError as exc:
                entry.conflicts.append(f"{exc.filename or ''}: {exc.strerror}")
        flush()
        entry.state = final_state
        self._save_state(entry)
        return entry

    def _torn(self, entry: Entry, i: int, blobs: dict[str, bytes]) -> bool:
        """After a power cut, a file the interrupted entry was writing (change `i`) may hold
        neither its old nor its new bytes: files are replaced without a sync each (the
        journal holds the bytes), and the file swapped out for one change is overwritten
        with the next one's bytes (atomic.bytes_kept_elsewhere). So it may be empty, cut at a
        block boundary or zero-filled where the filesystem had no time to write, or hold
        what the reused file held before: the old bytes of the change before it (applying,
        redoing) or the new bytes of the change after it (undoing, rolling back), whole, cut
        to the new length, or under the new bytes. That is taken as the entry's own
        unfinished write and put back from the journal; anything else is someone's edit,
        left alone."""
        ch = entry.changes[i]
        assert isinstance(ch, Write)
        meant = [blobs[d] for d in (ch.before, ch.after) if d is not None]
        prior: list[bytes | None] = [None]
        if i > 0 and isinstance(prev := entry.changes[i - 1], Write) and prev.before:
            prior.append(blobs[prev.before])
        if i + 1 < len(entry.changes) and isinstance(nxt := entry.changes[i + 1], Write):
            prior.append(blobs[nxt.after])
        most = max(len(b) for b in meant + [p or b"" for p in prior])
        try:
            fd = os.open(self._path(ch.path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode) or st.st_size > most:
                return False
            cur = os.read(fd, most + 1)
        finally:
            os.close(fd)
        return any(_torn_form(cur, m, p) for m in meant for p in prior)

    def _clean_temp_files(self, entry: Entry) -> None:
        """Remove what a crash left of this entry's temp files, but put back someone else's
        edit that one of them holds (see `_put_back`)."""
        suffix = f".{entry.tmp_tag}.tmp"
        writes = {temp_path(self._path(ch.path), entry.tmp_tag): ch
                  for ch in entry.changes if isinstance(ch, Write)}
        forward = entry.state in (APPLYING, REDOING)
        for d in {p.parent for p in writes}:
            with contextlib.suppress(FileNotFoundError), os.scandir(d) as it:
                for e in it:
                    if not (e.name.startswith(".") and e.name.endswith(suffix)):
                        continue
                    ch = writes.get(Path(e.path))
                    if ch is not None and self._put_back(ch, Path(e.path), forward):
                        continue
                    os.unlink(e.path)

    def _put_back(self, ch: Write, tmp: Path, forward: bool) -> bool:
        """A file is replaced by swapping it with its temp file, then the file taken out is
        checked; if someone had edited it, it is swapped back. A crash between the two swaps
        leaves that edit in the temp file and the entry's bytes in its place: put the edit
        back. (A temp file holding neither the old nor the new bytes with the target NOT yet
        replaced is a half-written one, and is removed.)"""
        ours = ch.after if forward else ch.before
        if ours is None or _file_sha(tmp) in (ch.before, ch.after):
            return False
        if _file_sha(self._path(ch.path)) != ours:
            return False
        os.replace(tmp, self._path(ch.path))
        return True

    def _rename_back(self, ch: Rename) -> None:
        # lexists: a link is moved as a link, even one whose target does not resolve from
        # where it was moved to
        src, dst = self._path(ch.src), self._path(ch.dst)
        if os.path.lexists(src) and not os.path.lexists(dst):
            return  # never applied, or already reversed
        if not os.path.lexists(dst):
            raise ConflictError(f"{ch.dst} is gone; cannot rename it back to {ch.src}")
        if os.path.lexists(src):
            raise ConflictError(f"{ch.src} exists again; not moving {ch.dst} onto it")
        rename_noreplace(dst, src)
        fsync_dir(src.parent)


_BLOCK = 4096


def _torn_form(cur: bytes, meant: bytes, prior: bytes | None = None) -> bool:
    """Could `cur` be what a crash left of writing `meant` (over a file that held `prior`)?
    Empty; or, cut where a block ends or at either length (a user's edit that cuts text
    off ends anywhere, so it is not mistaken for one), pieces that each hold `meant`'s or
    `prior`'s bytes at that place, or their start followed by zeros (data that never
    reached the disk); a piece ends where a block or either text ends."""
    texts = [meant] if prior is None else [meant, prior]
    n = len(cur)
    if cur == meant or n > max(map(len, texts)):
        return False
    if not cur:
        return True
    if n % _BLOCK and n not in map(len, texts) and cur[-1] != 0:
        return False
    cuts = sorted({0, n, *range(_BLOCK, n, _BLOCK), *(len(t) for t in texts if len(t) < n)})
    for s, e in zip(cuts, cuts[1:], strict=False):
        head = cur[s:e].rstrip(b"\0")
        if not any(t[s:s + len(head)] == head for t in texts):
            return False
    return True


def _first(problems: list[str]) -> str:
    return problems[0] if len(problems) == 1 else \
        f"{len(problems)} conflicts, first: {problems[0]}"


def _refusal(ch: Change, why: str, *, undo: bool = False) -> str:
    """Why a write was left alone, as the user reads it (naming the path they gave)."""
    name = ch.name if isinstance(ch, Write) else ch.dst
    if why == READ_ONLY:
        return f"{name}: read-only: left alone (chmod u+w to let lorabake edit it)"
    if why == LINK:
        return f"{name}: is a link now: left alone"
    if why == EXISTS:
        return f"{name} already exists (refusing to overwrite)"
    if undo:
        return f"{name} was edited after this operation; left as is"
    if why == GONE:
        return f"{name} was removed since it was read"
    return f"{name} changed on disk since it was read"


def _same_file(ch: Write, first: Write) -> str:
    return (f"{ch.name}: the same file as {first.name} (a link), which this operation "
            f"already changes differently: left alone")


def _as_changeset(changes: list[Change]) -> ChangeSet:
    cs = ChangeSet()
    if any(isinstance(c, Write) for c in changes):
        raise ValueError("writes need their bytes: build them with a ChangeSet")
    cs.changes = list(changes)
    return cs
