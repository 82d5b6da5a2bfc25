"""Spending limits under load: concurrent groups of one tenant never pass a limit together.

Real PostgreSQL and the localnet: requests are recorded through the group path of two
workers (each its own context and pool) at once; those that do not fit are refused in
the same flush, with the limit they would pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from arq.connections import ArqRedis

from chainworker.config import load_settings
from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.model import TxOp
from chainworker.lifecycle.ticket_rules import RefusalCode
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline.context import PipelineContext, open_context
from chainworker.pipeline.record import Declined, Job, Submitted, record_jobs
from tests.conftest import TestDatabase

DAILY_LIMIT = 10_000_000


@pytest.fixture
async def workers(
    fresh_db: TestDatabase, arq: ArqRedis, localnet: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[tuple[PipelineContext, PipelineContext]]:
    """Two workers' contexts: the same keys, a pool each."""
    settings = load_settings(solana_rpc_urls=localnet.rpc_url, state_dir=tmp_path / "state")
    first = await open_context(settings, fresh_db.app_dsn)
    second = await open_context(settings, fresh_db.app_dsn)
    try:
        yield first, second
    finally:
        for ctx in (first, second):
            await ctx.rpc.close()
            await ctx.pool.close()


async def in_flight_and_spent(admin: asyncpg.Connection, tenant: UUID) -> tuple[int, int]:
    held = await admin.fetchval(
        """SELECT coalesce(sum(lamports) FILTER (WHERE side = 'reserved'), 0)
                  - coalesce(sum(lamports) FILTER (WHERE side = 'released'), 0)
             FROM chainworker_spend_reservations WHERE tenant_id = $1""",
        tenant,
    )
    spent = await admin.fetchval(
        """SELECT coalesce(sum(spent), 0) FROM chainworker_spend_totals
            WHERE tenant_id = $1 AND period = 'day'
              AND period_start = (now() AT TIME ZONE 'UTC')::date""",
        tenant,
    )
    return int(held), int(spent)


async def test_concurrent_groups_at_a_daily_limit_never_pass_it(
    workers: tuple[PipelineContext, PipelineContext], admin: asyncpg.Connection
) -> None:
    first, second = workers
    a = await seed_data.seed_tenant(admin, tickets=64)
    await admin.execute(
        """INSERT INTO spending_limits (tenant_id, user_id, currency, per_transaction_limit,
                                        daily_limit, weekly_limit, monthly_limit)
           VALUES ($1, NULL, 'LAM', $2, $2, $3, $3)""",
        a.tenant_id, DAILY_LIMIT, 10 * DAILY_LIMIT,
    )
    async with tenant_transaction(first.pool, a.tenant_id) as conn:
        recorded = await request_rows.record_requests(
            conn, a.tenant_id, TxOp.MINT, [NewRequest(t, TxOp.MINT) for t in a.ticket_ids], "cli"
        )
    jobs = [Job(TxOp.MINT, r.request_id, a.tenant_id, None) for r in recorded]

    # Two workers' groups of 32 at once: each would fit alone, together they do not.
    results = await asyncio.gather(record_jobs(first, jobs[:32]), record_jobs(second, jobs[32:]))
    outcomes = results[0] + results[1]
    prepared = [o.prepared for o in outcomes if isinstance(o, Submitted)]
    assert prepared, "the first attempts that fit are recorded"
    # The others are refused with their reason in the same flush, and record nothing.
    declined = [o for o in outcomes if isinstance(o, Declined)]
    assert len(declined) == 64 - len(prepared)
    assert {o.refusal.code for o in declined} == {RefusalCode.SPEND_LIMIT}
    assert sum(p.estimated_cost for p in prepared) <= DAILY_LIMIT
    held, spent = await in_flight_and_spent(admin, a.tenant_id)
    assert (held, spent) == (sum(p.estimated_cost for p in prepared), 0)
    rows = await admin.fetch(
        """SELECT (metadata->>'spend_reserved')::bigint AS reserved,
                  (metadata->>'estimated_lamports')::bigint AS cost
             FROM pending_transactions WHERE tenant_id = $1""",
        a.tenant_id,
    )
    assert len(rows) == len(prepared)
    assert all(row["reserved"] == row["cost"] for row in rows)

    refused = await admin.fetch(
        """SELECT status, outcome_code, outcome_message FROM chain_requests
            WHERE tenant_id = $1 AND status = 'refused'""",
        a.tenant_id,
    )
    assert len(refused) == 64 - len(prepared)
    assert {row["outcome_code"] for row in refused} == {"spend_limit"}
    assert all(row["outcome_message"].startswith("daily limit: ") for row in refused)
    assert await admin.fetchval(
        "SELECT count(*) FROM pending_transactions WHERE tenant_id = $1", a.tenant_id
    ) == len(prepared)
    assert sum(await in_flight_and_spent(admin, a.tenant_id)) <= DAILY_LIMIT

