"""Sends in JSON-RPC batches: per-transaction outcomes, fan-out with a dead endpoint, coalescing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from chainworker.chain.batcher import SendBatcher
from chainworker.chain.errors import ChainError
from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess
from tests.chain.test_rpc_localnet import dead_url, make_rpc

__all__ = ["make_rpc"]

pytestmark = pytest.mark.timeout(60)


async def transfers(rpc: SolanaRpc, payer: Keypair, count: int) -> list[VersionedTransaction]:
    blockhash, _ = await rpc.latest_blockhash()
    signed = []
    for lamports in range(1, count + 1):
        message = Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(),
                                     lamports=1_000_000 + lamports))],
            payer.pubkey(), blockhash,
        )
        signed.append(VersionedTransaction(message, [payer]))
    return signed


async def landed(rpc: SolanaRpc, txs: list[VersionedTransaction]) -> bool:
    statuses = await rpc.signature_statuses([tx.signatures[0] for tx in txs])
    return all(status is not None and status.err is None for status in statuses)


async def wait_landed(rpc: SolanaRpc, txs: list[VersionedTransaction]) -> None:
    for _ in range(100):
        if await landed(rpc, txs):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not every transaction landed")


async def test_send_many_reports_each_transaction(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, calls = make_rpc([dead_url(), localnet.rpc_url], max_attempts=2)
    payer = Keypair()
    await rpc.request_airdrop(payer.pubkey(), 10 * 10**9)
    good = await transfers(rpc, payer, 150)  # more than one batch
    outcomes = await rpc.send_raw_many([bytes(tx) for tx in good[:75]] + [b"garbage"]
                                       + [bytes(tx) for tx in good[75:]])
    assert outcomes[75] is not None and isinstance(outcomes[75], ChainError)
    assert outcomes[:75] + outcomes[76:] == [None] * 150
    # Two batches per endpoint: the dead one failed, the live one carried them.
    live = rpc.endpoint_labels[1]
    assert [kind for endpoint, kind in calls.of("sendTransaction") if endpoint == live] == [
        None, None,
    ]
    await wait_landed(rpc, good)
    assert await rpc.send_raw_many([]) == []


async def test_batcher_coalesces_concurrent_sends(
    localnet: LocalnetProcess, make_rpc: Any
) -> None:
    rpc, calls = make_rpc([localnet.rpc_url])
    payer = Keypair()
    await rpc.request_airdrop(payer.pubkey(), 10 * 10**9)
    txs = await transfers(rpc, payer, 40)
    batcher = SendBatcher(rpc, max_batch=16, linger_seconds=0.01)
    try:
        await asyncio.gather(*(batcher.send(bytes(tx)) for tx in txs))
        with pytest.raises(ChainError):
            await batcher.send(b"not a transaction")
    finally:
        await batcher.close()
    http_requests = len(calls.of("sendTransaction"))
    assert 3 <= http_requests <= 6  # 40 sends in batches of at most 16, then the bad one
    await wait_landed(rpc, txs)
