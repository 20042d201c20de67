"""Crash-safe file primitives: a reader never sees half a file, a rename never replaces a
folder, a checked batch never replaces a file someone changed since it was read, and new
files get the permissions any other program would give them.

Permissions: a new file's temp file is created with mode 0o666 and the kernel narrows it by
the umask (or the folder's default ACL), exactly as for `touch` or an editor. So the umask is
never read here: os.umask can only read it by setting it, process-wide, racing any other
thread that creates a file meanwhile. A replaced file keeps its own mode.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import functools
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# Why write_batch left a target alone (see `write_batch`).
CHANGED = "changed"  # its bytes are not the ones expected
GONE = "gone"  # it was expected to exist and does not
EXISTS = "exists"  # it was expected not to exist and does
READ_ONLY = "read-only"  # nobody has write permission on it
LINK = "link"  # it is a symbolic link now

# Tests only: called with the target's path right after its final content check passed and
# just before it is replaced, to make an edit in that window. None in production.
after_final_check: Callable[[Path], None] | None = None

_NEW_FILE_MODE = 0o666  # narrowed by the umask when the file is created
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # never a FIFO wait
_CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry itself must hit the disk)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_read_only(mode: int) -> bool:
    """No write bit at all: the user's way of saying "leave this file alone". The mode bits,
    not os.access: lorabake replaces a file by renaming over it (which needs only the
    folder's permission), and as root os.access says yes to every file."""
    return mode & 0o222 == 0


def _existing_mode(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def _open_new(path: Path, mode: int | None) -> int:
    """Create `path` (O_EXCL) for writing: `mode` is the file it will replace's mode (None:
    a new file, the default mode). Created no wider than its final mode, so no other account
    can open it while the bytes go in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                 _NEW_FILE_MODE if mode is None else mode & 0o777)
    if mode is not None:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed it
        except BaseException:
            os.close(fd)
            raise
    return fd


def _open_fresh(tmp: Path | str, mode: int | None) -> int:
    """_open_new for a batch's temp file: a leftover of this very entry is ours to replace."""
    try:
        return _open_new(tmp, mode)
    except FileExistsError:
        os.unlink(tmp)
        return _open_new(tmp, mode)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via temp file + fsync + rename, so `path` holds either old or new bytes. A new
    file gets the default mode (0o666 less the umask), a replaced one keeps its mode."""
    path = Path(path)
    mode = _existing_mode(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = _open_new(tmp, mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temp file name", str(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2():
    """renameat2(RENAME_NOREPLACE) refuses to replace even an empty directory, which plain
    rename(2) silently does. Linux only; None elsewhere. Loaded on first use, not at import."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # the libc this process runs on
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _renameat2_call(src: str | Path, dst: str | Path, flags: int) -> int:
    """0 when done, else the errno (EINVAL/ENOSYS: the flag is not supported here)."""
    import ctypes

    renameat2 = _renameat2()
    if renameat2 is None:
        return errno.ENOSYS
    if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return 0
    return ctypes.get_errno()


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; raise FileExistsError if `dst` exists (never overwrite)."""
    src, dst = Path(src), Path(dst)
    err = _renameat2_call(src, dst, _RENAME_NOREPLACE)
    if err == 0:
        return
    if err == errno.EEXIST:
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    if err not in (errno.EINVAL, errno.ENOSYS):  # EINVAL/ENOSYS: fs lacks the flag
        raise OSError(err, os.strerror(err), str(src))
    # Fallback: check then rename (a small race, but still never onto a known path).
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    os.rename(src, dst)


def _exchange(a: str | Path, b: str | Path) -> bool:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE). False where the filesystem
    or the system cannot (NFS, some FUSE, not Linux)."""
    err = _renameat2_call(a, b, _RENAME_EXCHANGE)
    if err == 0:
        return True
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))  # ENOENT comes out as FileNotFoundError


@functools.cache
def _syncfs():
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page of the filesystem holding `path`: one call instead of one fsync
    per file when thousands of small files were just written."""
    fn = _syncfs()
    fd = os.open(path, os.O_RDONLY)
    try:
        if fn is None or fn(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a regular file's bytes, not following a link; None when it is missing."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    try:
        return _sha_fd(fd)
    finally:
        os.close(fd)


def _sha_fd(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _final_check(path: Path, expect: str) -> tuple[str | None, os.stat_result | None]:
    """(why `path` must be left alone, or None; its stat as read) for a target that must
    still hold the bytes whose sha256 is `expect`."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return GONE, None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            return LINK, None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return CHANGED, None
        if is_read_only(st.st_mode):
            return READ_ONLY, None
        digest = _sha_fd(fd)
    finally:
        os.close(fd)
    return (None if digest == expect else CHANGED), st


