"""Recording jobs' requests: one flush of concurrent jobs, against real PostgreSQL and the
localnet.

Ordinary requests are recorded together, refusals with their reasons in the same flush;
a busy ticket waits (Deferred) without holding up the rest of its group, and nothing of
another tenant is touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from arq.connections import ArqRedis
from solders.transaction import VersionedTransaction

from chainworker.config import load_settings
from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.model import TxOp
from chainworker.lifecycle.ticket_rules import RefusalCode
from chainworker.localnet.process import LocalnetProcess
from chainworker.obs import metrics
from chainworker.pipeline.context import PipelineContext, open_context
from chainworker.pipeline.record import (
    BUSY_DEFER_SECONDS,
    Declined,
    Deferred,
    Job,
    Skipped,
    SubmitGroup,
    Submitted,
    record_jobs,
)
from tests.conftest import TestDatabase


@pytest.fixture
async def ctx(
    fresh_db: TestDatabase, arq: ArqRedis, localnet: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[PipelineContext]:
    settings = load_settings(solana_rpc_urls=localnet.rpc_url, state_dir=tmp_path / "state")
    context = await open_context(settings, fresh_db.app_dsn)
    try:
        yield context
    finally:
        await context.rpc.close()
        await context.pool.close()


async def record(ctx: PipelineContext, tenant: UUID, op: str, tickets: list[UUID]) -> list[UUID]:
    async with tenant_transaction(ctx.pool, tenant) as conn:
        recorded = await request_rows.record_requests(
            conn, tenant, op, [NewRequest(t, op) for t in tickets], "cli"  # type: ignore[arg-type]
        )
    return [r.request_id for r in recorded]


async def attempts(admin: asyncpg.Connection) -> dict[UUID, tuple[int, str]]:
    rows = await admin.fetch("SELECT request_id, attempt, tx_signature FROM pending_transactions")
    return {row["request_id"]: (row["attempt"], row["tx_signature"]) for row in rows}


async def statuses(admin: asyncpg.Connection) -> dict[UUID, str]:
    rows = await admin.fetch("SELECT id, status FROM chain_requests")
    return {row["id"]: row["status"] for row in rows}


async def test_one_flush_records_the_ordinary_and_hands_back_the_rest(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    a = await seed_data.seed_tenant(admin_conn, tickets=6, tenant_name="A")
    b = await seed_data.seed_tenant(admin_conn, tickets=1, tenant_name="B")
    ordinary = await record(ctx, a.tenant_id, "mint", a.ticket_ids[:3])
    [not_sold] = await record(ctx, a.tenant_id, "mint", [a.ticket_ids[3]])
    await admin_conn.execute(
        "UPDATE tickets SET status = 'cancelled' WHERE id = $1", a.ticket_ids[3]
    )
    [submitted] = await record(ctx, a.tenant_id, "mint", [a.ticket_ids[4]])
    await admin_conn.execute(
        "UPDATE chain_requests SET status = 'submitted' WHERE id = $1", submitted
    )
    [wrong_op] = await record(ctx, a.tenant_id, "mint", [a.ticket_ids[5]])
    [other_tenant] = await record(ctx, b.tenant_id, "mint", b.ticket_ids)
    before = await statuses(admin_conn)

    jobs = [Job(TxOp.MINT, rid, a.tenant_id, f"job-{rid}") for rid in ordinary]
    jobs += [
        Job(TxOp.MINT, ordinary[0], a.tenant_id, "a duplicate delivery"),
        Job(TxOp.MINT, not_sold, a.tenant_id, None),
        Job(TxOp.MINT, submitted, a.tenant_id, None),
        Job(TxOp.BURN, wrong_op, a.tenant_id, None),
        Job(TxOp.MINT, other_tenant, a.tenant_id, None),  # B's request, asked as A
    ]
    results = await record_jobs(ctx, jobs)

    recorded = await attempts(admin_conn)
    assert set(recorded) == set(ordinary)
    for rid, result in zip(ordinary, results[:3], strict=True):
        assert isinstance(result, Submitted)
        assert recorded[rid] == (1, result.prepared.signature)
        transaction = VersionedTransaction.from_bytes(result.prepared.raw)
        assert str(transaction.signatures[0]) == result.prepared.signature
    # The same request twice: recorded once; the second delivery finds it submitted.
    assert results[3] == Skipped("nothing to do: request is submitted")
    # The refusal is recorded in the same flush, with its reason.
    assert isinstance(results[4], Declined)
    assert results[4].refusal.code == RefusalCode.STATUS_NOT_ALLOWED
    assert results[5] == Skipped("nothing to do: request is submitted")
    assert results[6] == Skipped("rejected: request is a mint, not a burn")
    assert results[7] == Skipped("unknown request")
    after = await statuses(admin_conn)
    assert {rid: after[rid] for rid in ordinary} == dict.fromkeys(ordinary, "submitted")
    assert after[not_sold] == "refused"
    unchanged = [submitted, wrong_op, other_tenant]
    assert {rid: after[rid] for rid in unchanged} == {rid: before[rid] for rid in unchanged}
    job_ids = await admin_conn.fetch("SELECT request_id, job_id FROM pending_transactions")
    assert {row["request_id"]: row["job_id"] for row in job_ids} == {
        rid: f"job-{rid}" for rid in ordinary
    }


async def test_a_ticket_with_a_live_transaction_waits_without_holding_up_its_group(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    a = await seed_data.seed_tenant(admin_conn, tickets=2)
    [busy, other] = await record(ctx, a.tenant_id, "mint", a.ticket_ids)
    [first] = await record_jobs(ctx, [Job(TxOp.MINT, busy, a.tenant_id, None)])
    assert isinstance(first, Submitted)
    # The mint is live; asked again, it must wait for that one, and must not take the
    # rest of its group down with it.
    await admin_conn.execute("UPDATE chain_requests SET status = 'queued' WHERE id = $1", busy)
    again, joined = await record_jobs(
        ctx, [Job(TxOp.MINT, busy, a.tenant_id, None), Job(TxOp.MINT, other, a.tenant_id, None)]
    )
    assert again == Deferred(BUSY_DEFER_SECONDS)
    assert isinstance(joined, Submitted)
    recorded = await attempts(admin_conn)
    assert recorded == {
        busy: (1, first.prepared.signature), other: (1, joined.prepared.signature)
    }


async def test_a_ticket_locked_elsewhere_holds_up_only_its_own_request(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, fresh_db: TestDatabase
) -> None:
    """A group must not wait on a row lock for as long as it is held: it is split, and
    only the request whose ticket is locked waits, alone, for the lock."""
    a = await seed_data.seed_tenant(admin_conn, tickets=3)
    ids = await record(ctx, a.tenant_id, "mint", a.ticket_ids)
    holder = await asyncpg.connect(fresh_db.admin_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", a.ticket_ids[1])
            flush = asyncio.create_task(
                record_jobs(ctx, [Job(TxOp.MINT, i, a.tenant_id, None) for i in ids])
            )
            # Without the group's lock timeout nothing is recorded until the holder lets go.
            for _ in range(150):
                if len(await attempts(admin_conn)) == 2:
                    break
                await asyncio.sleep(0.1)
            assert set(await attempts(admin_conn)) == {ids[0], ids[2]}
            assert not flush.done()  # the locked ticket's request waits for its lock
    finally:
        await holder.close()
    outcomes = await asyncio.wait_for(flush, 15)
    assert all(isinstance(outcome, Submitted) for outcome in outcomes)
    assert set(await attempts(admin_conn)) == set(ids)
    assert set((await statuses(admin_conn)).values()) == {"submitted"}


async def test_a_request_waiting_for_a_lock_does_not_hold_up_the_flushes_behind_it(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, fresh_db: TestDatabase
) -> None:
    """Jobs share one flush at a time: the request that must wait for a lock waits in its
    own job, and the next flush goes on meanwhile."""
    a = await seed_data.seed_tenant(admin_conn, tickets=4)
    ids = await record(ctx, a.tenant_id, "mint", a.ticket_ids)
    group = SubmitGroup(ctx, max_group=8, linger_seconds=0.05)
    holder = await asyncpg.connect(fresh_db.admin_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", a.ticket_ids[1])
            first = [
                asyncio.create_task(group.submit(Job(TxOp.MINT, i, a.tenant_id, None)))
                for i in ids[:3]
            ]
            # Split by its lock timeout, the group hands its requests back: two get through.
            outcomes = await asyncio.wait_for(asyncio.gather(first[0], first[2]), 15)
            assert all(isinstance(outcome, Submitted) for outcome in outcomes)
            # A later job gets its own flush while the locked ticket's request still waits.
            later = await asyncio.wait_for(
                group.submit(Job(TxOp.MINT, ids[3], a.tenant_id, None)), 15
            )
            assert isinstance(later, Submitted)
            assert not first[1].done()
    finally:
        await holder.close()
    assert isinstance(await asyncio.wait_for(first[1], 15), Submitted)
    await group.close()
    assert set(await attempts(admin_conn)) == set(ids)


@pytest.mark.parametrize(("limit", "recorded"), [(10**10, 2), (1000, 0)])
async def test_a_tenants_spending_limit_is_weighed_for_each_request(
    ctx: PipelineContext, admin_conn: asyncpg.Connection, limit: int, recorded: int
) -> None:
    a = await seed_data.seed_tenant(admin_conn, tickets=2)
    await admin_conn.execute(
        """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                        daily_limit, weekly_limit, monthly_limit)
           VALUES ($1, NULL, 'LAM', $2, $2, $2, $2)""",
        a.tenant_id, limit,
    )
    rids = await record(ctx, a.tenant_id, "mint", a.ticket_ids)
    results = await record_jobs(ctx, [Job(TxOp.MINT, rid, a.tenant_id, None) for rid in rids])
    # Within the limit they are recorded; past it, each records its refusal, with its reason.
    assert sum(isinstance(result, Submitted) for result in results) == recorded
    refused = [result for result in results if isinstance(result, Declined)]
    assert [r.refusal.code for r in refused] == [RefusalCode.SPEND_LIMIT] * (2 - recorded)
    assert len(await attempts(admin_conn)) == recorded
    assert list((await statuses(admin_conn)).values()).count("refused") == 2 - recorded


async def test_concurrent_submits_share_a_flush_and_each_gets_its_own_outcome(
    ctx: PipelineContext, admin_conn: asyncpg.Connection
) -> None:
    a = await seed_data.seed_tenant(admin_conn, tickets=20)
    rids = await record(ctx, a.tenant_id, "mint", a.ticket_ids)
    recorded_before = group_size_sum()
    group = SubmitGroup(ctx, max_group=8, linger_seconds=0.01)
    try:
        outcomes = await asyncio.gather(
            *(group.submit(Job(TxOp.MINT, rid, a.tenant_id, None)) for rid in rids),
            group.submit(Job(TxOp.MINT, uuid4(), a.tenant_id, None)),
        )
    finally:
        await group.close()
    assert outcomes[-1] == Skipped("unknown request")
    signatures = {rid: o.prepared.signature for rid, o in zip(rids, outcomes, strict=False)
                  if isinstance(o, Submitted)}
    assert len(signatures) == 20
    recorded = await attempts(admin_conn)
    assert {rid: sig for rid, (_, sig) in recorded.items()} == signatures
    assert group_size_sum() - recorded_before == 20  # what operators see of the grouping


def group_size_sum() -> float:
    return metrics.REGISTRY.get_sample_value("chainworker_submit_group_size_sum") or 0.0
