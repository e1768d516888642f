"""Write-then-rename helpers: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vml.errors import disk_full, is_disk_full


def shared_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask: temporary files are created owner-only, but
    the files they become (checkpoints, cache entries) should be as readable as any
    other file the user creates."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a temporary file beside it, fsynced,
    renamed over it, and the rename flushed. A full disk leaves the old file and no
    temporary one, and raises ``DiskFullError`` naming the file and the free space."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, shared_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(path, len(data)) from exc
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see ``write_bytes_atomic``)."""
    write_bytes_atomic(path, text.encode("utf-8"))
