"""Recording metadata updates: each ask a request of its own, none folded into another, except
a second delivery of one ask (its key); mints and burns still collapse as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.lifecycle.metadata import check_change
from chainworker.lifecycle.model import RequestStatus, TxOp
from tests.conftest import TestDatabase

SEAT = check_change({"seat": "A-7"}, None)
URI = check_change({"uri": "https://moved.example/1"}, ["seat"])


@pytest.fixture
async def pool(fresh_db: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    the_pool = await asyncpg.create_pool(fresh_db.app_dsn, min_size=1, max_size=4)
    assert the_pool is not None
    yield the_pool
    await the_pool.close()


async def record(
    pool: asyncpg.Pool, tenant: UUID, items: list[NewRequest]
) -> list[request_rows.Recorded]:
    async with tenant_transaction(pool, tenant) as conn:
        return await request_rows.record_requests(
            conn, tenant, TxOp.METADATA_UPDATE, items, "cli"
        )


def update(ticket: UUID, change=SEAT, key: str | None = None) -> NewRequest:
    return NewRequest(ticket, TxOp.METADATA_UPDATE, changes=change, key=key)


async def test_updates_of_one_ticket_are_each_their_own_request_in_order(
    pool: asyncpg.Pool, admin_conn: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=1)
    [ticket] = seeded.ticket_ids
    first = await record(pool, seeded.tenant_id, [update(ticket), update(ticket, URI)])
    second = await record(pool, seeded.tenant_id, [update(ticket)])
    ids = [r.request_id for r in first + second]
    assert len(set(ids)) == 3 and all(r.created for r in first + second)
    rows = await admin_conn.fetch(
        "SELECT id, status, changes::text AS changes FROM chain_requests ORDER BY seq"
    )
    assert [row["id"] for row in rows] == ids  # acceptance order
    assert {row["status"] for row in rows} == {"queued"}
    async with tenant_transaction(pool, seeded.tenant_id) as conn:
        read = await request_rows.get_request(conn, ids[1])
    assert read is not None and read.changes == URI
    assert read.operation is TxOp.METADATA_UPDATE

    # A live mint still collapses onto itself beside them.
    mints = [NewRequest(ticket, TxOp.MINT)] * 2
    async with tenant_transaction(pool, seeded.tenant_id) as conn:
        once = await request_rows.record_requests(conn, seeded.tenant_id, TxOp.MINT, mints, "cli")
        again = await request_rows.record_requests(conn, seeded.tenant_id, TxOp.MINT, mints, "cli")
    assert len({r.request_id for r in once + again}) == 1


async def test_one_key_is_one_request_while_live_or_confirmed_and_free_once_it_failed(
    pool: asyncpg.Pool, admin_conn: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=2)
    one, two = seeded.ticket_ids
    tenant = seeded.tenant_id
    # the same delivery twice in one batch, and again later: one request per ticket
    first = await record(pool, tenant, [update(one, key="outbox:1"), update(one, key="outbox:1"),
                                        update(two, key="outbox:1")])
    assert first[0].request_id == first[1].request_id != first[2].request_id
    assert [r.created for r in first] == [True, True, True]
    again = await record(pool, tenant, [update(one, key="outbox:1")])
    assert again[0].request_id == first[0].request_id and not again[0].created

    async with tenant_transaction(pool, tenant) as conn:
        await request_rows.settle(conn, first[0].request_id, RequestStatus.CONFIRMED)
    confirmed = await record(pool, tenant, [update(one, key="outbox:1")])
    assert confirmed[0].request_id == first[0].request_id and not confirmed[0].created

    async with tenant_transaction(pool, tenant) as conn:
        await request_rows.settle(conn, first[2].request_id, RequestStatus.REFUSED)
    retried = await record(pool, tenant, [update(two, key="outbox:1")])
    assert retried[0].created and retried[0].request_id != first[2].request_id
    assert await admin_conn.fetchval("SELECT count(*) FROM chain_requests") == 3


async def test_only_a_metadata_update_carries_a_change(admin_conn: asyncpg.Connection) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=1)
    insert = """INSERT INTO chain_requests (tenant_id, ticket_id, operation, changes)
                VALUES ($1, $2, $3, $4::jsonb)"""
    args = (seeded.tenant_id, seeded.ticket_ids[0])
    for operation, changes in (
        ("mint", '{"fields": {}, "remove": []}'),
        ("metadata_update", None),
        ("metadata_update", '{"fields": [], "remove": []}'),
        ("metadata_update", '{"fields": {"seat": "A"}}'),
    ):
        with pytest.raises(asyncpg.CheckViolationError, match="chk_chain_requests_changes"):
            await admin_conn.execute(insert, *args, operation, changes)
    with pytest.raises(asyncpg.CheckViolationError, match="chk_chain_requests_operation"):
        await admin_conn.execute(insert, *args, "teleport", None)
    for operation in ("verify", "mint"):
        await admin_conn.execute(insert, *args, operation, None)
    await admin_conn.execute(insert, *args, "metadata_update", '{"fields": {}, "remove": ["a"]}')
