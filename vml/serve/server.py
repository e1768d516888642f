"""Run the app: load the model, bind the address, say where it listens, serve until
Ctrl-C (or SIGTERM), which uvicorn turns into a graceful stop."""

from __future__ import annotations

import errno
import socket
import sys
from typing import TextIO

import uvicorn

from vml.errors import UsageError
from vml.serve.app import create_app
from vml.serve.limits import BodyLimit
from vml.serve.predictor import Predictor
from vml.serve.source import Served

EVERY_INTERFACE = ("0.0.0.0", "::", "")


def run_server(
    served: Served,
    host: str,
    port: int,
    max_body: int,
    threads: int = 1,
    access_log: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    """Serve ``served`` on ``host:port`` until interrupted, with ``threads`` torch
    threads per prediction. The port is bound, then the model loads (once); the start
    line goes to ``out`` once uvicorn serves."""
    sock = bind(host, port)  # first: a port in use is said before the model loads
    import torch

    # One thread per prediction by default: the requests already run in parallel in the
    # thread pool. On 2 cores (bench_serve.py, 3 runs) torch's default of 2 threads gave
    # a digits row a p50 of 1.8-1.9 ms against 2.1-2.4 ms but a p99 of 7.4-8.1 ms against
    # 3.5-7.1 ms, and on a busy machine a p99 of 29.6 ms against 4.7 ms.
    torch.set_num_threads(threads)
    try:
        predictor = Predictor(served)
    except BaseException:
        sock.close()
        raise
    app = BodyLimit(create_app(predictor), max_body)
    if host in EVERY_INTERFACE:
        print(
            f"ml: warning: listening on every interface ({host or '0.0.0.0'}): anyone who can reach this "
            "machine can use the model, with no authentication (--host 127.0.0.1 keeps it local)",
            file=err,
            flush=True,
        )
    config = uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="off")
    _Server(config, start_line(predictor, sock), out).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does: by then Ctrl-C is
    uvicorn's graceful stop."""

    def __init__(self, config: uvicorn.Config, line: str, out: TextIO) -> None:
        super().__init__(config)
        self.line, self.out = line, out

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        print(self.line, file=self.out, flush=True)


def start_line(predictor: Predictor, sock: socket.socket) -> str:
    """``serving run NAME, NET on WHAT, at http://HOST:PORT (...)``."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    info = predictor.info()
    takes = info["input"]
    what = (
        f"{takes['width']}x{takes['height']} images"
        if takes["type"] == "image"
        else f"rows of {len(takes['columns'])} columns"
    )
    served = f"model {info['model']} (run {info['run']})" if info["model"] else f"run {info['run']}"
    return (
        f"serving {served}, {info['network']} on {what}, at http://{shown}:{port}"
        " (POST /predict, GET /health, /info, /docs; Ctrl-C stops)"
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), or ``UsageError``
    saying why not and what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(
            f"cannot listen on --host {host!r}: {exc} (give an address like 127.0.0.1)"
        ) from None
    except OverflowError:
        raise UsageError(f"--port {port} is not a port (use 1 to 65535, or 0 for a free one)") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use (pick another with --port, or stop what listens there)"
            ) from None
        if exc.errno == errno.EACCES:
            raise UsageError(f"no permission to listen on port {port} (use a port above 1023)") from None
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror} (check --host and --port)"
        ) from None
    sock.set_inheritable(True)
    return sock
