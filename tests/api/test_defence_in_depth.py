"""A policy mistake cannot leak: with row-level security off on every table, the API and the
relay still compare each row's tenant with the caller's, so tenant A's token reaches none of
tenant B's objects and nothing is recorded under A for B's tickets.

(Row-level security is switched off for this module's own database only.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from arq.connections import ArqRedis

from chainworker.jobs.queue import ArqQueue
from chainworker.pipeline import relay
from tests.api.conftest import RunningApi, accepted_transfer, make_minted, new_tenant


@pytest.fixture(scope="module", autouse=True)
async def policies_broken(running_api: RunningApi) -> AsyncIterator[None]:
    conn = await asyncpg.connect(running_api.db.admin_dsn)
    try:
        tables = await conn.fetch(
            """SELECT relname FROM pg_class
                WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relrowsecurity"""
        )
        assert len(tables) >= 35
        for row in tables:
            # Table names come from the catalog, not from input.
            await conn.execute(f'ALTER TABLE "{row["relname"]}" DISABLE ROW LEVEL SECURITY')
        yield
    finally:
        await conn.close()


async def test_api_compares_tenants_itself(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    a, b = await new_tenant(pool, admin, tickets=1), await new_tenant(pool, admin, tickets=3)
    b_sold, b_minted, b_moving = b.seeded.ticket_ids
    await make_minted(admin, [b_minted, b_moving])
    b_transfer = await accepted_transfer(admin, b_moving, b.seeded.user_ids[0])
    mine = await client.post(f"/v1/tickets/{b_sold}/mint", headers=b.post_headers())
    assert mine.status_code == 202
    b_request = mine.json()["request_id"]
    before = await admin.fetchval("SELECT count(*) FROM chain_requests")

    attempts = [
        ("POST", f"/v1/tickets/{b_sold}/mint", None),
        ("POST", f"/v1/tickets/{b_minted}/burn", {"reason": "refund"}),
        ("POST", f"/v1/transfers/{b_transfer}/execute", None),
        ("GET", f"/v1/tickets/{b_minted}/chain", None),
        ("GET", f"/v1/requests/{b_request}", None),
        (
            "POST",
            "/v1/wallets",
            {
                "user_id": str(b.seeded.user_ids[0]),
                "address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
            },
        ),
    ]
    for method, path, body in attempts:
        headers = a.post_headers() if method == "POST" else a.auth()
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 404, (path, response.text)
    assert await admin.fetchval("SELECT count(*) FROM chain_requests") == before
    assert (
        await admin.fetchval("SELECT count(*) FROM chain_requests WHERE tenant_id = $1", a.id) == 0
    )
    assert await admin.fetchval("SELECT count(*) FROM wallets WHERE tenant_id = $1", a.id) == 0


async def test_relay_compares_tenants_itself(
    pool: asyncpg.Pool, admin: asyncpg.Connection, arq: ArqRedis, running_api: RunningApi
) -> None:
    a, b = await new_tenant(pool, admin, tickets=1), await new_tenant(pool, admin, tickets=2)
    b_ticket, b_moving = b.seeded.ticket_ids
    await make_minted(admin, [b_moving])
    b_transfer = await accepted_transfer(admin, b_moving, b.seeded.user_ids[0])
    rows = [
        ("ticket", b_ticket, "nft.mint_requested", "{}"),
        ("ticket_transfer", b_transfer, "nft.transfer_requested", "{}"),
    ]
    ids = [
        await admin.fetchval(
            """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
               VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id""",
            a.id,
            *row,
        )
        for row in rows
    ]
    result = await relay.relay_once(
        pool, ArqQueue(arq, running_api.settings.queue_name), max_attempts=5, retry_seconds=60
    )
    assert result.recorded == 0
    assert (
        await admin.fetchval("SELECT count(*) FROM chain_requests WHERE tenant_id = $1", a.id) == 0
    )
    errors = await admin.fetch(
        "SELECT last_error FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY id", ids
    )
    assert all("in this tenant" in (row["last_error"] or "") for row in errors), errors
