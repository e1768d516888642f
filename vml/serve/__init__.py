"""``ml serve``: a model's predictions over HTTP.

Light on purpose: the CLI imports this layer's command at start-up, and FastAPI,
uvicorn and torch load only when ``serve`` is called."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vml.errors import UsageError

if TYPE_CHECKING:
    from vml.serve.source import Served

EXTRA = "ml serve needs the serve extra (pip install 'vml[serve]')"


def serve(served: Served, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve ``served`` over HTTP on ``host:port`` until interrupted; ``options``:
    ``max_body`` (bytes), ``threads`` (torch's, per prediction: 1), ``access_log``, ``out`` and ``err`` (where the start line
    and the warning go)."""
    require_extra()
    from vml.serve.limits import DEFAULT_MAX_BODY
    from vml.serve.server import run_server

    run_server(served, host, port, max_body=options.pop("max_body", DEFAULT_MAX_BODY), **options)


def require_extra() -> None:
    """``UsageError`` naming the extra when FastAPI, uvicorn or python-multipart is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        try:  # python-multipart (form uploads); before 0.0.13 its module was multipart
            import python_multipart  # noqa: F401
        except ImportError:
            import multipart  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"{EXTRA}; {exc.name or 'a part of it'} is not installed") from None
