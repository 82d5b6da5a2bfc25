"""Cluster-information methods, parsed strictly by solana-py / solders."""

from __future__ import annotations

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solders.keypair import Keypair
from solders.message import Message

from tests.localnet.helpers import SOL, funded, rpc, send, sol_transfer, wait_status

CONFIRMED = Commitment("confirmed")
FINALIZED = Commitment("finalized")
PROCESSED = Commitment("processed")


@pytest.fixture
async def client(localnet):
    async with AsyncClient(localnet.rpc_url, commitment=CONFIRMED) as rpc:
        yield rpc


async def test_node_identity_and_version(client):
    assert await client.is_connected()
    assert (await client.get_version()).value.solana_core
    genesis = (await client.get_genesis_hash()).value
    assert genesis == (await client.get_genesis_hash()).value
    identity = (await client.get_identity()).value.identity
    assert (await client.get_slot_leader()).value == identity
    nodes = (await client.get_cluster_nodes()).value
    assert [node.pubkey for node in nodes] == [identity]
    votes = (await client.get_vote_accounts()).value
    assert votes.current == [] and votes.delinquent == []
    schedule = (await client.get_leader_schedule()).value
    assert schedule is not None and list(schedule) == [identity]


async def test_slots_heights_and_commitments(client):
    processed = (await client.get_slot(PROCESSED)).value
    confirmed = (await client.get_slot(CONFIRMED)).value
    finalized = (await client.get_slot(FINALIZED)).value
    assert processed >= confirmed >= finalized
    assert processed - finalized in (31, 32, 33) or finalized == 0
    height = (await client.get_block_height(PROCESSED)).value
    assert height >= processed - 1
    epoch = (await client.get_epoch_info(PROCESSED)).value
    assert epoch.slots_in_epoch == 432_000 and epoch.absolute_slot >= processed
    schedule = (await client.get_epoch_schedule()).value
    assert schedule.slots_per_epoch == 432_000
    latest = (await client.get_latest_blockhash(CONFIRMED)).value
    height_after = (await client.get_block_height(CONFIRMED)).value
    assert height_after <= latest.last_valid_block_height - 150 + 1
    valid = await rpc(
        client._provider.endpoint_uri,
        "isBlockhashValid",
        [str(latest.blockhash), {"commitment": "confirmed"}],
    )
    assert valid["result"]["value"] is True


async def test_fees(client):
    payer = Keypair()
    latest = (await client.get_latest_blockhash(CONFIRMED)).value
    message = Message.new_with_blockhash(
        [sol_transfer(payer, Keypair().pubkey(), 1)], payer.pubkey(), latest.blockhash
    )
    assert (await client.get_fee_for_message(message, CONFIRMED)).value == 5000
    # Only blocks with transactions are reported (as agave does): land one, at price 0.
    airdrop = (await client.request_airdrop(payer.pubkey(), SOL)).value
    status = await wait_status(client, airdrop, "confirmed")
    fees = (await client.get_recent_prioritization_fees()).value
    assert 0 < len(fees) <= 150
    assert all(fee.prioritization_fee >= 0 for fee in fees)
    assert (status.slot, 0) in [(fee.slot, fee.prioritization_fee) for fee in fees]


async def test_blocks(client):
    payer = await funded(client)
    signature = await send(client, [sol_transfer(payer, Keypair().pubkey(), SOL // 10)], payer)
    status = await wait_status(client, signature, "confirmed")
    block = (await client.get_block(status.slot, "json", max_supported_transaction_version=0)).value
    assert block.block_height is not None and block.parent_slot == status.slot - 1
    assert signature in [tx.transaction.signatures[0] for tx in block.transactions]
    assert (await client.get_block_time(status.slot)).value == block.block_time
    finalized = (await client.get_slot(FINALIZED)).value
    blocks = (await client.get_blocks(0, status.slot)).value  # finalized by default
    assert blocks[: finalized + 1] == list(range(0, finalized + 1))
    first = (await client.get_first_available_block()).value
    assert first == 0
    commitment = (await client.get_block_commitment(status.slot)).value
    assert commitment.total_stake == 0
    assert (await client.get_transaction_count(CONFIRMED)).value >= 1
    samples = (await client.get_recent_performance_samples(5)).value
    assert samples and samples[0].num_transactions >= 1


async def test_supply_inflation_and_largest(client):
    supply = (await client.get_supply(CONFIRMED)).value
    assert supply.total > 0 and supply.circulating == supply.total
    governor = (await client.get_inflation_governor()).value
    assert governor.initial == 0.08
    rate = (await client.get_inflation_rate()).value
    assert rate.total > 0
    largest = (await client.get_largest_accounts(commitment=CONFIRMED)).value
    assert largest and largest[0].lamports >= largest[-1].lamports
