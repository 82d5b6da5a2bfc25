"""The competing load: other users' transactions filling the blocks chainworker needs.

Blocks of 1,000,000 units against a load of 10 transactions a block (200/s at 50 ms
slots) of 200,000 units each at 1,000 micro-lamports a unit: 5 fit a block, 5 wait.
"""

from __future__ import annotations

import math

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from chainworker.localnet.competing import message_bytes
from tests.localnet.helpers import step
from tests.localnet.leader import (
    client,
    fund,
    height,
    landed_slots,
    leader,
    node,
    scheduler_stats,
    send_budgeted,
    slot,
)

__all__ = ["client", "leader", "node"]  # fixtures

FULL_BLOCKS = {
    "block_unit_limit": 1_000_000,
    "competing_rate": 200,
    "competing_unit_price": 1_000,
    "competing_unit_limit": 200_000,
}


def test_the_message_is_the_one_solders_compiles() -> None:
    payer, blockhash = Pubkey.new_unique(), Hash.new_unique()
    instructions = [
        set_compute_unit_limit(123_456),
        set_compute_unit_price(789),
        transfer(TransferParams(from_pubkey=payer, to_pubkey=payer, lamports=42)),
    ]
    compiled = Message.new_with_blockhash(instructions, payer, blockhash)
    assert message_bytes(payer, blockhash, 123_456, 789, 42) == bytes(compiled)


async def test_a_low_price_waits_for_the_load_to_stop_a_high_price_does_not(client, leader):
    low_payer, high_payer = await fund(client, leader, 2)
    leader.set_faults(**FULL_BLOCKS)
    step(leader, 4)
    low, _ = await send_budgeted(client, low_payer, units=200_000, price=0)
    high, _ = await send_budgeted(client, high_payer, units=200_000, price=2_000)
    sent = await slot(client)
    step(leader)
    assert await landed_slots(client, [low, high]) == [None, sent + 1]
    step(leader, 15)
    assert await landed_slots(client, [low]) == [None]
    blocks = scheduler_stats(leader)["blocks"][-15:]
    assert [b["competing"] for b in blocks] == [5] * 15
    assert all(b["units"] == 1_000_000 and b["deferred_for_limits"] > 0 for b in blocks)

    leader.set_faults(competing_rate=0)
    stopped = await slot(client)
    waiting = scheduler_stats(leader)["pending"]  # the load's backlog, and `low` last
    step(leader, math.ceil(waiting / 5) + 2)
    assert await landed_slots(client, [low]) == [stopped + math.ceil(waiting / 5)]


async def test_a_low_price_expires_behind_the_load(client, leader):
    (payer,) = await fund(client, leader, 1)
    leader.set_faults(**FULL_BLOCKS)
    low, last_valid = await send_budgeted(client, payer, units=200_000, price=0)
    before = scheduler_stats(leader)["totals"]["dropped_expired"]
    step(leader, last_valid - await height(client) + 1)
    stats = scheduler_stats(leader)
    assert stats["totals"]["dropped_expired"] > before
    # The load's own backlog expires too, so the buffer stays bounded by the window.
    assert stats["pending"] <= 5 * 151
    leader.set_faults(competing_rate=0, block_unit_limit=0)
    step(leader, 2)
    assert await landed_slots(client, [low]) == [None]


async def test_the_account_limit_caps_a_load_on_one_account(client, leader):
    leader.set_faults(**FULL_BLOCKS, account_unit_limit=400_000, competing_accounts=1)
    step(leader, 3)
    assert [b["competing"] for b in scheduler_stats(leader)["blocks"][-3:]] == [2, 2, 2]
    # Spread over 16 accounts, the block limit binds instead.
    leader.set_faults(competing_accounts=16)
    step(leader, 3)
    assert [b["competing"] for b in scheduler_stats(leader)["blocks"][-3:]] == [5, 5, 5]


async def test_airdrops_go_before_the_load(client, leader):
    leader.set_faults(**{**FULL_BLOCKS, "competing_unit_price": 10**9})
    step(leader, 3)
    airdrop = (await client.request_airdrop(Pubkey.new_unique(), 10**9)).value
    sent = await slot(client)
    step(leader)
    assert await landed_slots(client, [airdrop]) == [sent + 1]
