"""The leader's block packing, seen from a client: limits, priority, waiting, expiry, the buffer.

One localnet for the module, its clock frozen by each test and stepped block by block,
so every landing slot is exact. Payers are funded under the default limits; each test
then sets the limits it is about (clearing faults restores the node's own).
"""

from __future__ import annotations

import httpx
import pytest
from solders.keypair import Keypair

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


async def test_the_block_limit_holds_the_requested_units(client, leader):
    payers = await fund(client, leader, 5)
    leader.set_faults(block_unit_limit=1_000_000, account_unit_limit=0)
    start = await slot(client)
    signatures = [
        (await send_budgeted(client, payer, units=300_000, price=0))[0] for payer in payers
    ]
    step(leader)
    # 3 x 300,000 fit in 1,000,000; the other two wait for the next block.
    assert await landed_slots(client, signatures) == [start + 1] * 3 + [None] * 2
    block = scheduler_stats(leader)["blocks"][-1]
    assert (block["slot"], block["units"], block["transactions"]) == (start + 1, 900_000, 3)
    assert block["deferred_for_limits"] == 2
    step(leader)
    assert await landed_slots(client, signatures) == [start + 1] * 3 + [start + 2] * 2


async def test_the_account_limit_holds_per_write_locked_account(client, leader):
    payers = await fund(client, leader, 5)
    leader.set_faults(block_unit_limit=0, account_unit_limit=600_000)
    start = await slot(client)
    shared = Keypair().pubkey()
    # Four payers write one account: two of them fit its 600,000 a block.
    to_shared = [
        (await send_budgeted(client, payer, units=250_000, price=0, destination=shared))[0]
        for payer in payers[:4]
    ]
    # Sent last, writing accounts of its own: nothing holds it back.
    elsewhere, _ = await send_budgeted(client, payers[4], units=250_000, price=0)
    step(leader)
    assert await landed_slots(client, [*to_shared, elsewhere]) == [
        start + 1,
        start + 1,
        None,
        None,
        start + 1,
    ]
    step(leader)
    assert await landed_slots(client, to_shared) == [start + 1] * 2 + [start + 2] * 2


async def test_the_fee_payer_is_a_write_locked_account(client, leader):
    (payer,) = await fund(client, leader, 1)
    leader.set_faults(block_unit_limit=0, account_unit_limit=600_000)
    start = await slot(client)
    signatures = [
        (await send_budgeted(client, payer, units=250_000, price=0, lamports=1_000 + i))[0]
        for i in range(3)
    ]
    step(leader)
    assert await landed_slots(client, signatures) == [start + 1, start + 1, None]
    step(leader)
    assert (await landed_slots(client, signatures))[2] == start + 2


async def test_higher_price_first_then_arrival(client, leader):
    payers = await fund(client, leader, 4)
    leader.set_faults(block_unit_limit=300_000)  # one transaction a block
    start = await slot(client)
    prices = [1, 5, 5, 0]
    signatures = [
        (await send_budgeted(client, payer, units=300_000, price=price))[0]
        for payer, price in zip(payers, prices, strict=True)
    ]
    step(leader, 4)
    # 5 (sent second), 5 (sent third), 1 (sent first), 0.
    assert await landed_slots(client, signatures) == [start + 3, start + 1, start + 2, start + 4]


async def test_what_does_not_fit_waits_then_lands(client, leader):
    (payer,) = await fund(client, leader, 1)
    leader.set_faults(block_unit_limit=300_000)
    start = await slot(client)
    signature, _ = await send_budgeted(client, payer, units=400_000, price=0)  # never fits
    step(leader, 10)
    assert await landed_slots(client, [signature]) == [None]
    assert scheduler_stats(leader)["pending"] == 1
    leader.set_faults(block_unit_limit=400_000)
    step(leader)
    assert await landed_slots(client, [signature]) == [start + 11]


async def test_what_waits_past_its_blockhash_is_dropped(client, leader):
    (payer,) = await fund(client, leader, 1)
    leader.set_faults(block_unit_limit=300_000)
    before = scheduler_stats(leader)["totals"]["dropped_expired"]
    signature, last_valid = await send_budgeted(client, payer, units=400_000, price=0)
    step(leader, last_valid - await height(client))
    # At lastValidBlockHeight it could still land: it waits.
    assert await height(client) == last_valid
    stats = scheduler_stats(leader)
    assert (stats["pending"], stats["totals"]["dropped_expired"]) == (1, before)
    step(leader)
    stats = scheduler_stats(leader)
    assert (stats["pending"], stats["totals"]["dropped_expired"]) == (0, before + 1)
    assert stats["blocks"][-1]["dropped_expired"] == 1
    leader.set_faults(block_unit_limit=0)  # it would fit now: it is gone
    step(leader, 2)
    assert await landed_slots(client, [signature]) == [None]


async def test_a_full_buffer_drops_the_lowest_priority_newest_first(client, leader):
    payers = await fund(client, leader, 5)
    leader.set_faults(pending_limit=3)
    before = scheduler_stats(leader)["totals"]["dropped_buffer_full"]
    prices = [1, 2, 1, 3, 0]
    signatures = [
        (await send_budgeted(client, payer, units=10_000, price=price))[0]
        for payer, price in zip(payers, prices, strict=True)
    ]
    # The fourth (3) pushed out the third (1, newer than the first); the fifth (0) was the
    # lowest itself.
    stats = scheduler_stats(leader)
    assert stats["pending"] == 3
    assert stats["totals"]["dropped_buffer_full"] == before + 2
    step(leader, 2)
    slots = await landed_slots(client, signatures)
    assert [slot is not None for slot in slots] == [True, True, False, True, False]


async def test_clearing_faults_restores_the_node_own_settings(leader):
    changed = leader.set_faults(block_unit_limit=5, competing_rate=2.5)
    assert (changed["block_unit_limit"], changed["competing_rate"]) == (5, 2.5)
    cleared = leader.clear_faults()
    assert (cleared["block_unit_limit"], cleared["account_unit_limit"]) == (60_000_000, 24_000_000)
    assert (cleared["pending_limit"], cleared["competing_rate"]) == (100_000, 0.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"block_unit_limit": -1}, "block_unit_limit"),
        ({"account_unit_limit": 1.5}, "account_unit_limit"),
        ({"pending_limit": True}, "pending_limit"),
        ({"competing_rate": "fast"}, "competing_rate"),
        ({"competing_rate": 1_000_000}, "competing_rate"),
        ({"competing_unit_price": 10**10}, "competing_unit_price"),
        ({"competing_unit_limit": 0}, "competing_unit_limit"),
        ({"competing_unit_limit": 1_400_001}, "competing_unit_limit"),
        ({"competing_accounts": 0}, "competing_accounts"),
    ],
)
async def test_a_bad_setting_is_refused_naming_it_and_changes_nothing(leader, change, field):
    before = leader.get_faults()
    async with httpx.AsyncClient() as http:
        # A good change alongside is not applied either.
        response = await http.post(leader.faults_url, json={"block_unit_limit": 7, **change})
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert leader.get_faults() == before
