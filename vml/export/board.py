"""``ml tensorboard``: TensorBoard on a logdir, as a child process of ``ml``, until
Ctrl-C."""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from vml.errors import UsageError
from vml.export.extras import require

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STOP_SECONDS = 10.0  # how long TensorBoard gets to stop after Ctrl-C before it is killed


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host`` now (the system picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """Refuse a port already taken at ``host`` before TensorBoard finds out."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is in use (pick another with --port, or --port 0 for a free one)"
                ) from None
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror} (check --host and --port)"
            ) from None


def command(logdir: Path, host: str, port: int) -> list[str]:
    """``tensorboard --logdir DIR --host HOST --port PORT`` with this Python's TensorBoard."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def require_tensorboard() -> None:
    """Refuse, in one line, when TensorBoard is not installed."""
    require("tensorboard", "tensorboard", "ml tensorboard")


class _Stopped(Exception):
    """SIGTERM reached ``ml tensorboard``."""


def _on_term(signum: int, frame: object) -> None:
    raise _Stopped


def run_board(logdir: Path, host: str, port: int) -> int:
    """Run TensorBoard on ``logdir`` until it ends, Ctrl-C or SIGTERM (each passed on
    to it, then ``STOP_SECONDS`` given to stop); returns its exit code (0 when
    stopped)."""
    require_tensorboard()
    check_port(host, port)
    process = subprocess.Popen(command(logdir, host, port), stdin=subprocess.DEVNULL)
    # Python dies of SIGTERM without cleaning up: TensorBoard would outlive ml.
    main = threading.current_thread() is threading.main_thread()  # where signals are handled
    previous = signal.signal(signal.SIGTERM, _on_term) if main else None
    try:
        return process.wait()
    except (KeyboardInterrupt, _Stopped) as exc:
        # A terminal's Ctrl-C reaches TensorBoard too; a signal sent to ml alone does not.
        if process.poll() is None:
            process.send_signal(signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        return 0
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:  # it did not stop in time, or a second signal came
            process.kill()
            process.wait()
