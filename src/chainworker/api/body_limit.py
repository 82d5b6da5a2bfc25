"""Request bodies have a size limit: larger ones are 413 problem+json, never kept or parsed.

A declared Content-Length over the limit is refused before the app sees it; a chunked body
is counted as it arrives and refused once it passes the limit. Either way nothing is
parsed, recorded or queued: the API's bodies are a few hundred bytes. The rest of the body
is read and thrown away (up to DRAIN_BYTES) so the client, still sending, gets the answer
instead of a reset connection; beyond that the connection is simply closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException

from chainworker.api.problems import PROBLEM_MEDIA_TYPE, Problem

MAX_BODY_BYTES = 64 * 1024
DRAIN_BYTES = 16 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """The body passed the limit while it was being read (the API's handlers make it 413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request bodies are limited to {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413 problem+json."""

    def __init__(self, app: Asgi, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= DRAIN_BYTES:
                await _drain(receive, None)
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body"):
                        await _drain(receive, DRAIN_BYTES - seen)
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        problem = Problem(
            "payload-too-large", f"request bodies are limited to {self.max_bytes} bytes"
        )
        body = orjson.dumps(problem.body(scope.get("path")))
        await send({
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, budget: int | None) -> None:
    """Read the rest of the body and throw it away (at most `budget` bytes, if given)."""
    while budget is None or budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        if budget is not None:
            budget -= len(message.get("body", b""))
        if not message.get("more_body"):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
