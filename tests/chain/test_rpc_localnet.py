"""SolanaRpc against the localnet over HTTP: failover, retries, fan-out, batching, caching.

Faults are set on the shared localnet through its admin endpoint and always cleared after.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.signature import Signature

from chainworker.chain import fees, nft
from chainworker.chain.errors import ChainError
from chainworker.chain.funding import ensure_funded
from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess

pytestmark = pytest.mark.timeout(60)


@dataclass
class Calls:
    """What the observer hook saw: (endpoint, method, seconds, error kind)."""

    seen: list[tuple[str, str, float, str | None]] = field(default_factory=list)

    def __call__(self, endpoint: str, method: str, seconds: float, kind: str | None) -> None:
        self.seen.append((endpoint, method, seconds, kind))

    def of(self, method: str) -> list[tuple[str, str | None]]:
        return [(endpoint, kind) for endpoint, m, _, kind in self.seen if m == method]


def dead_url() -> str:
    """An http URL nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def make_rpc() -> AsyncIterator[Any]:
    clients: list[SolanaRpc] = []

    def make(urls: list[str], **options: Any) -> tuple[SolanaRpc, Calls]:
        calls = Calls()
        options.setdefault("timeout_seconds", 2.0)
        options.setdefault("backoff_base_seconds", 0.02)
        client = SolanaRpc(urls, observer=calls, **options)
        clients.append(client)
        return client, calls

    yield make
    for client in clients:
        await client.close()


@pytest.fixture(scope="module")
async def funded(localnet: LocalnetProcess) -> AsyncIterator[Keypair]:
    authority = Keypair()
    async with SolanaRpc([localnet.rpc_url]) as rpc:
        await rpc.request_airdrop(authority.pubkey(), 50 * 10**9)
    yield authority


