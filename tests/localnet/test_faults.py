"""Every fault, observed from the client side; and blockhash expiry, stepped deterministically."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.keypair import Keypair

from tests.localnet.helpers import (
    SOL,
    current_slot,
    funded,
    rpc,
    signed,
    sol_transfer,
    step,
    wait_status,
)

CONFIRMED = Commitment("confirmed")
PROCESSED = Commitment("processed")
SKIP = TxOpts(skip_preflight=True, max_retries=0)


@pytest.fixture
async def client(localnet_faults):
    async with AsyncClient(localnet_faults.rpc_url, commitment=CONFIRMED, timeout=5) as rpc_client:
        yield rpc_client


async def _transfer(client, payer, lamports=SOL // 10):
    transaction, last_valid = await signed(
        client, [sol_transfer(payer, Keypair().pubkey(), lamports)], payer
    )
    return transaction, last_valid


async def _absent_after(client, signature, slots, localnet):
    await asyncio.sleep(slots * 0.05 + 0.1)
    status = (await client.get_signature_statuses([signature], True)).value[0]
    return status is None


async def test_admin_interface_round_trip(localnet_faults):
    async with httpx.AsyncClient() as http:
        url = localnet_faults.faults_url
        assert (await http.get(url)).json()["drop_rate"] == 0.0
        merged = (await http.post(url, json={"drop_rate": 0.25, "http_error_status": 503})).json()
        assert merged["drop_rate"] == 0.25 and merged["http_error_status"] == 503
        assert (await http.post(url, json={"land_delay_slots": 2})).json()["drop_rate"] == 0.25
        bad = await http.post(url, json={"drop_rate": 2})
        assert bad.status_code == 400 and "drop_rate" in bad.json()["error"]
        unknown = await http.post(url, json={"nope": 1})
        assert unknown.status_code == 400
        cleared = (await http.delete(url)).json()
        assert cleared["drop_rate"] == 0.0 and cleared["land_delay_slots"] == 0


async def test_drop_rate_accepts_but_never_lands(client, localnet_faults):
    payer = await funded(client)
    localnet_faults.set_faults(drop_rate=1.0)
    transaction, _ = await _transfer(client, payer)
    signature = (await client.send_raw_transaction(bytes(transaction), SKIP)).value
    assert signature == transaction.signatures[0]
    assert await _absent_after(client, signature, 5, localnet_faults)
    localnet_faults.clear_faults()
    assert (await client.send_raw_transaction(bytes(transaction), SKIP)).value == signature
    await wait_status(client, signature, "confirmed")


async def test_drop_first_sends(client, localnet_faults):
    payer = await funded(client)
    localnet_faults.set_faults(drop_first_sends=2)
    transaction, _ = await _transfer(client, payer)
    for _ in range(2):
        signature = (await client.send_raw_transaction(bytes(transaction), SKIP)).value
        assert await _absent_after(client, signature, 3, localnet_faults)
    await client.send_raw_transaction(bytes(transaction), SKIP)
    await wait_status(client, signature, "confirmed")


async def test_land_delay_slots(client, localnet_faults):
    payer = await funded(client)
    localnet_faults.set_faults(land_delay_slots=10)
    transaction, _ = await _transfer(client, payer)
    sent_at = await current_slot(client)
    signature = (await client.send_raw_transaction(bytes(transaction), SKIP)).value
    status = await wait_status(client, signature, "processed")
    assert status.slot >= sent_at + 11


async def test_http_errors(client, localnet_faults):
    localnet_faults.set_faults(http_error_rate=1.0, http_error_status=503)
    with pytest.raises(SolanaRpcException) as raised:
        await client.get_slot()
    # solana-py's HTTP layer raises its own httpx flavour: compare by name and status.
    assert type(raised.value.__cause__).__name__ == "HTTPStatusError"
    assert raised.value.__cause__.response.status_code == 503
    localnet_faults.set_faults(http_error_status=429)
    with pytest.raises(SolanaRpcException) as raised:
        await client.get_slot()
    assert raised.value.__cause__.response.status_code == 429
    localnet_faults.set_faults(http_error_rate=0.0)
    assert (await client.get_slot()).value > 0


async def test_stall_past_client_timeout(localnet_faults):
    localnet_faults.set_faults(stall_rate=1.0, stall_seconds=1.0)
    async with AsyncClient(localnet_faults.rpc_url, timeout=0.3) as impatient:
        with pytest.raises(SolanaRpcException) as raised:
            await impatient.get_slot()
        assert type(raised.value.__cause__).__name__ == "ReadTimeout"
    async with AsyncClient(localnet_faults.rpc_url, timeout=3) as patient:
        started = asyncio.get_running_loop().time()
        assert (await patient.get_slot()).value > 0
        assert asyncio.get_running_loop().time() - started >= 0.9


async def test_stalled_sends_whose_sender_leaves_never_land(client, localnet_faults):
    payer = await funded(client)
    transaction, _ = await _transfer(client, payer)
    localnet_faults.set_faults(stall_rate=1.0, stall_seconds=30.0,
                               stall_methods=["sendTransaction"])
    async with AsyncClient(localnet_faults.rpc_url, timeout=0.5) as impatient:
        started = asyncio.get_running_loop().time()
        assert (await impatient.get_slot()).value > 0  # other methods are not held
        assert asyncio.get_running_loop().time() - started < 0.5
        with pytest.raises(SolanaRpcException):
            await impatient.send_raw_transaction(bytes(transaction), SKIP)
    signature = transaction.signatures[0]
    assert await _absent_after(client, signature, 5, localnet_faults)
    localnet_faults.clear_faults()
    assert (await client.send_raw_transaction(bytes(transaction), SKIP)).value == signature
    await wait_status(client, signature, "confirmed")


async def test_clock_frozen_and_warp(client, localnet_faults):
    localnet_faults.set_faults(clock_frozen=True)
    frozen = await current_slot(client)
    await asyncio.sleep(0.3)
    assert await current_slot(client) == frozen
    height = (await client.get_block_height(PROCESSED)).value
    step(localnet_faults, 40)
    assert await current_slot(client) == frozen + 40
    assert (await client.get_block_height(PROCESSED)).value == height + 40
    assert (await localnet_faults_get(localnet_faults))["warp_slots"] == 0
    localnet_faults.set_faults(clock_frozen=False)
    await asyncio.sleep(0.3)
    assert await current_slot(client) > frozen + 40


async def localnet_faults_get(localnet):
    async with httpx.AsyncClient() as http:
        return (await http.get(localnet.faults_url)).json()


async def test_fork_rolls_back_unconfirmed(client, localnet_faults):
    payer = await funded(client)
    destination = Keypair().pubkey()
    localnet_faults.set_faults(clock_frozen=True)
    transaction, _ = await signed(client, [sol_transfer(payer, destination, SOL)], payer)
    signature = (await client.send_raw_transaction(bytes(transaction), SKIP)).value
    step(localnet_faults)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and int(status.confirmation_status) == 0  # processed only
    assert (await client.get_balance(destination, PROCESSED)).value == SOL

    localnet_faults.set_faults(fork_unconfirmed=True)
    assert (await client.get_signature_statuses([signature])).value[0] is None
    assert (await client.get_balance(destination, PROCESSED)).value == 0
    step(localnet_faults, 3)
    assert (await client.get_signature_statuses([signature])).value[0] is None

    await client.send_raw_transaction(bytes(transaction), SKIP)  # rebroadcast lands it
    step(localnet_faults, 2)
    status = (await client.get_signature_statuses([signature])).value[0]
    assert status is not None and int(status.confirmation_status) == 1
    assert (await client.get_balance(destination, CONFIRMED)).value == SOL


async def test_blockhash_expiry(client, localnet_faults):
    payer = await funded(client)
    localnet_faults.set_faults(clock_frozen=True)
    latest = (await client.get_latest_blockhash(PROCESSED)).value
    height = (await client.get_block_height(PROCESSED)).value
    assert latest.last_valid_block_height == height + 150
    url = localnet_faults.rpc_url

    async def valid() -> bool:
        body = await rpc(
            url, "isBlockhashValid", [str(latest.blockhash), {"commitment": "processed"}]
        )
        return body["result"]["value"]

    from solders.message import Message
    from solders.transaction import VersionedTransaction

    def transfer_with(lamports: int) -> VersionedTransaction:
        message = Message.new_with_blockhash(
            [sol_transfer(payer, Keypair().pubkey(), lamports)], payer.pubkey(), latest.blockhash
        )
        return VersionedTransaction(message, [payer])

    step(localnet_faults, 148)
    assert await valid()
    last_chance = transfer_with(SOL // 10)
    await client.send_raw_transaction(bytes(last_chance), SKIP)
    step(localnet_faults)  # height + 149
    assert await valid()
    landed = (await client.get_signature_statuses([last_chance.signatures[0]])).value[0]
    assert landed is not None

    step(localnet_faults)  # height + 150 == lastValidBlockHeight: nothing can land any more
    assert not await valid()
    late = transfer_with(SOL // 5)
    with pytest.raises(RPCException, match=r"BlockhashNotFound|Blockhash not found"):
        await client.send_raw_transaction(bytes(late), TxOpts(preflight_commitment=PROCESSED))
    signature = (await client.send_raw_transaction(bytes(late), SKIP)).value
    step(localnet_faults, 2)
    assert (await client.get_signature_statuses([signature], True)).value[0] is None
