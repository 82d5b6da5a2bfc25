"""Spending limits under load: concurrent groups of one tenant never pass a limit together.

Real PostgreSQL and the localnet: requests are recorded through the group path of two
workers (each its own context and pool) at once, then the refused ones run alone, as
their jobs do.
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
from chainworker.jobs.context import WorkerContext
from chainworker.jobs.group import RUN_ALONE, Job, record_jobs
from chainworker.jobs.prepare import Prepared
from chainworker.jobs.submit import run_request
from chainworker.jobs.worker import build_context
from chainworker.localnet.process import LocalnetProcess
from tests.conftest import TestDatabase

DAILY_LIMIT = 10_000_000


@pytest.fixture
async def workers(
    fresh_db: TestDatabase, arq: ArqRedis, localnet: LocalnetProcess, tmp_path: Path
) -> AsyncIterator[tuple[WorkerContext, WorkerContext]]:
    """Two workers' contexts: the same keys, a pool each."""
    settings = load_settings(solana_rpc_urls=localnet.rpc_url, state_dir=tmp_path / "state")
    first = await build_context(settings, fresh_db.app_dsn, arq)
    second = await build_context(settings, fresh_db.app_dsn, arq)
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
    workers: tuple[WorkerContext, WorkerContext], admin: asyncpg.Connection
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
            conn, a.tenant_id, "mint", [NewRequest(t, "mint") for t in a.ticket_ids], "cli"
        )
    jobs = [Job("mint", r.request_id, a.tenant_id, None) for r in recorded]

    # Two workers' groups of 32 at once: each would fit alone, together they do not.
    results = await asyncio.gather(record_jobs(first, jobs[:32]), record_jobs(second, jobs[32:]))
    outcomes = results[0] + results[1]
    prepared = [o for o in outcomes if isinstance(o, Prepared)]
    assert prepared, "the first attempts that fit are recorded"
    assert all(o is RUN_ALONE for o in outcomes if not isinstance(o, Prepared))
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

    # Each refused one, run alone as its job does (from both workers at once), is refused
    # with its reason and records nothing.
    alone = [
        (ctx, job)
        for (ctx, job), outcome in zip(
            [(first, j) for j in jobs[:32]] + [(second, j) for j in jobs[32:]],
            outcomes,
            strict=True,
        )
        if outcome is RUN_ALONE
    ]
    words = await asyncio.gather(*(
        run_request({"worker": ctx}, "mint", str(job.request_id), str(job.tenant_id))
        for ctx, job in alone
    ))
    assert set(words) == {"refused: spend_limit"}
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

