"""A resale chain A -> B -> C -> D, queued back to back through the API and the outbox.

Each transfer is a request of its own (none folded into another), they run on chain in the
order they were accepted, one at a time, and each counts once: the ticket ends with
transfer_count 3 and holder D, in the database and on chain.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest
from solders.pubkey import Pubkey

from chainworker.chain.rpc import SolanaRpc
from chainworker.db import tickets as ticket_rows
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import get_request
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline.prepare import Refused, check_request
from tests.api.conftest import RunningApi, make_minted, new_tenant
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import custodial


async def accept(admin: asyncpg.Connection, tenant: UUID, ticket: UUID, a: UUID, b: UUID) -> UUID:
    """An accepted transfer a -> b, as the ticket service records one."""
    transfer: UUID = await admin.fetchval(
        """INSERT INTO ticket_transfers (tenant_id, ticket_id, from_user_id, to_user_id, status,
                                         accepted_at)
           VALUES ($1, $2, $3, $4, 'accepted', now()) RETURNING id""",
        tenant, ticket, a, b,
    )
    return transfer


async def test_a_resale_chain_is_carried_out_in_order_and_counted_once(
    running_api: RunningApi,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    redis_url: str,
    localnet: LocalnetProcess,
    tmp_path: Path,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1, users=4)
    [ticket] = tenant.seeded.ticket_ids
    a = await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1", ticket)
    b, c, d = [u for u in tenant.seeded.user_ids if u != a]
    await admin.execute("UPDATE tickets SET max_transfers = 3 WHERE id = $1", ticket)
    stack = Stack(
        db=running_api.db, redis_url=redis_url, rpc_urls=localnet.rpc_url,
        state_dir=tmp_path / "state", queue=running_api.settings.queue_name,
        extra={"OUTBOX_POLL_INTERVAL_SECONDS": "0.2"},
    )
    worker = stack.worker()
    try:
        minted = await client.post(f"/v1/tickets/{ticket}/mint", headers=tenant.post_headers())
        assert minted.status_code == 202

        async def is_minted() -> bool:
            return await admin.fetchval(
                "SELECT token_mint IS NOT NULL FROM tickets WHERE id = $1", ticket
            )

        await wait_for(is_minted, 60, "the mint")

        ab = await accept(admin, tenant.id, ticket, a, b)
        bc = await accept(admin, tenant.id, ticket, b, c)
        cd = await accept(admin, tenant.id, ticket, c, d)
        first = await client.post(f"/v1/transfers/{ab}/execute", headers=tenant.post_headers())
        await admin.execute(  # the ticket service asks for B -> C in its own transaction
            """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type)
               VALUES ($1, 'ticket_transfer', $2, 'nft.transfer_requested')""",
            tenant.id, bc,
        )

        async def relayed() -> bool:
            return await admin.fetchval(
                "SELECT count(*) FROM chain_requests WHERE transfer_id = $1", bc
            ) == 1

        await wait_for(relayed, 30, "the outbox transfer to be recorded")
        third = await client.post(f"/v1/transfers/{cd}/execute", headers=tenant.post_headers())
        for accepted in (first, third):
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["created"] is True
        ids = [first.json()["request_id"], third.json()["request_id"]]
        assert len(set(ids)) == 2

        async def all_done() -> bool:
            statuses = await admin.fetch(
                "SELECT status FROM chain_requests WHERE ticket_id = $1 AND operation = 'transfer'",
                ticket,
            )
            return len(statuses) == 3 and all(s["status"] == "confirmed" for s in statuses)

        await wait_for(all_done, 90, "three confirmed transfers")
    finally:
        worker.stop()

    requests = await admin.fetch(
        """SELECT r.transfer_id, p.slot FROM chain_requests r
             JOIN pending_transactions p ON p.request_id = r.id AND p.status = 'confirmed'
            WHERE r.ticket_id = $1 AND r.operation = 'transfer' ORDER BY r.seq""",
        ticket,
    )
    assert [row["transfer_id"] for row in requests] == [ab, bc, cd]
    slots = [row["slot"] for row in requests]
    assert slots == sorted(slots) and len(set(slots)) == 3, slots  # one at a time, in order

    row = await admin.fetchrow(
        "SELECT user_id, wallet_address, transfer_count, token_mint, status FROM tickets"
        " WHERE id = $1",
        ticket,
    )
    d_wallet = custodial(stack, str(tenant.id), str(d))
    assert (row["user_id"], row["wallet_address"], row["transfer_count"], row["status"]) == (
        d, str(d_wallet), 3, "transferred",
    )
    completed = await admin.fetch(
        "SELECT to_user_id, to_wallet, status FROM ticket_transfers WHERE ticket_id = $1"
        " ORDER BY accepted_at",
        ticket,
    )
    assert [(t["to_user_id"], t["status"]) for t in completed] == [
        (b, "completed"), (c, "completed"), (d, "completed"),
    ]
    assert completed[-1]["to_wallet"] == str(d_wallet)
    async with SolanaRpc([localnet.rpc_url]) as rpc:
        assert await rpc.get_token_holder(Pubkey.from_string(row["token_mint"])) == (d_wallet, 1)
    # Counted once each: the ticket's limit of 3 refuses a fourth resale, not an earlier one.
    with pytest.raises(asyncpg.CheckViolationError, match="maximum of 3 transfers"):
        await accept(admin, tenant.id, ticket, d, a)


async def test_a_transfer_from_someone_who_no_longer_holds_the_ticket_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    """B -> C while A still holds the ticket (A -> B never happened): refused when its turn
    comes, never executed from A's wallet."""
    tenant = await new_tenant(pool, admin, tickets=1, users=3)
    [ticket] = tenant.seeded.ticket_ids
    a = await admin.fetchval("SELECT user_id FROM tickets WHERE id = $1", ticket)
    b, c = [u for u in tenant.seeded.user_ids if u != a]
    await make_minted(admin, [ticket])
    bc = await accept(admin, tenant.id, ticket, b, c)
    accepted = await client.post(f"/v1/transfers/{bc}/execute", headers=tenant.post_headers())
    assert accepted.status_code == 202
    async with tenant_transaction(pool, tenant.id) as conn:
        request = await get_request(conn, UUID(accepted.json()["request_id"]))
        row = await ticket_rows.lock_ticket(conn, ticket)
        transfer = await ticket_rows.lock_transfer(conn, bc)
        assert request is not None
        with pytest.raises(Refused) as refused:
            check_request(request, row, transfer)
    assert refused.value.refusal.code == "not_holder"
