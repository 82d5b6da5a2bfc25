"""Capacity as a leader gives it, on a localnet that schedules like one.

A leader charges every transaction's requested unit limit to each account it write-locks
and gives one account at most `account_unit_limit` per block. One fee payer therefore caps
the worker at floor(account limit / units per mint) mints per block; a pool of payers
passes that. Under a competing flood at a higher price, attempts wait, expire, and their
replacements offer more until one lands, and no ticket is minted twice.

Rates are read per block from the chain's own record (the slot each attempt landed in),
not from a clock: the ceiling is a count per block.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from chainworker.chain import fees
from chainworker.chain.rpc import SolanaRpc
from chainworker.localnet.process import LocalnetProcess, start_localnet
from tests.conftest import TestDatabase
from tests.helpers import Stack, WorkerProcess, wait_for
from tests.jobs.test_lifecycle_e2e import request_statuses, settled

pytestmark = pytest.mark.timeout(240)

SLOT_MS = 100
# About ten mints' requested units (a mint asks for some 41,000-52,000): a low ceiling,
# reached quickly by a burst.
ACCOUNT_UNIT_LIMIT = 420_000
MINTS = 60


def unit_limit_of(raw: bytes) -> int:
    budget = fees.requested_budget(raw)
    assert budget is not None and budget[0] is not None
    return budget[0]


@pytest.fixture(scope="module")
def scheduled_localnet() -> Iterator[LocalnetProcess]:
    with start_localnet(slot_ms=SLOT_MS, seed=23, extra_args=[
        "--account-unit-limit", str(ACCOUNT_UNIT_LIMIT),
    ]) as node:
        yield node


async def landed_per_block(
    admin: asyncpg.Connection, tenant: str
) -> tuple[dict[int, dict[Pubkey, list[int]]], int]:
    """slot -> payer -> requested unit limits of the mints that landed there; median limit."""
    rows = await admin.fetch(
        "SELECT slot, serialized_tx FROM pending_transactions"
        " WHERE tenant_id = $1 AND status = 'confirmed' AND tx_type = 'mint'",
        UUID(tenant),
    )
    blocks: dict[int, dict[Pubkey, list[int]]] = defaultdict(lambda: defaultdict(list))
    limits = []
    for row in rows:
        raw = row["serialized_tx"]
        payer = VersionedTransaction.from_bytes(raw).message.account_keys[0]
        limit = unit_limit_of(raw)
        blocks[row["slot"]][payer].append(limit)
        limits.append(limit)
    return blocks, sorted(limits)[len(limits) // 2]


async def started(worker: WorkerProcess) -> None:
    """Until the worker's start line (its payers funded, when it has a pool)."""

    async def logged() -> bool:
        return "worker started" in worker.output()

    await wait_for(logged, 30, "the worker to start")


async def mint_all(stack: Stack, admin: asyncpg.Connection, **env: str) -> str:
    seeded = stack.cli_json("seed", "--tickets", str(MINTS), "--users", "10")
    tenant = seeded["tenant_id"]
    worker = stack.worker(0, **env)
    try:
        await started(worker)
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"]))
        await wait_for(lambda: settled(admin, tenant, MINTS), 120, f"{MINTS} mints")
    finally:
        worker.stop()
    assert await request_statuses(admin, tenant) == {"confirmed": MINTS}, worker.output()[-3000:]
    return tenant


async def test_one_payer_stops_at_its_ceiling_and_a_pool_passes_it(
    fresh_db: TestDatabase, redis_url: str, scheduled_localnet: LocalnetProcess,
    admin_conn: asyncpg.Connection, tmp_path: Path,
) -> None:
    stack = Stack(db=fresh_db, redis_url=redis_url, rpc_urls=scheduled_localnet.rpc_url,
                  state_dir=tmp_path / "state")
    alone = await mint_all(stack, admin_conn)
    blocks, median = await landed_per_block(admin_conn, alone)
    ceiling = ACCOUNT_UNIT_LIMIT // median
    assert 5 <= ceiling <= 12  # the scaled-down limit holds about ten mints
    for slot, by_payer in blocks.items():
        assert len(by_payer) == 1  # the authority paid them all
        for limits in by_payer.values():
            assert sum(limits) <= ACCOUNT_UNIT_LIMIT, slot  # the leader's rule held
    busiest = max(sum(len(v) for v in by_payer.values()) for by_payer in blocks.values())
    # The burst filled blocks up to the ceiling, and never beyond it.
    assert ceiling - 1 <= busiest <= ceiling + 1, (busiest, ceiling)

    pooled = await mint_all(stack, admin_conn, FEE_PAYER_COUNT="3",
                            FEE_PAYER_MIN_LAMPORTS="50000000",
                            FEE_PAYER_TOP_UP_LAMPORTS="500000000")
    blocks, _ = await landed_per_block(admin_conn, pooled)
    busiest = max(sum(len(v) for v in by_payer.values()) for by_payer in blocks.values())
    payers = {payer for by_payer in blocks.values() for payer in by_payer}
    assert len(payers) == 3
    for by_payer in blocks.values():
        for limits in by_payer.values():
            assert sum(limits) <= ACCOUNT_UNIT_LIMIT
    assert busiest > ceiling + 1, (busiest, ceiling)  # more mints per block than one payer gets


