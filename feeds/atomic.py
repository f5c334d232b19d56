"""Replacing a file atomically: the one way this project writes a file a crash must not
leave half written (the parquet cache, the live state)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path, write, fsync: bool = True) -> Path:
    """Write ``path`` through ``write(f)`` (``f`` a binary file) into a temporary file beside
    it, flushed and (``fsync``) made durable, then moved over ``path`` with ``os.replace``.
    On any failure the temporary file is removed and ``path`` is as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
