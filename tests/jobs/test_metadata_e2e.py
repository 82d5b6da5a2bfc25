"""Metadata updates end to end: a real worker process, Postgres, Redis and the localnet, the
fields read back from each mint's TokenMetadata.

The CLI, the shared-database way in, the outbox (the ticket service's row, and the check-in
trigger's) and the event-wide update each record updates; several of one ticket run in
acceptance order and none is lost; a row relayed twice is one request; the refusals change
nothing; an attempt recorded by a process that went away before sending it still lands,
once. (The API and the client: tests/api/test_metadata.py.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from arq.connections import ArqRedis
from solders.pubkey import Pubkey

from chainworker.chain import token2022
from chainworker.chain.rpc import SolanaRpc
from chainworker.config import load_settings
from chainworker.db import requests as request_rows
from chainworker.db import seed as seed_data
from chainworker.db.pool import tenant_transaction
from chainworker.db.requests import NewRequest
from chainworker.direct import request_direct
from chainworker.lifecycle.metadata import MetadataChange, check_change
from chainworker.lifecycle.model import BurnReason, TxOp
from chainworker.localnet.process import LocalnetProcess
from chainworker.pipeline.context import PipelineContext, open_context
from chainworker.pipeline.record import Job, Submitted, record_jobs
from tests.helpers import Stack, wait_for
from tests.jobs.test_lifecycle_e2e import request_statuses, settled

EVENT_URI = "https://moved.example/events/2.json"


async def on_chain(rpc: SolanaRpc, mint: str) -> tuple[token2022.TokenMetadata, int, int]:
    """The mint's metadata, its size and its lamports."""
    account = await rpc.get_account(Pubkey.from_string(mint))
    assert account is not None
    found = token2022.parse_mint(account.data).metadata
    assert found is not None
    return found, len(account.data), account.lamports


async def requests_of(admin: asyncpg.Connection, ticket: UUID) -> list[asyncpg.Record]:
    return await admin.fetch(
        """SELECT r.id, r.status, r.source, r.changes::text AS changes, p.slot
             FROM chain_requests r
             LEFT JOIN pending_transactions p ON p.request_id = r.id AND p.status = 'confirmed'
            WHERE r.ticket_id = $1 AND r.operation = 'metadata_update' ORDER BY r.seq""",
        ticket,
    )


@pytest.fixture
async def recorder(
    stack: Stack, localnet_faults: LocalnetProcess
) -> AsyncIterator[PipelineContext]:
    """The pipeline in this process, with the worker's keys (from its state directory)."""
    settings = load_settings(state_dir=stack.state_dir, solana_rpc_urls=localnet_faults.rpc_url)
    ctx = await open_context(settings, stack.db.app_dsn)
    try:
        yield ctx
    finally:
        await ctx.rpc.close()
        await ctx.pool.close()


