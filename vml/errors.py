"""Exit codes and the errors a user sees as one line: ``ml: error: what (how to fix)``."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable


class ExitCode(enum.IntEnum):
    """Process exit codes shared by every ``ml`` command."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    INTERRUPTED = 130


class VmlError(Exception):
    """An error with a message meant for the user, not a traceback.

    ``detail`` holds optional extra lines (a source line and a caret) printed after
    the one-line message.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class UsageError(VmlError):
    """Bad input from the command line or a config file (exit code 2)."""

    exit_code = ExitCode.USAGE


class NotFoundError(VmlError):
    """A project, run or file that does not exist (exit code 3)."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(VmlError):
    """Something already exists or is in use (exit code 4)."""

    exit_code = ExitCode.CONFLICT


def did_you_mean(
    word: str, known: Iterable[str], otherwise: str, show: Callable[[str], str] = str, n: int = 1
) -> str:
    """The hint of an error about an unknown ``word``: ``did you mean X?`` naming the
    closest of ``known`` (up to ``n``, each written by ``show``), else ``otherwise``."""
    import difflib  # 10 ms: only when there is an error to explain

    close = difflib.get_close_matches(word, sorted(known), n=n + 4, cutoff=0.6)
    # Equally close names: the one sharing the longest start wins (test_ac: test_acc, not test_auc).
    score = {c: difflib.SequenceMatcher(None, word, c).ratio() for c in close}
    prefix = {c: len(os.path.commonprefix([word, c])) for c in close}
    close = sorted(close, key=lambda c: (-score[c], -prefix[c]))[:n]
    return f"did you mean {' or '.join(show(c) for c in close)}?" if close else otherwise


class DiskFullError(VmlError):
    """The disk (or a quota) filled up while a file was written. ``what`` is the message
    without its fix, for a caller that knows a better one (``ml resume NAME``)."""

    def __init__(self, what: str, fix: str = "free some space there, then run the command again") -> None:
        super().__init__(f"{what}; {fix}")
        self.what = what


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the OS saying there is no space left (ENOSPC, EDQUOT)."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: os.PathLike, needed: int | None) -> DiskFullError:
    """The error for a write of ``path`` that ran out of space: ``disk full while
    writing trainings/a/last.pt (about 12.0 MiB needed, 5.9 MiB free on /data)``.
    Call it after the partial file is removed, so the free space is what is left."""
    import shutil
    from pathlib import Path

    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    mount = folder.resolve()
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        free = f"{human_size(shutil.disk_usage(folder).free)} free on {mount}"
    except OSError:
        free = f"on {mount}"
    about = f"about {human_size(needed)} needed, " if needed else ""
    return DiskFullError(f"disk full while writing {_shown(Path(path))} ({about}{free})")


# An I/O error that SQLite does not call "full" (the WAL's shared-memory file failing
# to grow: "disk I/O error") counts as a full disk when less than this is free. The
# file grows 32 KiB at a time.
STORE_SLACK_BYTES = 64 * 1024


def store_disk_full(exc: BaseException, path: os.PathLike) -> DiskFullError | None:
    """The ``DiskFullError`` for ``exc``, a SQLite error on the store at ``path``, when
    it means the disk is full ("database or disk is full", or "disk I/O error" with
    next to nothing free); None otherwise."""
    import shutil
    import sqlite3

    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return None
    if code & 0xFF == sqlite3.SQLITE_IOERR:
        try:
            if shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free >= STORE_SLACK_BYTES:
                return None
        except OSError:
            return None
    elif code & 0xFF != sqlite3.SQLITE_FULL:
        return None
    return disk_full(path, None)


def _shown(path) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    try:
        return os.fspath(path.absolute().relative_to(os.getcwd()))
    except (ValueError, OSError):
        return os.fspath(path)


def human_size(size: int) -> str:
    """Bytes as B, KiB, MiB, GiB or TiB (as ``ml cache list`` and disk-full errors show them)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
