"""Through the API and the outbox into a real worker process, onto the localnet chain."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import httpx
import pytest

from chainworker.client import ApiError, ChainworkerClient
from chainworker.localnet.process import LocalnetProcess
from tests.api.conftest import RunningApi, new_tenant
from tests.helpers import Stack, wait_for


async def test_mint_via_api_and_burn_via_outbox_reach_the_chain(
    running_api: RunningApi,
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    redis_url: str,
    localnet: LocalnetProcess,
    tmp_path: Path,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=2)
    ticket = tenant.seeded.ticket_ids[0]
    stack = Stack(
        db=running_api.db,
        redis_url=redis_url,
        rpc_urls=localnet.rpc_url,
        state_dir=tmp_path / "state",
        queue=running_api.settings.queue_name,
        extra={"OUTBOX_POLL_INTERVAL_SECONDS": "0.2"},
    )
    worker = stack.worker()
    try:
        async with ChainworkerClient(running_api.url, tenant.token) as client:
            accepted = await client.mint(ticket)
            assert accepted.created and accepted.status == "queued"
            final = await client.wait_for_request(
                accepted.request_id, timeout_seconds=60, poll_seconds=0.2
            )
            assert final["status"] == "confirmed", (final, worker.output()[-3000:])
            assert final["slot"] is not None and final["token_mint"]

            chain = await client.ticket_chain(ticket)
            assert chain["token_mint"] == final["token_mint"] and chain["status"] == "minted"
            assert chain["holder"]["amount"] == 1 and chain["holder"]["owner"]
            assert chain["mint_closed"] is False and chain["rent_reclaimed_lamports"] == 0
            assert chain["live_transaction"] is None
            assert "minted" in [h["new_status"] for h in chain["history"]]

            tx = await client.transaction_status(final["signature"])
            assert tx["status"] == "confirmed" and tx["request_id"] == str(accepted.request_id)

            with pytest.raises(ApiError) as refused:
                await client.mint(ticket)
            assert refused.value.status == 409 and refused.value.code == "already_minted"

        # The ticket service asks for the burn in its own transaction, through the outbox.
        await admin.execute(
            """INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload)
               VALUES ($1, 'ticket', $2, 'nft.burn_requested', $3::jsonb)""",
            tenant.id,
            ticket,
            json.dumps({"reason": "refund"}),
        )

        async def burned() -> bool:
            status = await admin.fetchval(
                "SELECT status FROM chain_requests WHERE ticket_id = $1 AND operation = 'burn'"
                " AND source = 'outbox'",
                ticket,
            )
            return status == "confirmed"

        await wait_for(burned, 60, "the outbox burn to confirm")
        assert (
            await admin.fetchval("SELECT status FROM tickets WHERE id = $1", ticket) == "refunded"
        )
        assert await admin.fetchval(
            "SELECT processed_at IS NOT NULL FROM outbox WHERE aggregate_id = $1"
            " AND event_type = 'nft.burn_requested'",
            ticket,
        )
        # The refund closed the mint (a custodial holder's account with it): the rent
        # came back, and the tenant was credited with it.
        credited = await admin.fetchval(
            "SELECT -amount FROM spending_transactions WHERE tenant_id = $1"
            " AND reference_type = 'rent_reclaimed'",
            tenant.id,
        )
        async with ChainworkerClient(running_api.url, tenant.token) as client:
            chain = await client.ticket_chain(ticket)
        assert chain["mint_closed"] is True and chain["status"] == "refunded"
        assert chain["rent_reclaimed_lamports"] == credited > 2_074_080
        assert chain["holder"] == {"owner": None, "amount": 0, "error": None}
    finally:
        worker.stop()


async def test_client_retries_with_one_key(
    running_api: RunningApi, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    ticket = tenant.seeded.ticket_ids[0]
    real = httpx.AsyncHTTPTransport()
    seen: list[str] = []

    class FlakyTransport(httpx.AsyncBaseTransport):
        """The first attempt's answer is lost after the server handled it."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("idempotency-key", ""))
            response = await real.handle_async_request(request)
            if len(seen) == 1:
                await response.aclose()
                raise httpx.ReadError("connection reset", request=request)
            return response

    async with ChainworkerClient(
        running_api.url, tenant.token, transport=FlakyTransport(), backoff_seconds=0.01
    ) as client:
        accepted = await client.mint(ticket)
    assert len(seen) == 2 and seen[0] == seen[1], "the retry reuses the key"
    assert accepted.created is True, "the replayed first response, not a second request"
    assert (
        await admin.fetchval("SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id)
        == 1
    )
