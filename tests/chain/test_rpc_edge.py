"""SolanaRpc at the HTTP edge: an httpx.MockTransport stands in for the node.

Only here: everything else talks to the localnet over real HTTP. The mock answers what a
broken proxy or node would (wrong types, HTML, JSON-RPC errors, 429, 503, truncated bodies,
batches with ids missing) and each must become the ChainError kind the callers branch on.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from chainworker.chain.errors import ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.lifecycle.model import Commitment

URL = "https://rpc.example.test/v2/KEY?api-key=SECRET"
SIGNATURE = Keypair().sign_message(b"sent")
BLOCKHASH = Hash.new_unique()
ADDRESS = Pubkey.new_unique()

Answer = Callable[[Any], httpx.Response]


def ok(result: Any) -> Answer:
    """An honest single answer carrying `result`."""
    return lambda doc: httpx.Response(
        200, json={"jsonrpc": "2.0", "id": doc["id"], "result": result}
    )


def raw(body: bytes, status: int = 200, content_type: str = "application/json") -> Answer:
    return lambda _doc: httpx.Response(
        status, content=body, headers={"content-type": content_type}
    )


class Node:
    """The mock node: answers per method, and the requests it saw (decoded)."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        doc = json.loads(request.content)
        method = doc[0]["method"] if isinstance(doc, list) else doc["method"]
        return self.answers[method](doc)

    def params(self, method: str) -> list[Any]:
        for request in self.seen:
            doc = json.loads(request.content)
            if isinstance(doc, dict) and doc["method"] == method:
                return list(doc.get("params", []))
        raise AssertionError(f"{method} was never called")


@pytest.fixture
async def mock_rpc() -> AsyncIterator[Callable[..., SolanaRpc]]:
    clients: list[SolanaRpc] = []

    def make(node: Any, **options: Any) -> SolanaRpc:
        options.setdefault("max_attempts", 1)
        options.setdefault("backoff_base_seconds", 0.001)
        client = SolanaRpc([URL], transport=httpx.MockTransport(node), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def _without_nulls(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if value is not None}


def _transaction() -> VersionedTransaction:
    payer = Keypair()
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [], [], BLOCKHASH), [payer])


async def test_requests_carry_the_same_params_as_the_hand_built_bodies(mock_rpc: Any) -> None:
    """The typed solders bodies say what the hand-written JSON said (plus explicit nulls)."""
    context = {"context": {"slot": 5}}
    node = Node(
        sendTransaction=ok(str(SIGNATURE)),
        getBalance=ok({**context, "value": 7}),
        getLatestBlockhash=ok(
            {**context, "value": {"blockhash": str(BLOCKHASH), "lastValidBlockHeight": 9}}
        ),
        getSignatureStatuses=ok({**context, "value": [None]}),
        getAccountInfo=ok({**context, "value": None}),
        getTransaction=ok(None),
        simulateTransaction=ok({**context, "value": {"err": None, "unitsConsumed": 3}}),
        getRecentPrioritizationFees=ok([{"slot": 1, "prioritizationFee": 4}]),
    )
    rpc = mock_rpc(node, commitment=Commitment.FINALIZED)
    tx = _transaction()
    assert await rpc.send_raw(bytes(tx)) == SIGNATURE
    assert await rpc.get_balance(ADDRESS) == 7
    assert await rpc.latest_blockhash() == (BLOCKHASH, 9)
    assert await rpc.signature_statuses([str(SIGNATURE)]) == [None]
    assert await rpc.get_account(ADDRESS) is None
    assert await rpc.get_transaction(SIGNATURE) is None
    assert (await rpc.simulate(tx)).units_consumed == 3
    assert await rpc.recent_prioritization_fees([ADDRESS]) == [4]

    sent, options = node.params("sendTransaction")
    assert base64.b64decode(sent) == bytes(tx)
    assert _without_nulls(options) == {
        "encoding": "base64", "skipPreflight": True, "maxRetries": 0,
        "preflightCommitment": "finalized",
    }
    assert node.params("getBalance")[0] == str(ADDRESS)
    assert _without_nulls(node.params("getBalance")[1]) == {"commitment": "finalized"}
    assert _without_nulls(node.params("getLatestBlockhash")[0]) == {"commitment": "finalized"}
    assert node.params("getSignatureStatuses") == [
        [str(SIGNATURE)], {"searchTransactionHistory": True}
    ]
    address, options = node.params("getAccountInfo")
    assert (address, _without_nulls(options)) == (
        str(ADDRESS), {"encoding": "base64", "commitment": "finalized"}
    )
    assert node.params("getTransaction") == [
        str(SIGNATURE),
        {"encoding": "json", "commitment": "finalized", "maxSupportedTransactionVersion": 0},
    ]
    simulated, options = node.params("simulateTransaction")
    assert base64.b64decode(simulated) == bytes(tx)
    assert _without_nulls(options) == {
        "encoding": "base64", "sigVerify": False, "replaceRecentBlockhash": True,
        "commitment": "finalized", "innerInstructions": False,
    }
    assert node.params("getRecentPrioritizationFees") == [[str(ADDRESS)]]
    # Every request went to the configured URL, path and query included, as JSON.
    assert {str(request.url) for request in node.seen} == {URL}
    assert {request.headers["content-type"] for request in node.seen} == {"application/json"}