async def test_failover_when_the_first_endpoint_is_dead(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    dead = dead_url()
    rpc, calls = make_rpc([dead, localnet.rpc_url], cooldown_seconds=30)
    assert await rpc.block_height() >= 0
    first, second = calls.of("getBlockHeight")
    assert first == (rpc.endpoint_labels[0], "transport")
    assert second == (rpc.endpoint_labels[1], None)
    assert rpc.endpoint_health() == {rpc.endpoint_labels[0]: False, rpc.endpoint_labels[1]: True}

    # While the dead endpoint cools down, reads go straight to the live one.
    await rpc.block_height()
    assert calls.of("getBlockHeight")[2] == (rpc.endpoint_labels[1], None)


async def test_labels_never_carry_the_url_path(localnet: LocalnetProcess, make_rpc: Any) -> None:
    rpc, calls = make_rpc([f"{localnet.rpc_url}/?api-key=SECRET"])
    assert await rpc.block_height() >= 0
    assert "SECRET" not in rpc.endpoint_labels[0]
    assert all("SECRET" not in endpoint for endpoint, _ in calls.of("getBlockHeight"))
    dead, _ = make_rpc([f"{dead_url()}/k/SECRET"], max_attempts=1)
    with pytest.raises(ChainError) as raised:
        await dead.block_height()
    assert "SECRET" not in str(raised.value)


async def test_retries_through_a_429_storm(localnet_faults: LocalnetProcess, make_rpc: Any) -> None:
    rpc, calls = make_rpc([localnet_faults.rpc_url], max_attempts=12, backoff_base_seconds=0.05)
    localnet_faults.set_faults(http_error_rate=1.0, http_error_status=429)
    call = asyncio.create_task(rpc.block_height())
    await asyncio.sleep(0.4)
    assert not call.done()
    await asyncio.to_thread(localnet_faults.clear_faults)
    assert await call >= 0
    kinds = [kind for _, kind in calls.of("getBlockHeight")]
    assert kinds[-1] is None
    assert kinds.count("rate_limited") >= 2


async def test_a_lasting_503_gives_up_after_max_attempts(
    localnet_faults: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, calls = make_rpc([localnet_faults.rpc_url], max_attempts=3)
    localnet_faults.set_faults(http_error_rate=1.0, http_error_status=503)
    with pytest.raises(ChainError) as raised:
        await rpc.block_height()
    assert raised.value.kind == "unavailable"
    assert raised.value.code == 503
    assert [kind for _, kind in calls.of("getBlockHeight")] == ["unavailable"] * 3


async def test_a_stalled_endpoint_times_out(
    localnet_faults: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, calls = make_rpc([localnet_faults.rpc_url], max_attempts=2, timeout_seconds=0.2)
    localnet_faults.set_faults(stall_rate=1.0, stall_seconds=1.0)
    with pytest.raises(ChainError) as raised:
        await rpc.block_height()
    assert raised.value.kind == "timeout"
    assert [kind for _, kind in calls.of("getBlockHeight")] == ["timeout", "timeout"]


async def test_blockhash_cache_is_reused_then_refreshed(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, calls = make_rpc([localnet.rpc_url], blockhash_cache_seconds=0.3)
    first = await asyncio.gather(*(rpc.latest_blockhash() for _ in range(20)))
    assert len(set(first)) == 1
    assert len(calls.of("getLatestBlockhash")) == 1
    await asyncio.sleep(0.35)
    _, last_valid = await rpc.latest_blockhash()
    assert len(calls.of("getLatestBlockhash")) == 2
    assert last_valid >= first[0][1]
    assert last_valid > await rpc.block_height()


async def test_nft_lifecycle_over_rpc_with_fan_out_send(
    localnet: LocalnetProcess, make_rpc: Any, funded: Keypair
) -> None:
    rpc, calls = make_rpc([dead_url(), localnet.rpc_url])
    mint, holder, buyer = Keypair(), Keypair().pubkey(), Keypair().pubkey()
    ticket_id, event_id = uuid.uuid4(), uuid.uuid4()

    async def build_mint(memo: str) -> nft.SignedTx:
        blockhash, _ = await rpc.latest_blockhash()
        return nft.build_mint(
            authority=funded,
            mint=mint,
            holder=holder,
            name="Show",
            symbol="TIX",
            uri="https://t.example/1",
            ticket_id=ticket_id,
            event_id=event_id,
            memo=memo,
            recent_blockhash=blockhash,
            compute=compute,
        )

    compute = None
    units = await rpc.simulate_units((await build_mint("sim")).transaction)
    price = fees.compute_unit_price(await rpc.recent_prioritization_fees([funded.pubkey()]), 50, 10)
    compute = nft.ComputeBudget(fees.compute_unit_limit(units, 1.2), price)
    assert 10_000 < units < 200_000

    signed = await build_mint("attempt-1")
    assert await rpc.send_raw(signed.raw) == signed.signature
    sends = calls.of("sendTransaction")
    assert (rpc.endpoint_labels[1], None) in sends
    assert rpc.endpoint_labels[0] in {endpoint for endpoint, _ in sends}
    await rpc.wait_for_confirmation(signed.signature, 20)

    state = await rpc.get_mint_state(mint.pubkey())
    assert state is not None and state.metadata is not None
    assert (state.supply, state.decimals, state.mint_authority) == (1, 0, funded.pubkey())
    assert state.permanent_delegate == funded.pubkey()
    assert state.close_authority == funded.pubkey()
    assert state.metadata.field("ticket_id") == str(ticket_id)
    assert state.metadata.field("event_id") == str(event_id)
    assert await rpc.get_token_holder(mint.pubkey()) == (holder, 1)
    nobody = Keypair().pubkey()
    found = await rpc.get_accounts([nobody, mint.pubkey(), nft.holder_token_account(
        holder, mint.pubkey()
    )])
    assert found[0] is None and found[1] is not None and found[2] is not None
    assert found[1].owner == found[2].owner == nft.TOKEN_2022_PROGRAM_ID
    assert found[1].lamports == await rpc.get_balance(mint.pubkey())
    assert found[2].lamports == 2_074_080
    assert any("attempt-1" in line for line in await rpc.get_transaction_logs(signed.signature))
    assert await rpc.get_transaction_error(signed.signature) is None

    # A second mint for the same key fails on chain with "already in use" (Custom 0).
    again = await build_mint("attempt-2")
    await rpc.send_raw(again.raw)
    status = await wait_for_status(rpc, again.signature)
    assert status.err is not None and status.err.custom_code == 0

    blockhash, _ = await rpc.latest_blockhash()
    transfer = nft.build_transfer(
        authority=funded,
        mint=mint.pubkey(),
        from_holder=holder,
        to_holder=buyer,
        memo="transfer-1",
        recent_blockhash=blockhash,
    )
    await rpc.send_raw(transfer.raw)
    await rpc.wait_for_confirmation(transfer.signature, 20)
    assert await rpc.get_token_holder(mint.pubkey()) == (buyer, 1)

    burn = nft.build_burn(
        authority=funded,
        mint=mint.pubkey(),
        holder=buyer,
        memo="burn-1",
        recent_blockhash=(await rpc.latest_blockhash())[0],
    )
    await rpc.send_raw(burn.raw)
    await rpc.wait_for_confirmation(burn.signature, 20)
    assert await rpc.get_token_holder(mint.pubkey()) is None
    burned = await rpc.get_mint_state(mint.pubkey())
    assert burned is not None and burned.supply == 0


async def wait_for_status(rpc: SolanaRpc, signature: Signature) -> Any:
    for _ in range(100):
        (status,) = await rpc.signature_statuses([signature])
        if status is not None:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{signature} never got a status")


async def test_status_batching_beyond_256(
    localnet: LocalnetProcess, make_rpc: Any, funded: Keypair
) -> None:
    rpc, calls = make_rpc([localnet.rpc_url])
    airdrop = await rpc.request_airdrop(Keypair().pubkey(), 10**9)
    unknown = [Keypair().sign_message(b"x") for _ in range(299)]
    signatures: list[Signature] = [*unknown[:150], airdrop, *unknown[150:]]
    statuses = await rpc.signature_statuses(signatures)
    assert len(statuses) == 300
    assert [i for i, status in enumerate(statuses) if status is not None] == [150]
    assert statuses[150] is not None and statuses[150].err is None
    assert len(calls.of("getSignatureStatuses")) >= 2 + 1  # wait_for_confirmation polled too
    assert await rpc.signature_statuses([]) == []


async def test_accounts_that_are_not_mints(
    localnet: LocalnetProcess, make_rpc: Any, funded: Keypair
) -> None:
    rpc, _ = make_rpc([localnet.rpc_url])
    assert await rpc.get_mint_state(Keypair().pubkey()) is None
    with pytest.raises(ChainError) as raised:
        await rpc.get_mint_state(funded.pubkey())
    assert raised.value.kind == "unexpected_account"
    assert await rpc.get_balance(funded.pubkey()) > 0


async def test_send_fails_with_a_chain_error_when_no_endpoint_accepts(make_rpc: Any) -> None:
    rpc, calls = make_rpc([dead_url(), dead_url()], max_attempts=2)
    with pytest.raises(ChainError) as raised:
        await rpc.send_raw(b"\x01" * 100)
    assert raised.value.kind == "transport"
    assert len(calls.of("sendTransaction")) == 4


async def test_malformed_transaction_is_an_rpc_error(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, _ = make_rpc([localnet.rpc_url, dead_url()])
    with pytest.raises(ChainError) as raised:
        await rpc.send_raw(b"\x01" * 100)
    assert raised.value.kind == "rpc"
    assert raised.value.code is not None


async def garbage_server(answer: bytes, status: int = 200) -> tuple[asyncio.Server, str]:
    """An HTTP endpoint that answers every request with the same bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"<html>oops</html>", "bad_response"),
        (
            b'{"jsonrpc":"2.0","id":1,"result":{"context":{"slot":1},"value":{"x":1}}}',
            "bad_response",
        ),
        (b'{"jsonrpc":"2.0","id":1,"result":"not a number"}', "bad_response"),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"odd"}}', "rpc"),
    ],
)
async def test_garbage_answers_become_chain_errors(make_rpc: Any, answer: bytes, kind: str) -> None:
    server, url = await garbage_server(answer)
    try:
        rpc, _ = make_rpc([url], max_attempts=3)
        for call in (rpc.block_height(), rpc.latest_blockhash()):
            with pytest.raises(ChainError) as raised:
                await call
            assert raised.value.kind == kind
    finally:
        server.close()


async def test_garbage_from_one_endpoint_fails_over(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    server, url = await garbage_server(b"not json")
    try:
        rpc, calls = make_rpc([url, localnet.rpc_url])
        assert isinstance(await rpc.block_height(), int)
        assert [kind for _, kind in calls.of("getBlockHeight")] == ["bad_response", None]
    finally:
        server.close()


async def test_ensure_funded_airdrops_on_localnet_only(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, calls = make_rpc([localnet.rpc_url])
    fresh = Keypair().pubkey()
    balance = await ensure_funded(rpc, fresh, cluster="localnet", min_lamports=10**9)
    assert balance >= 10**9
    assert await ensure_funded(rpc, fresh, cluster="localnet", min_lamports=10**9) == balance
    assert len(calls.of("requestAirdrop")) == 1
    with pytest.raises(ChainError, match="fund it") as raised:
        await ensure_funded(rpc, Keypair().pubkey(), cluster="mainnet")
    assert raised.value.kind == "config"


async def test_a_view_that_goes_back_is_not_believed(
    localnet_endpoints_faults: LocalnetProcess,
) -> None:
    """An endpoint that falls behind what it already reported (a load balancer switching
    to a node that lags) is refused: its height and slot never decide anything."""
    behind, ahead, _ = localnet_endpoints_faults.rpc_urls
    async with SolanaRpc([behind], max_attempts=1) as alone:
        first = await alone.read_chain([])
        localnet_endpoints_faults.set_faults(endpoint=0, lag_slots=60)
        with pytest.raises(ChainError) as refused:
            await alone.read_chain([])
        assert refused.value.kind == "bad_response" and "went back" in refused.value.message
    async with SolanaRpc([behind, ahead], max_attempts=2) as both:
        localnet_endpoints_faults.set_faults(endpoint=0, lag_slots=0)
        await both.read_chain([])  # the first endpoint answers, and is remembered
        localnet_endpoints_faults.set_faults(endpoint=0, lag_slots=60)
        read = await both.read_chain([])
        assert read.endpoint == both.endpoint_labels[1] and read.height >= first.height


async def test_many_accounts_are_read_100_per_call_in_order(
    localnet: LocalnetProcess, make_rpc: Any, funded: Keypair
) -> None:
    rpc, calls = make_rpc([localnet.rpc_url])
    addresses = [Keypair().pubkey() for _ in range(150)]
    addresses[120] = funded.pubkey()
    found = await rpc.get_accounts(addresses)
    assert len(found) == 150 and len(calls.of("getMultipleAccounts")) == 2
    assert [i for i, view in enumerate(found) if view is not None] == [120]
    assert await rpc.get_accounts([]) == []
