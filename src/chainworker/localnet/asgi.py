"""Raw ASGI plumbing: read a body, answer, and answer slowly (or not at all)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

MAX_REQUEST_BODY = 1024 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is over MAX_REQUEST_BODY."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _start(send: Send, status: int, length: int, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(length).encode()),
            ],
        }
    )


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    await _start(send, status, len(body), content_type)
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: Any) -> None:
    await respond(send, status, orjson.dumps(payload))


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has gone (the request body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def hold(receive: Receive, seconds: float) -> bool:
    """Wait `seconds`; False if the client went away meanwhile."""
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
        return not done
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def respond_slowly(
    send: Send,
    receive: Receive,
    body: bytes,
    content_type: bytes,
    mode: str,
    byte_seconds: float,
) -> None:
    """Status and headers at once; then the body a byte at a time ("trickle"), or never.

    Either way the answer stops as soon as the client gives up.
    """
    await _start(send, 200, len(body), content_type)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        if mode == "headers_only":
            await watcher
            return
        if not body:
            await send({"type": "http.response.body", "body": b""})
            return
        for index in range(len(body)):
            last = index == len(body) - 1
            chunk = body[index : index + 1]
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            if last:
                return
            done, _ = await asyncio.wait({watcher}, timeout=byte_seconds)
            if done:
                return
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