TRUNCATED = b'{"jsonrpc":"2.0","id":1,"result":{"context":{"slot":1},"val'
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        # wrong types, and numbers no cluster has
        (ok({"context": {"slot": 1}, "value": "5"}), "bad_response", None),
        (ok({"context": {"slot": 1}, "value": 5.0}), "bad_response", None),
        (ok({"context": {"slot": 1}, "value": -1}), "bad_response", None),
        (ok({"context": {"slot": 1}, "value": 2**63}), "bad_response", None),
        (ok({"context": {"slot": 1}, "value": 2**64}), "bad_response", None),
        (ok({"context": {"slot": 1}}), "bad_response", None),
        (ok([5]), "bad_response", None),
        # not JSON-RPC at all
        (raw(HTML, content_type="text/html"), "bad_response", None),
        (raw(TRUNCATED), "bad_response", None),
        (raw(b""), "bad_response", None),
        (raw(b'{"jsonrpc":"2.0","id":1}'), "bad_response", None),
        (raw(b'{"jsonrpc":"2.0","id":1,"error":"nope"}'), "bad_response", None),
        # JSON-RPC errors: the request's, or the node's for now
        (raw(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"odd"}}'), "rpc", -32000),
        # -32005 without `data` makes solders' typed error parsing panic
        (raw(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"behind"}}'),
         "unavailable", -32005),
        (raw(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32016,"message":"slot"}}'),
         "unavailable", -32016),
        # HTTP statuses decide before the body does
        (raw(b"slow down", 429, "text/plain"), "rate_limited", 429),
        (raw(b'{"jsonrpc":"2.0","id":1,"result":1}', 503), "unavailable", 503),
        (raw(HTML, 502, "text/html"), "unavailable", 502),
        (raw(b"", 301), "rpc", 301),
        (raw(b"not found", 404, "text/plain"), "rpc", 404),
    ],
)
async def test_garbage_answers_become_the_right_chain_error(
    mock_rpc: Any, answer: Answer, kind: str, code: int | None
) -> None:
    rpc = mock_rpc(Node(getBalance=answer))
    with pytest.raises(ChainError) as raised:
        await rpc.get_balance(ADDRESS)
    assert (raised.value.kind, raised.value.code) == (kind, code)
    assert raised.value.endpoint == rpc.endpoint_labels[0]
    assert "SECRET" not in str(raised.value) and "KEY" not in str(raised.value)


def _raises(error: Exception) -> Answer:
    def answer(_doc: Any) -> httpx.Response:
        raise error

    return answer


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (_raises(httpx.ConnectError("refused")), "transport"),
        (_raises(httpx.RemoteProtocolError("peer closed the connection")), "transport"),
        (_raises(httpx.ReadTimeout("read")), "timeout"),
        (_raises(httpx.PoolTimeout("pool")), "timeout"),
    ],
)
async def test_transport_failures_become_retryable_errors(
    mock_rpc: Any, answer: Answer, kind: str
) -> None:
    rpc = mock_rpc(Node(getBalance=answer))
    with pytest.raises(ChainError) as raised:
        await rpc.get_balance(ADDRESS)
    assert raised.value.kind == kind and raised.value.retryable