def _still_the_same(old: str | Path, seen: os.stat_result, expect: str) -> bool:
    """Is `old` (what the exchange took out) the file the final check read? The same inode,
    size and mtime say so without reading it again (its ctime moved with the rename, so it
    cannot be compared); anything else is read and compared by content."""
    st = os.lstat(old)
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == \
            (seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns):
        return True
    return stat.S_ISREG(st.st_mode) and file_sha256(old) == expect


def _put_checked(tmp: str | Path, path: Path, expect: str | None) -> str | None:
    """Move `tmp` to `path` if `path` still holds `expect` (None: if it does not exist).
    Returns why it was left alone (and `tmp` removed), or None once `tmp` is in place."""
    hook = after_final_check
    if expect is None:
        if os.path.lexists(path):
            os.unlink(tmp)
            return EXISTS
        if hook is not None:
            hook(path)
        try:
            rename_noreplace(tmp, path)  # atomic: never onto a file created meanwhile
        except FileExistsError:
            os.unlink(tmp)
            return EXISTS
        return None
    why, seen = _final_check(path, expect)
    if why is not None or seen is None:
        os.unlink(tmp)
        return why or CHANGED
    if hook is not None:
        hook(path)
    # Swap rather than rename over: what `path` held at the very instant of the swap is then
    # at `tmp`, and is checked once more. An edit that landed after the final check (an
    # editor's save by rename, a write that changed the size or mtime) is put back and
    # reported. What remains possible: a write through a handle opened earlier, into the
    # old file after this check, or one that keeps size and mtime and lands in the few
    # microseconds between the final check and the swap.
    try:
        swapped = _exchange(tmp, path)
    except FileNotFoundError:  # removed since the final check
        os.unlink(tmp)
        return GONE
    if not swapped:
        # No atomic swap on this filesystem: plain rename. An edit landing between the
        # final check above and this rename (microseconds) is replaced: the residual race.
        os.replace(tmp, path)
        return None
    if _still_the_same(tmp, seen, expect):
        _done_with(tmp)
        return None
    _exchange(tmp, path)  # the other writer's file goes back where it was
    os.unlink(tmp)
    return CHANGED


def write_batch(items: list[tuple[Path, bytes]], tag: str,
                expect: Sequence[str | None] | None = None, *,
                chained: Sequence[bool] | None = None) -> list[tuple[int, str]]:
    """Replace many files so that each is whole (old or new) after a crash, fast.

    All temp files are written first, made durable with one filesystem sync, then moved
    onto their targets one by one; the directories are synced at the end. Temp files are
    named `.<name>.<tag>.tmp` so that a crash's leftovers can be found with `temp_path`.

    `expect` (one per item): the sha256 of the bytes the target must still hold, checked by
    content right before that target is replaced (None: the target must not exist). A
    target that fails is left alone. Returns [(item index, CHANGED | GONE | EXISTS |
    READ_ONLY | LINK)] for those; without `expect`, every target is replaced unchecked.

    `chained` (one per item; inside `bytes_kept_elsewhere` only): whether item k may be
    written into the file item k-1's swap took out (default: every item may). The caller
    that must tell afterwards which file a crash may have left half-reused says no where it
    could not.
    """
    if not items:
        return []
    if expect is not None and _KEPT.get() is not None:
        return _write_kept(items, tag, expect, chained)
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in items:
            tmp = temp_path(path, tag)
            mode = _existing_mode(path)
            fd = _open_fresh(tmp, mode)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            written.append((tmp, path))
        sync_filesystem(items[0][0].parent)
    except BaseException:
        for tmp, _ in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    refused: list[tuple[int, str]] = []
    for i, (tmp, path) in enumerate(written):
        if expect is None:
            os.replace(tmp, path)
            continue
        why = _put_checked(tmp, path, expect[i])
        if why is not None:
            refused.append((i, why))
    for d in {p.parent for _, p in written}:
        fsync_dir(d)
    return refused


# ---- batches whose bytes the caller keeps durably (the journal) ----------------------------
#
# Creating a file is what costs most on some filesystems (ext4 without a journal scans past
# every inode freed in the last 30 s, so a second 10k-file edit pays for the first one's).
# When the journal already holds every byte on disk, nothing needs to be durable before a
# swap: a file swapped out of its place can be reused as the next temp file, so a batch
# creates about one file per folder, and one filesystem sync at the end of the
# `bytes_kept_elsewhere` block makes it all durable. The reused file is overwritten from the
# start, never emptied first: freeing its block costs a synchronous discard on disks mounted
# with `discard` (most of what a plain rewrite pays per file). A power cut can then leave in
# the target the previous item's old bytes, or a mix of old and new, which the caller tells
# from an edit because it knows which file was reused: the previous item's, in one batch.


class _Kept:
    """The state of one `bytes_kept_elsewhere` block."""

    __slots__ = ("spare", "owners")

    def __init__(self) -> None:
        self.spare: str | Path | None = None  # what the last swap took out, at its temp name
        self.owners: dict[str, tuple[int, int]] = {}  # folder -> (uid, gid) of a new file

    def drop_spare(self) -> None:
        if self.spare is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.spare)
            self.spare = None


