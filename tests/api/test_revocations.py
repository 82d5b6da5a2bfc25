"""Event-wide revocation: distinct admin approvals, execution into burns, rejection, expiry."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from arq.connections import ArqRedis

from tests.api.conftest import RunningApi, Tenant, make_minted, new_tenant


def _base(tenant: Tenant) -> str:
    return f"/v1/events/{tenant.seeded.event_id}/revocations"


async def _create(client: httpx.AsyncClient, tenant: Tenant, reason: str = "revoke") -> dict:
    response = await client.post(
        _base(tenant),
        json={"reason": reason},
        headers=tenant.post_headers(token=tenant.admin_tokens[0]),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _vote(
    client: httpx.AsyncClient,
    tenant: Tenant,
    revocation: dict,
    admin_index: int,
    kind: str = "approvals",
) -> httpx.Response:
    return await client.post(
        f"{_base(tenant)}/{revocation['revocation_id']}/{kind}",
        json={"comment": "ok"},
        headers=tenant.post_headers(token=tenant.admin_tokens[admin_index]),
    )


async def test_two_distinct_admins_execute_the_revocation(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: asyncpg.Connection,
    arq: ArqRedis,
    running_api: RunningApi,
) -> None:
    tenant = await new_tenant(pool, admin, tickets=4, users=3)
    minted = tenant.seeded.ticket_ids[:3]
    await make_minted(admin, minted)
    revocation = await _create(client, tenant)
    assert revocation["status"] == "pending" and revocation["required_approvals"] == 2
    assert revocation["requested_by"] == str(tenant.seeded.user_ids[0])

    second_pending = await client.post(
        _base(tenant), json={}, headers=tenant.post_headers(token=tenant.admin_tokens[1])
    )
    assert (
        second_pending.status_code == 409 and second_pending.json()["code"] == "revocation_pending"
    )

    one = await _vote(client, tenant, revocation, 0)
    assert one.status_code == 200 and one.json()["current_approvals"] == 1
    twice = await _vote(client, tenant, revocation, 0)
    assert twice.status_code == 200
    assert twice.json()["current_approvals"] == 1 and twice.json()["status"] == "pending"

    done = await _vote(client, tenant, revocation, 1)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "executed" and body["executed_at"]
    assert sorted(body["approvers"]) == sorted(str(u) for u in tenant.seeded.user_ids[:2])
    assert len(body["burn_request_ids"]) == 3
    rows = await admin.fetch(
        "SELECT ticket_id, operation, reason, source FROM chain_requests"
        " WHERE id = ANY($1::uuid[])",
        [uuid.UUID(i) for i in body["burn_request_ids"]],
    )
    assert sorted(r["ticket_id"] for r in rows) == sorted(minted)
    assert {(r["operation"], r["reason"], r["source"]) for r in rows} == {
        ("burn", "revoke", "multisig")
    }
    for request_id in body["burn_request_ids"]:
        assert await arq.zscore(running_api.settings.queue_name, request_id) is not None

    late = await _vote(client, tenant, revocation, 2)
    assert late.status_code == 409 and late.json()["code"] == "revocation_executed"
    shown = await client.get(
        f"{_base(tenant)}/{revocation['revocation_id']}", headers=tenant.auth()
    )
    assert shown.status_code == 200 and shown.json() == body


async def test_rejection_ends_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=2, users=3)
    await make_minted(admin, tenant.seeded.ticket_ids)
    revocation = await _create(client, tenant, "refund")
    assert (await _vote(client, tenant, revocation, 0)).status_code == 200
    rejected = await _vote(client, tenant, revocation, 1, "rejections")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    after = await _vote(client, tenant, revocation, 2)
    assert after.status_code == 409 and after.json()["code"] == "revocation_rejected"
    assert (
        await admin.fetchval("SELECT count(*) FROM chain_requests WHERE tenant_id = $1", tenant.id)
        == 0
    )


async def test_expired_request_takes_no_votes(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1, users=2)
    await make_minted(admin, tenant.seeded.ticket_ids)
    revocation = await _create(client, tenant)
    await admin.execute(
        "UPDATE multisig_approval_requests SET expires_at = now() - interval '1 second'"
        " WHERE id = $1",
        uuid.UUID(revocation["revocation_id"]),
    )
    vote = await _vote(client, tenant, revocation, 1)
    assert vote.status_code == 409 and vote.json()["code"] == "revocation_expired"
    shown = await client.get(
        f"{_base(tenant)}/{revocation['revocation_id']}", headers=tenant.auth()
    )
    assert shown.json()["status"] == "expired" and shown.json()["current_approvals"] == 0
    # An expired request no longer blocks a new one.
    fresh = await _create(client, tenant)
    assert fresh["revocation_id"] != revocation["revocation_id"]
    unknown = await client.get(f"{_base(tenant)}/{uuid.uuid4()}", headers=tenant.auth())
    assert unknown.status_code == 404
