"""Verify through the pipeline in this process: a verify waits while its event's group is
being created, a new mint's verify is recorded with the mint's confirmation and handed to
the queue after the commit, and a verify recorded but never sent (a crash between record
and send) is sent by the confirmation loop and lands once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from solders.pubkey import Pubkey

from chainworker.config import load_settings
from chainworker.db import event_groups as group_rows
from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.model import TxOp
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline import confirm, event_groups
from chainworker.pipeline.context import PipelineContext, QueuedJob, open_context
from chainworker.pipeline.record import Deferred, Job, Submitted, record_jobs
from tests.conftest import TestDatabase
from tests.pipeline.pipeline import funded, landed


class Recorded:
    """The pipeline's JobQueue port, keeping what it was handed."""

    def __init__(self) -> None:
        self.jobs: list[QueuedJob] = []

    async def enqueue(self, jobs: Sequence[QueuedJob]) -> int:
        self.jobs.extend(jobs)
        return len(jobs)


@pytest.fixture
async def ctx(
    fresh_db: TestDatabase, localnet: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[PipelineContext]:
    settings = load_settings(solana_rpc_urls=localnet.rpc_url, state_dir=tmp_path / "state",
                             rebroadcast_interval_seconds=0.5)
    context = await open_context(settings, fresh_db.app_dsn)
    try:
        yield await funded(context)
    finally:
        await context.close()


async def statuses(admin: asyncpg.Connection, op: str) -> dict[UUID, tuple[str, str]]:
    """Each ticket's request of `op`: (status, who recorded it)."""
    rows = await admin.fetch(
        "SELECT ticket_id, status, source FROM chain_requests WHERE operation = $1", op
    )
    return {row["ticket_id"]: (row["status"], row["source"]) for row in rows}


async def settle_until(ctx: PipelineContext, admin: asyncpg.Connection, op: str, count: int,
                       queue: Recorded | None = None) -> None:
    """Confirmation rounds until `count` requests of `op` are confirmed."""
    for _ in range(200):
        await confirm.run_once(ctx, queue)
        done = await admin.fetchval(
            "SELECT count(*) FROM chain_requests WHERE operation = $1 AND status = 'confirmed'",
            op,
        )
        if done >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{op} requests did not confirm")


async def record(ctx: PipelineContext, tenant: UUID, op: TxOp, tickets: list[UUID]) -> list[Job]:
    async with tenant_transaction(ctx.pool, tenant) as conn:
        recorded = await request_rows.record_requests(
            conn, tenant, op, [NewRequest(t, op) for t in tickets], "cli"
        )
    return [Job(op, r.request_id, tenant, None) for r in recorded]


async def test_verify_waits_for_its_group_then_a_crash_before_send_loses_nothing(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=2)
    tenant, event = seeded.tenant_id, seeded.event_id
    first, second = seeded.ticket_ids

    # The group is recorded and sent; the first ticket is minted meanwhile.
    requested = await event_groups.create_group(ctx, tenant, event)
    assert requested.created and requested.group.is_live
    mints = await record_jobs(ctx, await record(ctx, tenant, TxOp.MINT, [first]))
    assert isinstance(mints[0], Submitted)
    await ctx.rpc.send_raw(mints[0].prepared.raw)
    await landed(ctx.rpc, [mints[0].prepared.signature])
    # Its mint confirms while the group is in flight: no verify is recorded for it yet.
    await settle_until(ctx, admin_conn, "mint", 1)
    assert await statuses(admin_conn, "verify") == {}

    # Asked for now, the verify waits for the group rather than being refused.
    verify_jobs = await record(ctx, tenant, TxOp.VERIFY, [first])
    [outcome] = await record_jobs(ctx, verify_jobs)
    assert isinstance(outcome, Deferred), outcome
    for _ in range(200):
        if not await event_groups.settle_round(ctx):
            break
        await asyncio.sleep(0.05)
    async with tenant_transaction(ctx.pool, tenant) as conn:
        group = (await group_rows.of_events(conn, [event]))[event]
    assert group.is_confirmed

    # Recorded, and the process dies before sending: the bytes are in the row only.
    [outcome] = await record_jobs(ctx, verify_jobs)
    assert isinstance(outcome, Submitted), outcome
    unsent = await admin_conn.fetchval(
        "SELECT status FROM pending_transactions WHERE tx_type = 'verify'"
    )
    assert unsent == "pending"
    assert await ctx.rpc.signature_statuses([outcome.prepared.signature]) == [None]
    # the loop rebroadcasts the recorded bytes once the interval has passed
    await settle_until(ctx, admin_conn, "verify", 1)
    state = await ctx.rpc.get_mint_state(ctx.keys.mint_address(tenant, first))
    assert state is not None and state.mint_authority is None
    member = state.groups.member
    assert member is not None and str(member.group) == group.group_mint
    assert member.member_number == 1

    # With the group confirmed, the second ticket's verify comes with its mint, and the
    # queue is handed it after the commit.
    queue = Recorded()
    mints = await record_jobs(ctx, await record(ctx, tenant, TxOp.MINT, [second]))
    assert isinstance(mints[0], Submitted)
    await ctx.rpc.send_raw(mints[0].prepared.raw)
    await landed(ctx.rpc, [mints[0].prepared.signature])
    await settle_until(ctx, admin_conn, "mint", 2, queue)
    verifies = await statuses(admin_conn, "verify")
    assert verifies[second] == ("queued", "worker")
    auto = await admin_conn.fetchval(
        "SELECT id FROM chain_requests WHERE operation = 'verify' AND ticket_id = $1", second
    )
    assert queue.jobs == [(auto, tenant, TxOp.VERIFY)]
    [outcome] = await record_jobs(ctx, [Job(TxOp.VERIFY, auto, tenant, None)])
    assert isinstance(outcome, Submitted)
    await ctx.rpc.send_raw(outcome.prepared.raw)
    await settle_until(ctx, admin_conn, "verify", 2)
    state = await ctx.rpc.get_mint_state(ctx.keys.mint_address(tenant, second))
    assert state is not None and state.groups.member is not None
    assert state.groups.member.member_number == 2
    group_state = await ctx.rpc.get_mint_state(Pubkey.from_string(group.group_mint))
    assert group_state is not None and group_state.groups.group is not None
    assert group_state.groups.group.size == 2
    # One attempt each: nothing was sent twice to land.
    assert await admin_conn.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE tx_type = 'verify'"
    ) == 2


async def test_two_creations_of_one_events_group_at_once_record_one(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=1)
    both = await asyncio.gather(*(
        event_groups.create_group(ctx, seeded.tenant_id, seeded.event_id) for _ in range(6)
    ))  # six at once sign the same bytes: they meet on the signature as on the event
    assert sorted(r.created for r in both) == [False] * 5 + [True]
    assert len({r.group for r in both}) == 1
    assert await admin_conn.fetchval("SELECT count(*) FROM chainworker_event_groups") == 1
    with pytest.raises(event_groups.UnknownEvent):
        await event_groups.create_group(ctx, seeded.tenant_id, seeded.ticket_ids[0])
