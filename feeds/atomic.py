"""Writing a file a crash must not leave half written, and the lock every writer of it takes.

Every cache and state file of the project (the parquet caches, the live state) is written
here: :func:`write_atomically` takes the file's lock (:func:`file_lock`, the maintained
``filelock`` package: an OS lock that dies with its process, so a killed writer never
leaves it held), removes the temporaries an earlier killed write left beside the file
(:func:`clean_temporaries`: safe, since nobody else can be writing it), writes a temporary
file in the same folder, flushes and fsyncs it, and moves it over the file with
``os.replace``. A reader sees the old file or the new one, never a mix; two processes
writing the same file take turns.

A read-modify-write (a cache that merges new bars into what is on disk) holds the same lock
around all of it (``with file_lock(path): ...``); the lock is re-entrant within a process,
so :func:`write_atomically` inside it does not wait on itself.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import DataError

__all__ = ["clean_temporaries", "file_lock", "lock_path", "locked", "write_atomically"]

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it) ...
os.umask(_UMASK)  # ... and put back


def lock_path(path) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def file_lock(path) -> FileLock:
    """The lock of ``path`` (one object per file and process, so it is re-entrant: a
    second ``with`` in the same thread does not wait on the first)."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock), is_singleton=True)


@contextmanager
def locked(path, timeout: float | None = None):
    """Hold ``path``'s lock; with ``timeout`` (seconds) a ``DataError`` naming the file when
    another process holds it longer."""
    lock = file_lock(path)
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except Timeout:
        raise DataError(f"{path}: another process holds its lock ({lock_path(path)}) for more "
                        f"than {timeout:g} s") from None
    try:
        yield lock
    finally:
        lock.release()


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def clean_temporaries(path) -> list[Path]:
    """Remove the temporary files of writes of ``path`` that were killed (``.<name>.XXXXXXXX.tmp``
    beside it, the names ``tempfile.mkstemp`` gives them); call it holding ``path``'s lock.
    Returns what it removed."""
    path = Path(path)
    mine = re.compile(re.escape(_temporary_prefix(path)) + r"[a-z0-9_]{8}\.tmp\Z")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if mine.match(entry.name):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # gone already, or not ours to remove
    return removed


def write_atomically(path, write, fsync: bool = True, lock: bool = True) -> Path:
    """Write ``path`` through ``write(f)`` (``f`` a binary file) under its lock: into a
    temporary file beside it, flushed and (``fsync``) made durable, then moved over ``path``
    with ``os.replace``. Temporaries of earlier killed writes are removed first. On any
    failure the temporary file is removed and ``path`` is as it was. ``lock=False`` is for
    a caller that already excludes every other writer (a lock over the whole folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path) if lock else nullcontext():
        clean_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp",
                                   dir=path.parent)
        try:
            try:  # the file keeps its mode; a new one gets the usual one (not mkstemp's 0600)
                os.fchmod(fd, path.stat().st_mode & 0o7777 if path.exists()
                          else 0o666 & ~_UMASK)
            except (OSError, AttributeError):
                pass
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if fsync:
            _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
