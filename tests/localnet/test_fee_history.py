"""getRecentPrioritizationFees against a hand-computed example, and its 150-block window.

The semantics are agave's (localnet/fee_history.py): per confirmed block with
transactions, the block's minimum compute-unit price maxed with the minimum of each
given account the block write-locked; blocks without transactions are absent.
"""

from __future__ import annotations

from solders.keypair import Keypair

from tests.localnet.helpers import rpc, step
from tests.localnet.leader import client, fund, leader, node, send_budgeted, slot

__all__ = ["client", "leader", "node"]  # fixtures


async def _fees(url: str, addresses: list, since: int = 0) -> list[tuple[int, int]]:
    body = await rpc(url, "getRecentPrioritizationFees", [[str(key) for key in addresses]])
    return [(f["slot"], f["prioritizationFee"]) for f in body["result"] if f["slot"] >= since]


async def test_a_hand_computed_history(client, leader):
    p1, p2, p3 = await fund(client, leader, 3)
    d1, d2, unknown = (Keypair().pubkey() for _ in range(3))
    url = leader.rpc_url
    a = await slot(client) + 1
    # Block a: price 10 writing p1 and d1; price 3 writing p2 and d2.
    await send_budgeted(client, p1, units=10_000, price=10, destination=d1)
    await send_budgeted(client, p2, units=10_000, price=3, destination=d2)
    step(leader)
    # Block a + 1: nothing. Block a + 2: price 7 writing p3 and d2; and price 1 writing
    # p1 and d1 with a unit limit of 0, which fails but lands, and which agave leaves out.
    step(leader)
    await send_budgeted(client, p3, units=10_000, price=7, destination=d2)
    failed, _ = await send_budgeted(client, p1, units=0, price=1, destination=d1)
    step(leader)
    status = (await client.get_signature_statuses([failed])).value[0]
    assert status is not None and status.err is not None and status.slot == a + 2

    # Block a + 2 is processed, not confirmed: not in the history yet.
    assert await _fees(url, [], a) == [(a, 3)]
    step(leader)
    assert await _fees(url, [], a) == [(a, 3), (a + 2, 7)]  # a + 1 had no transactions
    assert await _fees(url, [d1], a) == [(a, 10), (a + 2, 7)]
    assert await _fees(url, [d2], a) == [(a, 3), (a + 2, 7)]
    assert await _fees(url, [p1.pubkey(), d2], a) == [(a, 10), (a + 2, 7)]
    assert await _fees(url, [p3.pubkey()], a) == [(a, 3), (a + 2, 7)]
    # An account no block write-locked: each block's minimum (agave's answer), not 0.
    assert await _fees(url, [unknown], a) == [(a, 3), (a + 2, 7)]


async def test_the_newest_150_blocks_with_transactions(client, leader):
    # One competing transaction a block (20/s at 50 ms slots) at price 9.
    leader.set_faults(competing_rate=20, competing_unit_price=9)
    first = await slot(client) + 1
    step(leader, 200)
    leader.set_faults(competing_rate=0)
    confirmed = await slot(client) - 1
    fees = await _fees(leader.rpc_url, [])
    assert len(fees) == 150
    assert fees == [(s, 9) for s in range(confirmed - 149, confirmed + 1)]
    assert fees[0][0] > first
    # Empty blocks do not push them out: the cache holds blocks, not slots.
    step(leader, 20)
    later = await _fees(leader.rpc_url, [])
    assert later == [(s, 9) for s in range(confirmed - 148, confirmed + 2)]
