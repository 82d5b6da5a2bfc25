"""Bad input gets a proper JSON-RPC error, and the node keeps serving and producing blocks."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

GOOD = {"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": [{"commitment": "processed"}]}


@pytest.fixture
async def http(localnet):
    async with httpx.AsyncClient(base_url=localnet.rpc_url, timeout=10) as client:
        yield client


async def _slot(http) -> int:
    return (await http.post("", json=GOOD)).json()["result"]


async def _error(http, payload, *, raw: bytes | None = None) -> dict:
    response = (
        await http.post("", content=raw) if raw is not None else await http.post("", json=payload)
    )
    assert response.status_code == 200
    return response.json()["error"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", -32700),
        (b"", -32700),
        (b"[]", -32600),
        (b"42", -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "getSlot"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "noSuchMethod"}', -32601),
    ],
)
async def test_malformed_requests(http, raw, code):
    assert (await _error(http, None, raw=raw))["code"] == code


@pytest.mark.parametrize(
    "params",
    [
        ("getBalance", ["not a pubkey"]),
        ("getBalance", [42]),
        ("getBalance", []),
        ("getBalance", {"pubkey": "x"}),
        ("getBalance", ["11111111111111111111111111111111", {"commitment": "sometimes"}]),
        ("getAccountInfo", ["11111111111111111111111111111111", {"encoding": "hex"}]),
        ("getSignatureStatuses", [["1" * 88] * 257]),
        ("getSignatureStatuses", ["not a list"]),
        ("getMultipleAccounts", [["11111111111111111111111111111111"] * 101]),
        ("getMinimumBalanceForRentExemption", [-1]),
        ("getBlock", [1, {"commitment": "processed"}]),
        ("getProgramAccounts", ["11111111111111111111111111111111", {"filters": [{"x": 1}]}]),
        ("sendTransaction", [12345]),
        ("sendTransaction", ["!!!", {"encoding": "base64"}]),
        ("sendTransaction", ["0OIl", {"encoding": "base58"}]),
        ("sendTransaction", [base64.b64encode(b"garbage").decode(), {"encoding": "base64"}]),
        ("sendTransaction", [base64.b64encode(bytes(1300)).decode(), {"encoding": "base64"}]),
        ("sendTransaction", ["A" * 5000, {"encoding": "base64"}]),
        ("simulateTransaction", [base64.b64encode(bytes(64)).decode(), {"encoding": "base64"}]),
        ("requestAirdrop", ["11111111111111111111111111111111", "lots"]),
    ],
)
async def test_invalid_params(http, params):
    method, arguments = params
    error = await _error(http, {"jsonrpc": "2.0", "id": 7, "method": method, "params": arguments})
    assert error["code"] == -32602, error
    assert error["message"]


async def test_oversized_transaction_message(http):
    error = await _error(
        http,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "sendTransaction",
            "params": [base64.b64encode(bytes(1233)).decode(), {"encoding": "base64"}],
        },
    )
    assert "too large" in error["message"]


async def test_batches(http):
    before = await _slot(http)
    batch = [GOOD, {"jsonrpc": "2.0", "id": 2, "method": "nope"}, "junk"]
    answers = (await http.post("", json=batch)).json()
    assert answers[0]["result"] >= before
    assert answers[1]["error"]["code"] == -32601
    assert answers[2]["error"]["code"] == -32600
    huge = (await http.post("", json=[GOOD] * 1001)).json()
    assert huge["error"]["code"] == -32600
    allowed = (await http.post("", json=[GOOD] * 1000)).json()
    assert len(allowed) == 1000
    too_big = await http.post("", content=b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == -32600


async def test_node_survives_and_clock_keeps_running(http):
    for raw in (b"\xff\xfe", b'{"jsonrpc":"2.0","id":1,"method":"getSlot","params":"x"}'):
        await http.post("", content=raw)
    assert (await http.get("")).status_code == 405
    first = await _slot(http)
    await asyncio.sleep(0.2)
    assert await _slot(http) > first