async def test_a_stalled_answer_times_out(mock_rpc: Any) -> None:
    async def stall(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        raise AssertionError("not cancelled")

    rpc = mock_rpc(stall, timeout_seconds=0.05)
    with pytest.raises(ChainError) as raised:
        await rpc.get_balance(ADDRESS)
    assert raised.value.kind == "timeout"


async def test_a_429_is_retried_then_answered(mock_rpc: Any) -> None:
    answers = iter([raw(b"", 429), raw(b"", 503), ok({"context": {"slot": 1}, "value": 3})])
    kinds: list[str | None] = []
    node = Node(getBalance=lambda doc: next(answers)(doc))
    rpc = mock_rpc(node, max_attempts=3, observer=lambda _e, _m, _s, kind: kinds.append(kind))
    assert await rpc.get_balance(ADDRESS) == 3
    assert kinds == ["rate_limited", "unavailable", None]


@pytest.mark.parametrize(
    ("method", "result"),
    [
        # solders decodes these members on first access, and panics on a malformed one
        ("getLatestBlockhash",
         {"context": {"slot": 1}, "value": {"blockhash": "xx", "lastValidBlockHeight": 1}}),
        ("getTokenLargestAccounts", {"context": {"slot": 1}, "value": [
            {"address": "zz", "amount": "1", "decimals": 0, "uiAmount": 1.0,
             "uiAmountString": "1"},
        ]}),
        ("getAccountInfo", {"context": {"slot": 1}, "value": {
            "data": ["AQID", "base64"], "owner": "zz", "lamports": 1, "executable": False,
            "rentEpoch": 0,
        }}),
        ("getAccountInfo", {"context": {"slot": 1}, "value": {
            "data": ["!!!", "base64"], "owner": str(ADDRESS), "lamports": 1, "executable": False,
            "rentEpoch": 0,
        }}),
        ("sendTransaction", "not a signature"),
        ("getSignatureStatuses", {"context": {"slot": 1}, "value": [{"slot": 2}]}),
    ],
)
async def test_malformed_members_are_bad_responses(
    mock_rpc: Any, method: str, result: Any
) -> None:
    rpc = mock_rpc(Node(**{method: ok(result)}))
    calls = {
        "getLatestBlockhash": rpc.latest_blockhash,
        "getTokenLargestAccounts": lambda: rpc.get_token_holder(ADDRESS),
        "getAccountInfo": lambda: rpc.get_account(ADDRESS),
        "sendTransaction": lambda: rpc.send_raw(b"tx"),
        "getSignatureStatuses": lambda: rpc.signature_statuses([SIGNATURE]),
    }
    with pytest.raises(ChainError) as raised:
        await calls[method]()
    assert raised.value.kind == "bad_response"


async def test_a_genesis_hash_that_is_not_a_hash_is_a_bad_response(mock_rpc: Any) -> None:
    rpc = mock_rpc(Node(getGenesisHash=ok("not-a-hash")))
    (problem,) = await rpc.verify_endpoints()
    assert problem.kind == "bad_response"


async def test_a_transaction_error_solders_does_not_know_is_still_read(mock_rpc: Any) -> None:
    """A newer cluster's error variant must not make the status unreadable: its
    confirmation could never be decided."""
    err = {"InstructionError": [1, {"SomeFutureError": {"detail": 7}}]}
    status = {"slot": 3, "confirmations": None, "err": err, "confirmationStatus": "finalized"}
    rpc = mock_rpc(Node(getSignatureStatuses=ok({"context": {"slot": 4}, "value": [status]})))
    (seen,) = await rpc.signature_statuses([SIGNATURE])
    assert seen is not None and seen.err is not None
    assert seen.err.code == "InstructionError:1:SomeFutureError"
    assert seen.err.instruction_index == 1


async def test_a_signature_that_is_not_one_is_refused_like_a_node_would(mock_rpc: Any) -> None:
    node = Node()
    rpc = mock_rpc(node)
    with pytest.raises(ChainError) as raised:
        await rpc.signature_statuses(["not-a-signature"])
    assert (raised.value.kind, raised.value.code) == ("rpc", -32602)
    assert node.seen == []


def batch_node(shape: Callable[[list[dict[str, Any]]], Any]) -> Node:
    """A node answering sendTransaction batches with `shape(honest answers)`."""

    def answer(doc: Any) -> httpx.Response:
        honest = [
            {"jsonrpc": "2.0", "id": item["id"], "result": str(Keypair().sign_message(b"x"))}
            for item in doc
        ]
        return httpx.Response(200, content=json.dumps(shape(honest)).encode())

    return Node(sendTransaction=answer)


@pytest.mark.parametrize(
    ("shape", "kinds"),
    [
        (lambda answers: answers, [None, None, None]),
        (lambda answers: answers[::-1], [None, None, None]),  # any order: matched by id
        (lambda answers: [answers[0], answers[2]], [None, "bad_response", None]),
        (lambda answers: [answers[0], {k: v for k, v in answers[1].items() if k != "id"},
                          answers[2]], [None, "bad_response", None]),
        (lambda answers: [answers[0], {**answers[1], "result": 5}, answers[2]],
         [None, "bad_response", None]),
        (lambda answers: [answers[0], {**answers[1], "id": answers[0]["id"]}, answers[2]],
         [None, "bad_response", None]),
        (lambda answers: [answers[0], answers[1],
                          {"jsonrpc": "2.0", "id": answers[2]["id"],
                           "error": {"code": -32002, "message": "preflight"}}],
         [None, None, "rpc"]),
        (lambda _answers: {"jsonrpc": "2.0", "id": None,
                           "error": {"code": -32600, "message": "no batches"}},
         ["rpc", "rpc", "rpc"]),
        (lambda _answers: {"jsonrpc": "2.0", "id": None, "result": 1},
         ["bad_response"] * 3),
        (lambda _answers: "batch", ["bad_response"] * 3),
    ],
)
async def test_batch_answers_are_matched_by_id(
    mock_rpc: Any, shape: Callable[[list[dict[str, Any]]], Any], kinds: list[str | None]
) -> None:
    rpc = mock_rpc(batch_node(shape))
    outcomes = await rpc.send_raw_many([b"a", b"b", b"c"])
    assert [None if outcome is None else outcome.kind for outcome in outcomes] == kinds


async def test_a_truncated_or_html_batch_answer_fails_every_send(mock_rpc: Any) -> None:
    for body in (b'[{"jsonrpc":"2.0","id":1,"res', HTML):
        rpc = mock_rpc(Node(sendTransaction=raw(body)))
        outcomes = await rpc.send_raw_many([b"a", b"b"])
        assert [outcome and outcome.kind for outcome in outcomes] == ["bad_response"] * 2


async def test_one_endpoint_accepting_is_enough() -> None:
    def node(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.example.test":
            return httpx.Response(503)
        return batch_node(lambda answers: answers)(request)

    rpc = SolanaRpc(["https://down.example.test", URL], transport=httpx.MockTransport(node),
                    max_attempts=2, backoff_base_seconds=0.001)
    try:
        assert await rpc.send_raw_many([b"a", b"b"]) == [None, None]
        assert rpc.endpoint_health()[rpc.endpoint_labels[0]] is False
    finally:
        await rpc.close()



def test_a_batch_body_is_the_array_solders_writes() -> None:
    from solders.rpc.requests import batch_to_json
    from solders.signature import Signature

    from chainworker.chain import calls
    from chainworker.chain.endpoints import batch_body

    tx = bytes(_transaction())
    batch = [
        calls.send(tx, Commitment.CONFIRMED),
        calls.send(tx, Commitment.FINALIZED),
        calls.signature_statuses([Signature.default()]),
        calls.block_height(Commitment.PROCESSED),
    ]
    assert json.loads(batch_body(batch)) == json.loads(batch_to_json([c.body for c in batch]))
