"""Crash-safe file primitives: a reader never sees half a file, a rename never replaces."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry itself must hit the disk)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via temp file + fsync + rename, so `path` holds either old or new bytes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_RENAME_NOREPLACE = 1
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


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; raise FileExistsError if `dst` exists (never overwrite)."""
    src, dst = Path(src), Path(dst)
    renameat2 = _renameat2()
    if renameat2 is not None:
        import ctypes

        rc = renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS):  # EINVAL/ENOSYS: fs lacks the flag
            raise OSError(err, os.strerror(err), str(src))
    # Fallback: check then rename (a small race, but still never onto a known path).
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    os.rename(src, dst)


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


def write_batch(items: list[tuple[Path, bytes]], tag: str) -> None:
    """Replace many files so that each is whole (old or new) after a crash, fast.

    All temp files are written first, made durable with one filesystem sync, then renamed
    over their targets; the directories are synced at the end. Temp files are named
    `.<name>.<tag>.tmp` so that a crash's leftovers can be found with `temp_path`.
    """
    if not items:
        return
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in items:
            tmp = temp_path(path, tag)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, data)
                with contextlib.suppress(FileNotFoundError):
                    os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            finally:
                os.close(fd)
            written.append((tmp, path))
        sync_filesystem(items[0][0].parent)
    except BaseException:
        for tmp, _ in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, path in written:
        os.replace(tmp, path)
    for d in {p.parent for _, p in written}:
        fsync_dir(d)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def temp_path(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}.tmp")
