"""Slow-loris answers: a body that trickles in byte by byte, or never comes."""

from __future__ import annotations

import asyncio

import httpx

from tests.localnet.helpers import post, request

BYTE_SECONDS = 0.02


async def test_trickle_outlasts_a_read_timeout_without_tripping_it(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    node.set_faults(
        endpoint=1,
        slowloris_rate=1.0,
        slowloris_mode="trickle",
        slowloris_byte_seconds=BYTE_SECONDS,
    )
    loop = asyncio.get_running_loop()
    # A 0.3 s timeout per read never fires: each byte comes well within it.
    async with httpx.AsyncClient(timeout=0.3) as http:
        started = loop.time()
        async with http.stream("POST", node.rpc_urls[1], json=request("getSlot")) as response:
            assert response.status_code == 200
            chunks = [chunk async for chunk in response.aiter_raw()]
        elapsed = loop.time() - started
    body = b"".join(chunks)
    assert isinstance(httpx.Response(200, content=body).json()["result"], int)
    assert len(chunks) >= 5  # it came in pieces, not at once
    assert elapsed >= (len(body) - 1) * BYTE_SECONDS * 0.9 > 0.3
    assert "result" in (await post(node.rpc_url, request("getSlot"), seconds=0.3)).json()


async def _body_within(http: httpx.AsyncClient, url: str, seconds: float) -> bool:
    """Whether the body follows the headers within `seconds`."""
    async with http.stream("POST", url, json=request("getSlot")) as response:
        assert response.status_code == 200 and int(response.headers["content-length"]) > 0
        try:
            await asyncio.wait_for(response.aread(), seconds)
        except TimeoutError:
            return False
        return True


async def test_headers_only_never_sends_the_body(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    node.set_faults(endpoint=1, slowloris_rate=1.0, slowloris_mode="headers_only")
    async with httpx.AsyncClient(timeout=5) as http:
        assert not await _body_within(http, node.rpc_urls[1], 0.5)
        assert await _body_within(http, node.rpc_url, 0.5)
    node.clear_faults(endpoint=1)  # the endpoint was not stuck on the abandoned answer
    assert "result" in (await post(node.rpc_urls[1], request("getSlot"))).json()


async def test_slowloris_rate_is_a_fraction(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    node.set_faults(endpoint=2, slowloris_rate=0.5, slowloris_mode="headers_only")
    async with httpx.AsyncClient(timeout=5) as http:
        arrived = [await _body_within(http, node.rpc_urls[2], 0.1) for _ in range(12)]
    assert 0 < arrived.count(True) < 12
