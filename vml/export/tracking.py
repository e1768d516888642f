"""What vml checks of an MLflow tracking URI before MLflow gets it, and how it tells
MLflow's refusals in one line."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from vml.errors import UsageError

PROBE_SECONDS = 5.0
# MLflow's HTTP client retries a server that is not there for minutes: a server
# that does not take a connection at all is refused at once instead.
HTTP_SCHEMES = ("http", "https")
ARTIFACTS_DIR = "mlartifacts"  # beside a sqlite store's file, as `mlflow server` keeps them


def check_reachable(tracking_uri: str) -> None:
    """Refuse an http(s) URI whose server takes no connection."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in HTTP_SCHEMES or not parsed.hostname:
        return
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise UsageError(
            f"--tracking-uri {tracking_uri}: not a port number (use e.g. http://HOST:5000)"
        ) from None
    try:
        socket.create_connection((parsed.hostname, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise UsageError(
            f"--tracking-uri {tracking_uri}: no MLflow server answers there ({why}; start one with "
            "mlflow server, or check the URI)"
        ) from None


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment's artifacts go for a sqlite store: ``mlartifacts/``
    beside its file (MLflow's own default is ``./mlruns`` in the current folder);
    None elsewhere (the server decides)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri == prefix:
        return None
    database = Path(tracking_uri[len(prefix) :].split("?", 1)[0])
    return (database.resolve().parent / ARTIFACTS_DIR).as_uri()


def explain(exc: BaseException, limit: int = 200) -> str:
    """MLflow's error as one short line: its first sentence, cut at ``limit``."""
    text = str(getattr(exc, "message", None) or exc).strip()
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        return "MLflow 3 takes a folder store only with MLFLOW_ALLOW_FILE_STORE=true"
    line = text.splitlines()[0] if text else type(exc).__name__
    sentence = line.split(". ", 1)[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."
