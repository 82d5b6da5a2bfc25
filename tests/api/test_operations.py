"""Mint, transfer execute and burn through the API: recorded, queued, refused, idempotent."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from arq.connections import ArqRedis

from chainworker.api.idempotency import fingerprint
from chainworker.lifecycle import ticket_rules
from chainworker.lifecycle.ticket_rules import TicketStatus
from tests.api.conftest import RunningApi, accepted_transfer, make_minted, new_tenant

PROBLEM = "application/problem+json"


async def test_mint_records_and_queues_the_request(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    arq: ArqRedis,
    running_api: RunningApi,
) -> None:
    tenant = await new_tenant(pool, admin)
    ticket = tenant.seeded.ticket_ids[0]
    response = await client.post(f"/v1/tickets/{ticket}/mint", headers=tenant.post_headers())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["operation"] == "mint" and body["created"] is True
    assert body["status"] == "queued" and body["ticket_id"] == str(ticket)
    assert (
        response.headers["location"] == body["status_url"] == f"/v1/requests/{body['request_id']}"
    )
    row = await admin.fetchrow(
        "SELECT * FROM chain_requests WHERE id = $1", uuid.UUID(body["request_id"])
    )
    assert row["tenant_id"] == tenant.id and row["source"] == "api" and row["operation"] == "mint"
    queued = await arq.zscore(running_api.settings.queue_name, body["request_id"])
    assert queued is not None, "the job id is the request id"

    status = await client.get(body["status_url"], headers=tenant.auth())
    assert status.status_code == 200
    assert status.json()["status"] == "queued" and status.json()["transactions"] == []

    # A second key for the same ticket finds the live request instead of a new one.
    again = await client.post(f"/v1/tickets/{ticket}/mint", headers=tenant.post_headers())
    assert again.status_code == 202
    assert again.json()["request_id"] == body["request_id"] and again.json()["created"] is False


async def test_refusals_and_unknowns(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    sold, minted = tenant.seeded.ticket_ids[:2]
    await make_minted(admin, [minted])

    unknown = await client.post(f"/v1/tickets/{uuid.uuid4()}/mint", headers=tenant.post_headers())
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["type"] == "urn:chainworker:problem:not-found"

    twice = await client.post(f"/v1/tickets/{minted}/mint", headers=tenant.post_headers())
    assert twice.status_code == 409
    assert twice.json()["type"] == "urn:chainworker:problem:conflict"
    assert twice.json()["code"] == "already_minted"

    not_minted = await client.post(
        f"/v1/tickets/{sold}/burn", json={"reason": "refund"}, headers=tenant.post_headers()
    )
    assert not_minted.status_code == 409 and not_minted.json()["code"] == "status_not_allowed"

    missing_reason = await client.post(
        f"/v1/tickets/{minted}/burn", json={}, headers=tenant.post_headers()
    )
    assert missing_reason.status_code == 422
    assert missing_reason.json()["type"] == "urn:chainworker:problem:validation-error"
    assert [e["field"] for e in missing_reason.json()["errors"]] == ["body.reason"]

    bad_reason = await client.post(
        f"/v1/tickets/{minted}/burn", json={"reason": "lost"}, headers=tenant.post_headers()
    )
    assert bad_reason.status_code == 422 and "body.reason" in bad_reason.json()["detail"]

    bad_id = await client.post("/v1/tickets/not-a-uuid/mint", headers=tenant.post_headers())
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "path.ticket_id"

    no_key = await client.post(f"/v1/tickets/{sold}/mint", headers=tenant.auth())
    assert no_key.status_code == 422
    assert no_key.json()["errors"][0]["field"] == "header.Idempotency-Key"

    count = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id
    )
    assert count == 0, "refused input changes nothing"


async def test_burn_and_transfer_execute(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    to_burn, to_move, pending = tenant.seeded.ticket_ids[:3]
    await make_minted(admin, [to_burn, to_move, pending])

    burned = await client.post(
        f"/v1/tickets/{to_burn}/burn", json={"reason": "revoke"}, headers=tenant.post_headers()
    )
    assert burned.status_code == 202 and burned.json()["operation"] == "burn"
    reason = await admin.fetchval(
        "SELECT reason FROM chain_requests WHERE id = $1", uuid.UUID(burned.json()["request_id"])
    )
    assert reason == "revoke"

    transfer = await accepted_transfer(admin, to_move, tenant.seeded.user_ids[-1])
    moved = await client.post(f"/v1/transfers/{transfer}/execute", headers=tenant.post_headers())
    assert moved.status_code == 202, moved.text
    assert moved.json()["operation"] == "transfer" and moved.json()["ticket_id"] == str(to_move)
    recorded = await admin.fetchval(
        "SELECT transfer_id FROM chain_requests WHERE id = $1",
        uuid.UUID(moved.json()["request_id"]),
    )
    assert recorded == transfer

    not_accepted = await accepted_transfer(admin, pending, tenant.seeded.user_ids[-1], "pending")
    refused = await client.post(
        f"/v1/transfers/{not_accepted}/execute", headers=tenant.post_headers()
    )
    assert refused.status_code == 409 and refused.json()["code"] == "transfer_not_accepted"

    unknown = await client.post(
        f"/v1/transfers/{uuid.uuid4()}/execute", headers=tenant.post_headers()
    )
    assert unknown.status_code == 404


async def test_same_key_same_request_replays_the_first_response(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    ticket = tenant.seeded.ticket_ids[0]
    headers = tenant.post_headers("order-42-mint")
    first = await client.post(f"/v1/tickets/{ticket}/mint", headers=headers)
    replay = await client.post(f"/v1/tickets/{ticket}/mint", headers=headers)
    assert first.status_code == replay.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    other_ticket = await client.post(
        f"/v1/tickets/{tenant.seeded.ticket_ids[1]}/mint", headers=headers
    )
    assert other_ticket.status_code == 422
    assert other_ticket.json()["type"] == "urn:chainworker:problem:idempotency-key-reused"

    await make_minted(admin, [tenant.seeded.ticket_ids[2]])
    burn_path = f"/v1/tickets/{tenant.seeded.ticket_ids[2]}/burn"
    burn_headers = tenant.post_headers("burn-key")
    assert (
        await client.post(burn_path, json={"reason": "refund"}, headers=burn_headers)
    ).status_code == 202
    changed = await client.post(burn_path, json={"reason": "revoke"}, headers=burn_headers)
    assert changed.status_code == 422
    assert changed.json()["type"] == "urn:chainworker:problem:idempotency-key-reused"

    rows = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id
    )
    assert rows == 2


async def test_duplicate_while_the_first_runs_gets_409_retry_after(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    path = f"/v1/tickets/{tenant.seeded.ticket_ids[0]}/mint"
    # The first request holds the key (as a call that is still running does).
    await admin.execute(
        "SELECT acquire_idempotency_key($1, 'slow-key', $2, $3, 'other-process', 30, 86400)",
        tenant.id,
        "POST /v1/tickets/{ticket_id}/mint",
        fingerprint("POST", path, None),
    )
    busy = await client.post(path, headers=tenant.post_headers("slow-key"))
    assert busy.status_code == 409
    assert busy.json()["type"] == "urn:chainworker:problem:idempotency-in-progress"
    assert int(busy.headers["retry-after"]) >= 1


async def test_concurrent_duplicates_record_one_request(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    path = f"/v1/tickets/{tenant.seeded.ticket_ids[0]}/mint"
    headers = tenant.post_headers("burst-key")
    responses = await asyncio.gather(*(client.post(path, headers=headers) for _ in range(12)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {202, 409} and 202 in codes
    ids = {r.json()["request_id"] for r in responses if r.status_code == 202}
    assert len(ids) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.headers["retry-after"]
    rows = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id
    )
    assert rows == 1


async def test_a_refused_call_releases_its_key_and_a_retry_runs_again(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin)
    ticket = tenant.seeded.ticket_ids[0]
    await admin.execute(
        "UPDATE tickets SET status = 'active', token_mint = 'SomeMint1111' WHERE id = $1", ticket
    )
    headers = tenant.post_headers("retry-after-refusal")
    refused = await client.post(f"/v1/tickets/{ticket}/mint", headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "already_minted"
    key_status = await admin.fetchval(
        "SELECT status FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant.id,
        "retry-after-refusal",
    )
    assert key_status == "failed"

    # An active ticket without a mint may be minted: the same key now runs and records.
    await admin.execute("UPDATE tickets SET token_mint = NULL WHERE id = $1", ticket)
    accepted = await client.post(f"/v1/tickets/{ticket}/mint", headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["created"] is True and accepted.json()["status"] == "queued"
    replay = await client.post(f"/v1/tickets/{ticket}/mint", headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == accepted.json()
    assert replay.headers["content-type"] == accepted.headers["content-type"]


async def test_every_state_the_rules_refuse_is_refused_with_their_code(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=len(TicketStatus))
    for ticket, status in zip(tenant.seeded.ticket_ids, TicketStatus, strict=True):
        await admin.execute("UPDATE tickets SET status = $2 WHERE id = $1", ticket, status.value)
        verdict = ticket_rules.check_operation("mint", status, token_mint=None)
        response = await client.post(f"/v1/tickets/{ticket}/mint", headers=tenant.post_headers())
        if isinstance(verdict, ticket_rules.Allowed):
            assert response.status_code == 202, (status, response.text)
        else:
            assert response.status_code == 409, (status, response.text)
            assert response.json()["code"] == verdict.code.value
    recorded = await admin.fetchval(
        "SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id
    )
    assert recorded == len(ticket_rules.MINTABLE)
