"""Request bodies have a size limit: a 5 MB burn body is 413 problem+json, read no further,
and changes nothing, whether its length is declared or it comes in chunks.

These requests are written by hand over a socket, the answer read while the body is still
going out.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import asyncpg
import httpx

from tests.api.conftest import RunningApi, make_minted, new_tenant

FIVE_MB = 5 * 1024 * 1024
CHUNK = 64 * 1024


async def _post_big(
    url: str, path: str, headers: dict[str, str], chunked: bool
) -> tuple[int, dict]:
    """POST a 5 MB JSON body, a chunk at a time, and read the answer as soon as it comes."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {FIVE_MB}"
    head = [f"POST {path} HTTP/1.1", f"Host: {address.netloc}", framing,
            "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())

    async def send_body() -> None:
        sent = 0
        try:
            while sent < FIVE_MB:
                piece = b"x" * CHUNK
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
                await writer.drain()
                sent += CHUNK
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the server stopped reading

    sender = asyncio.create_task(send_body())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
    finally:
        sender.cancel()
        writer.close()
    return int(status_line.split()[1]), json.loads(body)


async def test_oversized_bodies_are_413_and_change_nothing(
    running_api: RunningApi, client: httpx.AsyncClient, pool: asyncpg.Pool,
    admin: asyncpg.Connection,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    [ticket] = tenant.seeded.ticket_ids
    await make_minted(admin, [ticket])
    path = f"/v1/tickets/{ticket}/burn"
    for chunked in (False, True):
        status, problem = await _post_big(
            running_api.url, path, tenant.post_headers(f"oversized-{chunked}"), chunked
        )
        assert status == 413, problem
        assert problem["type"] == "urn:chainworker:problem:payload-too-large"
        assert await admin.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant.id
        ) == 0
    assert await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id
    ) == 0
    # An ordinary body is still fine.
    ok = await client.post(path, json={"reason": "refund"}, headers=tenant.post_headers())
    assert ok.status_code == 202, ok.text
