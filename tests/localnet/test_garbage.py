"""Garbage answers from one endpoint while another answers honestly."""

from __future__ import annotations

import json

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solders.keypair import Keypair

from chainworker.localnet.garbage import GARBAGE_KINDS, HUGE_INTEGERS
from tests.localnet.helpers import SOL, funded, post, request, send, sol_transfer, wait_status

PROCESSED = {"commitment": "processed"}
BATCH = [
    request(method, [PROCESSED], i)
    for i, method in enumerate(("getSlot", "getBlockHeight", "getLatestBlockhash"), 1)
]
SINGLE = request("getLatestBlockhash", [PROCESSED])


def _check_garbage(kind: str, response) -> None:
    assert response.status_code == 200
    if kind == "html":
        assert response.headers["content-type"] == "text/html"
        assert response.text.lstrip().startswith("<")
        return
    assert response.headers["content-type"] == "application/json"
    if kind == "truncated":
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
        assert response.content.startswith(b"{")
        return
    body = json.loads(response.content)
    if kind == "batch_ids":
        assert [entry.get("id") for entry in body] != [1, 2, 3]
        return
    result = body.get("result")
    if kind == "wrong_types":
        assert isinstance(result["context"]["slot"], str)
        assert isinstance(result["value"]["lastValidBlockHeight"], str)
    elif kind == "huge_integers":
        assert result["context"]["slot"] in HUGE_INTEGERS
        assert result["value"]["lastValidBlockHeight"] == result["context"]["slot"]
    elif kind == "missing_fields":
        assert (
            result is None
            or "value" not in result
            or "context" not in result
            or "slot" not in result["context"]
        )


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
async def test_each_kind_of_garbage(localnet_endpoints_faults, kind):
    node = localnet_endpoints_faults
    node.set_faults(endpoint=1, garbage_rate=1.0, garbage_kinds=[kind])
    payload = BATCH if kind == "batch_ids" else SINGLE
    for _ in range(3):
        _check_garbage(kind, await post(node.rpc_urls[1], payload))
    honest = (await post(node.rpc_url, payload)).json()
    if kind == "batch_ids":
        assert [entry["id"] for entry in honest] == [1, 2, 3]
    else:
        assert isinstance(honest["result"]["context"]["slot"], int)


async def test_huge_integers_in_signature_statuses_only(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    async with AsyncClient(node.rpc_url, commitment=Commitment("confirmed")) as client:
        payer = await funded(client)
        signature = await send(client, [sol_transfer(payer, Keypair().pubkey(), SOL)], payer)
        await wait_status(client, signature, "processed")
    node.set_faults(
        endpoint=1,
        garbage_rate=1.0,
        garbage_kinds=["huge_integers"],
        garbage_methods=["getSignatureStatuses"],
    )
    unknown = str(Keypair().sign_message(b"never sent"))
    statuses = request("getSignatureStatuses", [[str(signature), unknown]])
    for _ in range(5):
        hostile = json.loads((await post(node.rpc_urls[1], statuses)).content)["result"]
        assert hostile["context"]["slot"] >= 2**63
        assert hostile["value"][0]["slot"] >= 2**63 and hostile["value"][1] is None
        honest = (await post(node.rpc_url, statuses)).json()["result"]
        assert honest["context"]["slot"] < 2**63 and honest["value"][0]["slot"] < 2**63
        assert (await post(node.rpc_urls[1], request("getSlot"))).json()["result"] < 2**63

    mixed = [request("getSlot", [], 1), request("getSignatureStatuses", [[str(signature)]], 2)]
    slot_answer, status_answer = json.loads((await post(node.rpc_urls[1], mixed)).content)
    assert slot_answer["result"] < 2**63
    assert status_answer["result"]["value"][0]["slot"] >= 2**63


async def test_garbage_rate_is_a_fraction(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    node.set_faults(endpoint=2, garbage_rate=0.5, garbage_kinds=["html"])
    async with httpx.AsyncClient() as http:
        kinds = [
            (await http.post(node.rpc_urls[2], json=request("getSlot"))).headers["content-type"]
            for _ in range(40)
        ]
    assert 5 < kinds.count("text/html") < 35


async def _answers(url: str) -> list[tuple[int, str, bytes]]:
    payloads = [
        request("getSlot", [PROCESSED]),
        request("getBalance", ["11111111111111111111111111111111"]),
        [request("getSlot", [], 1), request("getBlockHeight", [], 2), request("getHealth", [], 3)],
        request("getHealth"),
    ] * 8
    answers = []
    async with httpx.AsyncClient(timeout=5) as http:
        for payload in payloads:
            response = await http.post(url, json=payload)
            answers.append(
                (response.status_code, response.headers["content-type"], response.content)
            )
    return answers


async def test_the_same_draws_after_a_clear(localnet_endpoints_faults):
    node = localnet_endpoints_faults
    node.set_faults(clock_frozen=True)  # honest answers stay the same meanwhile
    garbage = {"garbage_rate": 0.5, "garbage_methods": ["getSlot", "getBalance", "getBlockHeight"]}
    node.set_faults(endpoint=1, **garbage)
    once = await _answers(node.rpc_urls[1])
    node.clear_faults(endpoint=1)  # restarts endpoint 1's draws from the seed
    honest = await _answers(node.rpc_urls[1])
    node.set_faults(endpoint=1, **garbage)
    assert await _answers(node.rpc_urls[1]) == once
    changed = [mine != theirs for mine, theirs in zip(once, honest, strict=True)]
    assert 0 < sum(changed) < 24  # some garbage, and getHealth alone is never touched
    assert not any(changed[3::4])
