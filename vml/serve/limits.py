"""A limit on request bodies: 413 before the app reads more than ``max_body`` bytes,
whether the client declares its size (Content-Length) or streams it (chunked)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

from vml.errors import human_size

DEFAULT_MAX_BODY = 16 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: refuse a body over ``max_body`` bytes with 413 and a JSON
    ``detail`` saying the limit. A declared Content-Length over it is refused before
    anything is read; otherwise the bytes are counted as the app receives them."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(send, int(declared))
            return
        received = 0

        async def counted_receive() -> dict:
            # Raised inside the app, where its exception handling answers 413 (raised
            # out of it, its error middleware would already have answered 500).
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, self.detail(received))
            return message

        await self.app(scope, counted_receive, send)

    def detail(self, size: int) -> str:
        """What a 413 says: the limit, and what to do."""
        return (
            f"the request body is over the limit of {human_size(self.max_body)} ({size:,} bytes or more; "
            "send fewer rows per request, or start ml serve with a larger --max-body)"
        )

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps({"detail": self.detail(size)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