COMPETING_PRICE = 5_000


@pytest.fixture
def flooded_localnet() -> Iterator[LocalnetProcess]:
    # Ten competing transactions of 200,000 units fill a 2M-unit block; 600 a second at
    # 20 ms slots offer twelve a block, so a backlog at COMPETING_PRICE never drains.
    with start_localnet(slot_ms=20, seed=29, extra_args=[
        "--block-unit-limit", "2000000", "--account-unit-limit", "2000000",
        "--competing-rate", "600", "--competing-unit-price", str(COMPETING_PRICE),
        "--competing-unit-limit", "200000", "--competing-accounts", "64",
    ]) as node:
        yield node


async def test_under_a_flood_replacements_raise_their_fee_until_they_land_once(
    fresh_db: TestDatabase, redis_url: str, flooded_localnet: LocalnetProcess,
    admin_conn: asyncpg.Connection, tmp_path: Path,
) -> None:
    stack = Stack(db=fresh_db, redis_url=redis_url, rpc_urls=flooded_localnet.rpc_url,
                  state_dir=tmp_path / "state")
    seeded = stack.cli_json("seed", "--tickets", "4", "--users", "4")
    tenant = seeded["tenant_id"]
    # The first attempt offers the cheapest recent price (0: blocks before the flood);
    # each replacement doubles from 2,000: 4,000 still loses to the flood, 8,000 wins.
    worker = stack.worker(PRIORITY_FEE_PERCENTILE="0", PRIORITY_FEE_RAISE_FACTOR="2",
                          PRIORITY_FEE_RAISE_FLOOR_MICROLAMPORTS="2000", MAX_RETRIES="6")
    try:
        await started(worker)
        # A block with a price-0 transaction (airdrops go first) in the fee window, so
        # that the first attempts read 0 as the cheapest recent price, not the flood's.
        async with SolanaRpc([flooded_localnet.rpc_url]) as rpc:
            await rpc.wait_for_confirmation(
                await rpc.request_airdrop(Keypair().pubkey(), 1_000_000), 10
            )
        stack.cli("enqueue", "mint", "--tenant", tenant, "--ticket", "-",
                  stdin="\n".join(seeded["ticket_ids"]))
        await wait_for(lambda: settled(admin_conn, tenant, 4), 180, "four mints")
    finally:
        worker.stop()
    assert await request_statuses(admin_conn, tenant) == {"confirmed": 4}, \
        worker.output()[-3000:]

    rows = await admin_conn.fetch(
        "SELECT ticket_id, attempt, status, tx_signature, serialized_tx"
        " FROM pending_transactions WHERE tenant_id = $1 ORDER BY ticket_id, attempt",
        UUID(tenant),
    )
    by_ticket: dict[UUID, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_ticket[row["ticket_id"]].append(row)
    async with SolanaRpc([flooded_localnet.rpc_url]) as rpc:
        for attempts in by_ticket.values():
            prices = [fees.fee_of(a["serialized_tx"]) for a in attempts]
            offered = [p[0] for p in prices if p is not None]
            assert offered == sorted(offered) and len(set(offered)) == len(offered), offered
            statuses = Counter(a["status"] for a in attempts)
            assert statuses["confirmed"] == 1 and statuses["replaced"] == len(attempts) - 1
            assert len(attempts) >= 2  # the first attempt could not land under the flood
            assert offered[-1] > COMPETING_PRICE  # the one that landed outbid the flood
            # None of the replaced attempts is on chain: one landing per ticket.
            on_chain = [await rpc.get_transaction(a["tx_signature"]) for a in attempts]
            assert [t is not None for t in on_chain] == [a["status"] == "confirmed"
                                                         for a in attempts]
