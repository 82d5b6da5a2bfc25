"""Fee-payer top-ups follow the rules of every other chainworker transaction: recorded
before they are sent, rebroadcast while valid, expired only once certainly past, never
two live for one payer (two workers racing on one low balance send one), and a payer
still low after an expiry gets a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from chainworker.config import load_settings
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline import top_up
from chainworker.pipeline.context import PipelineContext, open_context
from tests.conftest import TestDatabase
from tests.helpers import wait_for
from tests.pipeline.pipeline import funded

pytestmark = pytest.mark.timeout(120)

MIN_LAMPORTS = 10_000_000
TOP_UP_LAMPORTS = 30_000_000


@pytest.fixture
async def two_workers(
    fresh_db: TestDatabase, localnet_faults: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[tuple[PipelineContext, PipelineContext]]:
    """Two workers' contexts sharing one pool of two payers (one state directory)."""
    settings = load_settings(
        solana_rpc_urls=[localnet_faults.rpc_url], state_dir=tmp_path / "state",
        fee_payer_count=2, fee_payer_min_lamports=MIN_LAMPORTS,
        fee_payer_top_up_lamports=TOP_UP_LAMPORTS, blockhash_cache_seconds=0.1,
    )
    first = await funded(await open_context(settings, fresh_db.app_dsn))
    second = await open_context(settings, fresh_db.app_dsn)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def top_ups(admin: asyncpg.Connection) -> list[asyncpg.Record]:
    return await admin.fetch(
        "SELECT payer, status, tx_signature, last_valid_block_height, last_sent_at"
        " FROM chainworker_fee_payer_top_ups ORDER BY id"
    )


async def test_racing_workers_send_one_top_up_per_payer_and_it_confirms(
    two_workers: tuple[PipelineContext, PipelineContext], admin_conn: asyncpg.Connection,
) -> None:
    first, second = two_workers
    rounds = [await top_up.top_up_round(first), await top_up.top_up_round(second)]
    assert [r.sent for r in rounds] == [2, 0]  # the second saw them live: it sent none
    recorded = await top_ups(admin_conn)
    assert len(recorded) == 2 and {r["status"] for r in recorded} == {"pending"}
    assert all(r["last_sent_at"] is not None for r in recorded)  # recorded, then sent

    async def settled() -> bool:
        await top_up.top_up_round(first)
        return {r["status"] for r in await top_ups(admin_conn)} == {"confirmed"}

    await wait_for(settled, 30, "both top-ups confirmed")
    result = await top_up.top_up_round(second)
    assert sorted(result.balances.values()) == [TOP_UP_LAMPORTS, TOP_UP_LAMPORTS]
    assert result.sent == 0 and len(await top_ups(admin_conn)) == 2
    # Both workers' pools now use the payers.
    assert second.payers.take() is not None


async def test_a_top_up_that_never_lands_expires_and_the_payer_gets_another(
    two_workers: tuple[PipelineContext, PipelineContext], admin_conn: asyncpg.Connection,
    localnet_faults: LocalnetProcess,
) -> None:
    ctx, _ = two_workers
    localnet_faults.set_faults(drop_rate=1.0)  # accepted, never landing
    assert (await top_up.top_up_round(ctx)).sent == 2
    first_round = await top_ups(admin_conn)
    # Rebroadcasts while valid, and no second top-up while the first is live.
    assert (await top_up.top_up_round(ctx)).sent == 0
    last_valid = max(r["last_valid_block_height"] for r in first_round)
    localnet_faults.set_faults(warp_slots=160)  # past every last valid height
    assert await ctx.rpc.block_height() > last_valid

    async def expired() -> bool:
        await top_up.top_up_round(ctx)
        statuses = [r["status"] for r in await top_ups(admin_conn)]
        return statuses[:2] == ["expired", "expired"]

    await wait_for(expired, 30, "both top-ups expired")  # two unknown reads past the height
    localnet_faults.set_faults(drop_rate=0.0)

    async def funded_again() -> bool:
        await top_up.top_up_round(ctx)
        rows = await top_ups(admin_conn)
        return len(rows) == 4 and [r["status"] for r in rows[2:]] == ["confirmed"] * 2

    await wait_for(funded_again, 30, "new top-ups, confirmed")
    rows = await top_ups(admin_conn)
    assert {r["payer"] for r in rows[:2]} == {r["payer"] for r in rows[2:]}
    # None of the expired ones is on chain.
    for row in rows[:2]:
        assert await ctx.rpc.get_transaction(row["tx_signature"]) is None