_KEPT: contextvars.ContextVar[_Kept | None] = contextvars.ContextVar("_KEPT", default=None)


@contextlib.contextmanager
def bytes_kept_elsewhere(root: Path) -> Iterator[None]:
    """For the journal: every checked `write_batch` inside holds bytes that the caller has
    already made durable (old and new), so it may replace files without syncing first; a
    crash (power loss) can then leave a replaced file short or empty, and the caller puts it
    right from its copy. One sync of the filesystem holding `root` at the end, before the
    caller may record the change as done."""
    kept = _Kept()
    token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(token)
        kept.drop_spare()
        sync_filesystem(root)


def _done_with(tmp: str | Path) -> None:
    """The old file a successful swap left at `tmp`: kept as the next temp file inside a
    `bytes_kept_elsewhere` block, else removed."""
    kept = _KEPT.get()
    if kept is None:
        os.unlink(tmp)
        return
    kept.drop_spare()
    kept.spare = tmp


def _write_kept(items: list[tuple[Path, bytes]], tag: str, expect: Sequence[str | None],
                chained: Sequence[bool] | None) -> list[tuple[int, str]]:
    """write_batch inside `bytes_kept_elsewhere`: one file at a time, temp file written
    (into the previous item's swapped-out file when it can be reused), checked, swapped."""
    kept = _KEPT.get()
    assert kept is not None
    kept.drop_spare()  # an earlier batch's: only the previous item's is reused
    refused: list[tuple[int, str]] = []
    for i, (path, data) in enumerate(items):
        name = os.fspath(path)  # strings from here on: pathlib costs more than the syscalls
        folder, base = os.path.split(name)
        tmp = os.path.join(folder, f".{base}.{tag}.tmp")  # as temp_path names it
        mode = _existing_mode(name)
        spare, kept.spare = kept.spare, None
        reused = False
        if spare is not None:
            # (a new file gets a new file's mode: not the spare's)
            if mode is None or (chained is not None and not chained[i]):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(spare)
            else:
                reused = _reuse(spare, tmp, data, mode, kept)
        if not reused:
            _write_new(tmp, data, mode, kept)
        # (the target is passed as given: the after_final_check hook is handed it)
        why = _put_checked(tmp, path, expect[i])
        if why is not None:
            refused.append((i, why))
    return refused


def _write_new(tmp: str, data: bytes, mode: int | None, kept: _Kept) -> None:
    fd = _open_fresh(tmp, mode)
    try:
        folder = os.path.dirname(tmp)
        if folder not in kept.owners:
            st = os.fstat(fd)
            kept.owners[folder] = (st.st_uid, st.st_gid)
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)


_F_SETLEASE = getattr(fcntl, "F_SETLEASE", None)


def _reuse(spare: str | Path, tmp: str, data: bytes, mode: int, kept: _Kept) -> bool:
    """Move the file the previous swap took out to `tmp` and write `data` over it (in that
    order: a crash then leaves, at any temp name, its own bytes or bytes recovery removes).
    Only a file nobody can tell from a new one is reused: a regular file with no other name,
    no extended attributes (ACLs, labels), owned as a new file in that folder would be, and
    open nowhere else (a write lease is granted only then), so a reader that opened it
    before the swap keeps reading the old bytes. False: `spare` is gone, write a new one."""
    try:
        os.replace(spare, tmp)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(spare)
        return False
    ok = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            st = _reusable(fd, os.path.dirname(tmp), kept)
            if st is not None:
                ok = True
                try:
                    _write_all(fd, data)  # from offset 0, over the old bytes: see the note above
                    if st.st_size > len(data):
                        os.ftruncate(fd, len(data))
                    # (a write by a non-root user clears the set-id bits: set them again)
                    if st.st_mode & 0o7777 != mode or mode & 0o6000:
                        os.fchmod(fd, mode)
                finally:
                    fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        finally:
            os.close(fd)
    if not ok:
        os.unlink(tmp)
    return ok


def _reusable(fd: int, folder: str, kept: _Kept) -> os.stat_result | None:
    """See `_reuse`: its stat if it may be reused, and then the caller holds a write lease
    on `fd`, to release."""
    if _F_SETLEASE is None:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 \
            or kept.owners.get(folder) != (st.st_uid, st.st_gid):
        return None
    try:
        if os.listxattr(fd):
            return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
    try:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_WRLCK)
    except OSError:
        return None  # open elsewhere, not ours to lease, or leases are off
    return st


def remove_checked(path: Path, expect: str) -> str | None:
    """Delete `path` if it still holds the bytes whose sha256 is `expect`; else why not.
    (Between this final check and the unlink, microseconds, an edit would be lost.)"""
    why, _ = _final_check(path, expect)
    if why is not None:
        return why
    if after_final_check is not None:
        after_final_check(path)
    os.unlink(path)
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def temp_path(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}.tmp")
