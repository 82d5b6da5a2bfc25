"""Check-in on chain, asked by the database: a minted ticket that becomes checked_in or used
gets an nft.metadata_update_requested outbox row of its own tenant (migration 114), unless
the tenant turned it off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from chainworker.db import seed as seed_data
from chainworker.lifecycle.metadata import check_change
from tests.conftest import TestDatabase


@pytest.fixture
async def service(fresh_db: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """The ticket service's own role (bound by row-level security)."""
    conn = await asyncpg.connect(fresh_db.service_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def set_status(conn: asyncpg.Connection, tenant: UUID, ticket: UUID, status: str) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_tenant_context($1)", tenant)
        await conn.execute("UPDATE tickets SET status = $2 WHERE id = $1", ticket, status)


async def asked(admin: asyncpg.Connection, ticket: UUID) -> list[dict[str, object]]:
    rows = await admin.fetch(
        """SELECT tenant_id, aggregate_type, event_type, payload::text FROM outbox
            WHERE aggregate_id = $1 ORDER BY id""",
        ticket,
    )
    return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]


async def test_a_minted_ticket_checked_in_then_used_asks_for_both_on_its_nft(
    admin_conn: asyncpg.Connection, service: asyncpg.Connection
) -> None:
    seeded = await seed_data.seed_tenant(admin_conn, tickets=3)
    minted, unminted, moved = seeded.ticket_ids
    await admin_conn.execute(
        "UPDATE tickets SET status = 'minted', token_mint = 'Mint' || id::text"
        " WHERE id = ANY($1::uuid[])", [minted, moved],
    )
    await set_status(service, seeded.tenant_id, minted, "checked_in")
    await set_status(service, seeded.tenant_id, minted, "used")
    await set_status(service, seeded.tenant_id, unminted, "checked_in")  # no NFT: nothing
    await set_status(service, seeded.tenant_id, moved, "active")  # not a check-in: nothing
    rows = await asked(admin_conn, minted)
    checked_in_at = await admin_conn.fetchval(
        "SELECT checked_in_at FROM tickets WHERE id = $1", minted
    )
    stamp = checked_in_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows == [
        {"tenant_id": seeded.tenant_id, "aggregate_type": "ticket",
         "event_type": "nft.metadata_update_requested",
         "payload": {"fields": {"checked_in_at": stamp, "status": status}}}
        for status in ("checked_in", "used")
    ]
    for row in rows:  # what every way in checks
        check_change(row["payload"]["fields"], None)
    assert await asked(admin_conn, unminted) == [] and await asked(admin_conn, moved) == []


async def test_a_tenant_that_turned_it_off_asks_for_nothing(
    admin_conn: asyncpg.Connection, service: asyncpg.Connection, fresh_db: TestDatabase
) -> None:
    off = await seed_data.seed_tenant(admin_conn, tickets=1)
    other = await seed_data.seed_tenant(admin_conn, tickets=1)
    await admin_conn.execute(
        "UPDATE tickets SET status = 'minted', token_mint = 'Mint' || id::text"
        " WHERE tenant_id = ANY($1::uuid[])", [off.tenant_id, other.tenant_id],
    )
    app = await asyncpg.connect(fresh_db.app_dsn)
    try:
        async with app.transaction():  # the runtime role sets its own tenant's setting
            await app.execute("SELECT set_tenant_context($1)", off.tenant_id)
            await app.execute(
                """INSERT INTO chainworker_tenant_settings (tenant_id, record_check_in)
                   VALUES ($1, false)""",
                off.tenant_id,
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # never another's
            async with app.transaction():
                await app.execute("SELECT set_tenant_context($1)", off.tenant_id)
                await app.execute(
                    """INSERT INTO chainworker_tenant_settings (tenant_id, record_check_in)
                       VALUES ($1, false)""",
                    other.tenant_id,
                )
    finally:
        await app.close()
    await set_status(service, off.tenant_id, off.ticket_ids[0], "checked_in")
    await set_status(service, other.tenant_id, other.ticket_ids[0], "checked_in")
    assert await asked(admin_conn, off.ticket_ids[0]) == []
    assert len(await asked(admin_conn, other.ticket_ids[0])) == 1