async def test_updates_from_every_way_in_land_in_order_and_refusals_change_nothing(
    stack: Stack, admin: asyncpg.Connection, arq: ArqRedis, recorder: PipelineContext,
    localnet_faults: LocalnetProcess,
) -> None:
    seeded = await seed_data.seed_tenant(admin, tickets=6, users=2)
    tenant = seeded.tenant_id
    ordered, outboxed, checked, unsent, burned, unminted = seeded.ticket_ids

    async def direct(op: TxOp, items: list[NewRequest]) -> None:
        await request_direct(recorder.pool, arq, stack.queue, tenant, op, items)

    def update(ticket: UUID, change: MetadataChange) -> NewRequest:
        return NewRequest(ticket, TxOp.METADATA_UPDATE, changes=change)

    worker = stack.worker()
    try:
        await direct(TxOp.MINT, [NewRequest(t, TxOp.MINT) for t in seeded.ticket_ids[:5]])
        await direct(TxOp.BURN, [NewRequest(burned, TxOp.BURN, reason=BurnReason.REFUND)])
        await wait_for(lambda: settled(admin, str(tenant), 6), 60, "five mints and a burn")
        mints: dict[UUID, str] = {
            row["id"]: row["token_mint"] for row in await admin.fetch(
                "SELECT id, token_mint FROM tickets WHERE tenant_id = $1", tenant
            )
        }
        async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
            _, minted_size, _ = await on_chain(rpc, mints[ordered])

        # The CLI, then three more updates of the same ticket through the shared database,
        # back to back: four requests, carried out in this order.
        stack.cli("enqueue", "metadata", "--tenant", str(tenant), "--ticket", str(ordered),
                  "--field", "uri=https://moved.example/events/2/tickets/1.json",
                  "--field", "seat=R-0", "--field", "section=Balcony")
        changes = [
            check_change({"seat": "R-1"}, None),
            check_change({"seat": "R-2", "gate": "7"}, ["section"]),
            check_change({"seat": "R-3"}, None),
        ]
        for change in changes:
            await direct(TxOp.METADATA_UPDATE, [update(ordered, change)])
        # The ticket service's outbox row; refusals of every kind: a burned ticket, one
        # never minted, a change too large for one transaction.
        outbox_id = await admin.fetchval(
            """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
               VALUES ($1, 'ticket', $2, 'nft.metadata_update_requested',
                       '{"fields": {"section": "Stalls", "row": "F"}}') RETURNING id""",
            tenant, outboxed,
        )
        seat = check_change({"seat": "X"}, None)
        too_large = check_change({"note": "n" * 512, "more": "m" * 400}, None)
        await direct(TxOp.METADATA_UPDATE,
                     [update(burned, seat), update(unminted, seat), update(outboxed, too_large)])
        # A change that breaks the rules written past every way in (no job either: the
        # sweeper queues it): the worker checks the rules again and refuses it.
        await admin.execute(
            """INSERT INTO chain_requests (tenant_id, ticket_id, operation, source, changes)
               VALUES ($1, $2, 'metadata_update', 'cli',
                       '{"fields": {"ticket_id": "forged"}, "remove": []}')""",
            tenant, ordered,
        )
        # The ticket service checks a ticket in, as its own role: the trigger asks for it.
        service = await asyncpg.connect(stack.db.service_dsn)
        try:
            async with service.transaction():
                await service.execute("SELECT set_tenant_context($1)", tenant)
                await service.execute(
                    "UPDATE tickets SET status = 'checked_in' WHERE id = $1", checked
                )
        finally:
            await service.close()
        # Recorded and signed here, and never sent: as if this process had been killed
        # between record and send (no job in the queue either). The worker's loop finds the
        # recorded bytes and sends them; they land once.
        async with tenant_transaction(recorder.pool, tenant) as conn:
            [recorded] = await request_rows.record_requests(
                conn, tenant, TxOp.METADATA_UPDATE,
                [update(unsent, check_change({"status": "used"}, None))], "cli",
            )
        [outcome] = await record_jobs(
            recorder, [Job(TxOp.METADATA_UPDATE, recorded.request_id, tenant, None)]
        )
        assert isinstance(outcome, Submitted)
        await wait_for(lambda: settled(admin, str(tenant), 6 + 11), 90, "the updates")

        # The same outbox row delivered again is the same request.
        await admin.execute("UPDATE outbox SET processed_at = NULL WHERE id = $1", outbox_id)

        async def relayed_again() -> bool:
            return await admin.fetchval(
                "SELECT processed_at IS NOT NULL FROM outbox WHERE id = $1", outbox_id
            )

        await wait_for(relayed_again, 30, "the second delivery")

        # The event moved: one update per ticket whose NFT can still change (not the
        # refunded one, not the one never minted), in batches. (Run again, it records
        # nothing: tests/ops/test_event_update.py.)
        moved = stack.cli_json("event", "update-metadata", "--tenant", str(tenant),
                               "--event", str(seeded.event_id), "--field", f"uri={EVENT_URI}",
                               "--batch-size", "2")
        assert (moved["tickets"], moved["recorded"], moved["found"]) == (4, 4, 0)
        await wait_for(lambda: settled(admin, str(tenant), 6 + 11 + 4), 60, "the event's")
    finally:
        worker.stop()

    statuses = await request_statuses(admin, str(tenant))
    assert statuses == {"confirmed": 6 + 7 + 4, "refused": 4}, statuses
    ordered_rows = [r for r in await requests_of(admin, ordered) if r["status"] != "refused"]
    assert [row["status"] for row in ordered_rows] == ["confirmed"] * 5
    slots = [row["slot"] for row in ordered_rows]
    assert slots == sorted(slots) and len(set(slots)) == 5  # one at a time, in order
    assert [json.loads(row["changes"]) for row in ordered_rows[1:4]] == [
        c.as_json() for c in changes
    ]
    outboxed_rows = await requests_of(admin, outboxed)  # the row, the oversized, the event
    assert sorted((r["source"], r["status"]) for r in outboxed_rows) == [
        ("cli", "confirmed"), ("client", "refused"), ("outbox", "confirmed"),
    ]
    refusals = {
        (row["ticket_id"], row["outcome_code"]): row["outcome_message"]
        for row in await admin.fetch(
            "SELECT ticket_id, outcome_code, outcome_message FROM chain_requests"
            " WHERE status = 'refused'"
        )
    }
    assert set(refusals) == {
        (burned, "status_not_allowed"), (unminted, "not_minted"), (outboxed, "invalid_input"),
        (ordered, "invalid_input"),
    }
    assert "ties the NFT to its ticket" in refusals[(ordered, "invalid_input")]
    assert "does not fit in one transaction" in refusals[(outboxed, "invalid_input")]
    assert await admin.fetchval(  # nothing was signed for a refused update
        """SELECT count(*) FROM pending_transactions p JOIN chain_requests r
               ON r.id = p.request_id WHERE r.status = 'refused'"""
    ) == 0
    attempts = await admin.fetch(
        "SELECT status, tx_signature FROM pending_transactions WHERE request_id = $1",
        recorded.request_id,
    )
    assert [(a["status"], a["tx_signature"]) for a in attempts] == [
        ("confirmed", outcome.prepared.signature)
    ]

    async with SolanaRpc([localnet_faults.rpc_url]) as rpc:
        found, size, lamports = await on_chain(rpc, mints[ordered])
        assert found.uri == EVENT_URI  # the CLI's uri first, the event's last
        assert (found.field("seat"), found.field("gate"), found.field("section")) == (
            "R-3", "7", None,
        )
        assert found.field("ticket_id") == str(ordered)
        assert found.field("event_id") == str(seeded.event_id)
        assert size > minted_size and lamports >= token2022.rent_exempt_lamports(size)
        found, _, _ = await on_chain(rpc, mints[outboxed])
        assert (found.field("section"), found.field("row"), found.field("note")) == (
            "Stalls", "F", None,
        )
        assert found.uri == EVENT_URI
        found, size, lamports = await on_chain(rpc, mints[checked])
        checked_in_at = await admin.fetchval(
            "SELECT checked_in_at FROM tickets WHERE id = $1", checked
        )
        assert found.field("status") == "checked_in" and found.uri == EVENT_URI
        assert found.field("checked_in_at") == checked_in_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert lamports >= token2022.rent_exempt_lamports(size)
        found, _, _ = await on_chain(rpc, mints[unsent])
        assert found.field("status") == "used"
    # A confirmed update leaves the ticket's status as it was, and tells the ticket service.
    assert await admin.fetchval("SELECT status FROM tickets WHERE id = $1", checked) == (
        "checked_in"
    )
    events = await admin.fetch(
        """SELECT payload FROM outbox
            WHERE tenant_id = $1 AND event_type = 'ticket.metadata_updated'""",
        tenant,
    )
    assert len(events) == 7 + 4
    assert await admin.fetchval(
        """SELECT count(*) FROM blockchain_sync_log WHERE tenant_id = $1
              AND operation = 'metadata_update' AND status = 'confirmed'""",
        tenant,
    ) == 7 + 4
    assert {json.loads(e["payload"])["operation"] for e in events} == {"metadata_update"}
