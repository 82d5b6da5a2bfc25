"""Tenant A's token on tenant B's objects: 404, nothing changes, and a violation row."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from chainworker.obs import metrics
from tests.api.conftest import RunningApi, Tenant, accepted_transfer, make_minted, new_tenant
from tests.helpers import wait_for

# migration 106: chainworker_note_cross_tenant's bound
CROSS_TENANT_PER_MINUTE = 20


async def _violations(admin: asyncpg.Connection, caller: Tenant, owner: Tenant) -> list[str]:
    rows = await admin.fetch(
        """SELECT table_name FROM tenant_access_violations
            WHERE tenant_id = $1 AND attempted_tenant_id = $2 ORDER BY created_at""",
        caller.id,
        owner.id,
    )
    return [row["table_name"] for row in rows]


async def test_cross_tenant_access_is_404_and_recorded(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    a, b = await new_tenant(pool, admin, tickets=2), await new_tenant(pool, admin, tickets=3)
    b_sold, b_minted, b_moving = b.seeded.ticket_ids
    await make_minted(admin, [b_minted, b_moving])
    b_transfer = await accepted_transfer(admin, b_moving, b.seeded.user_ids[0])
    b_request = await client.post(f"/v1/tickets/{b_sold}/mint", headers=b.post_headers())
    assert b_request.status_code == 202
    b_request_id = b_request.json()["request_id"]
    b_revocation = await client.post(
        f"/v1/events/{b.seeded.event_id}/revocations",
        json={},
        headers=b.post_headers(token=b.admin_tokens[0]),
    )
    assert b_revocation.status_code == 201
    b_revocation_id = b_revocation.json()["revocation_id"]
    signature = "5" * 87
    await admin.execute(
        """INSERT INTO pending_transactions (tenant_id, ticket_id, tx_signature, tx_type,
                                             blockhash, last_valid_block_height)
           VALUES ($1, $2, $3, 'mint', $4, 100)""",
        b.id,
        b_sold,
        signature,
        "1" * 32,
    )

    attempts = [
        ("POST", f"/v1/tickets/{b_sold}/mint", None, a.token, "tickets"),
        ("POST", f"/v1/tickets/{b_minted}/burn", {"reason": "revoke"}, a.token, "tickets"),
        ("GET", f"/v1/tickets/{b_minted}/chain", None, a.token, "tickets"),
        ("POST", f"/v1/transfers/{b_transfer}/execute", None, a.token, "ticket_transfers"),
        ("GET", f"/v1/requests/{b_request_id}", None, a.token, "chain_requests"),
        ("GET", f"/v1/transactions/{signature}", None, a.token, "pending_transactions"),
        ("POST", f"/v1/events/{b.seeded.event_id}/revocations", {}, a.admin_tokens[0], "events"),
        (
            "POST",
            f"/v1/events/{b.seeded.event_id}/revocations/{b_revocation_id}/approvals",
            {},
            a.admin_tokens[0],
            "multisig_approval_requests",
        ),
        (
            "POST",
            f"/v1/events/{b.seeded.event_id}/revocations/{b_revocation_id}/rejections",
            {},
            a.admin_tokens[0],
            "multisig_approval_requests",
        ),
        (
            "POST",
            "/v1/wallets",
            {
                "user_id": str(b.seeded.user_ids[0]),
                "address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
            },
            a.token,
            "users",
        ),
    ]
    for method, path, body, token, _ in attempts:
        headers = a.post_headers(token=token) if method == "POST" else a.auth(token)
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["type"] == "urn:chainworker:problem:not-found"
    expected = [table for *_, table in attempts]

    async def recorded() -> bool:  # recorded off the request path, in order
        return await _violations(admin, a, b) == expected

    await wait_for(recorded, 10, "the violations to be recorded")

    # Nothing of B's changed, and a plain unknown id is 404 without a violation.
    assert (
        await admin.fetchval("SELECT count(*) FROM chain_requests WHERE tenant_id = $1", b.id) == 1
    )
    revocation = await admin.fetchrow(
        "SELECT status, current_approvals FROM multisig_approval_requests WHERE id = $1",
        uuid.UUID(b_revocation_id),
    )
    assert revocation is not None and tuple(revocation) == ("pending", 0)
    unknown = await client.get(f"/v1/requests/{uuid.uuid4()}", headers=a.auth())
    assert unknown.status_code == 404
    await asyncio.sleep(0.5)  # time for the recorder, which must find nothing to record
    assert len(await _violations(admin, a, b)) == len(attempts)
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM tenant_access_violations WHERE tenant_id = $1 AND"
            " attempted_tenant_id IS DISTINCT FROM $2",
            a.id,
            b.id,
        )
        == 0
    )


async def test_a_cross_tenant_404_does_not_wait_for_the_violation_log(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection,
    running_api: RunningApi,
) -> None:
    """The violation is written off the request path: even with its table locked, the 404
    comes at once (the attempt is recorded once the lock is gone)."""
    a, b = await new_tenant(pool, admin, tickets=1), await new_tenant(pool, admin, tickets=1)
    [b_ticket] = b.seeded.ticket_ids
    blocker = await asyncpg.connect(running_api.db.admin_dsn)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE tenant_access_violations IN ACCESS EXCLUSIVE MODE")
            response = await client.get(
                f"/v1/tickets/{b_ticket}/chain", headers=a.auth(), timeout=3.0
            )
            assert response.status_code == 404
    finally:
        await blocker.close()

    async def recorded() -> bool:
        return await _violations(admin, a, b) == ["tickets"]

    await wait_for(recorded, 10, "the violation to be recorded after the lock")


def _violation_count(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "chainworker_tenant_violations_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_violations_are_bounded_per_token_and_minute_and_counted(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    a, b = await new_tenant(pool, admin, tickets=1), await new_tenant(pool, admin, tickets=1)
    [b_ticket] = b.seeded.ticket_ids
    before = {outcome: _violation_count(outcome) for outcome in ("recorded", "suppressed")}
    lookups = CROSS_TENANT_PER_MINUTE + 10
    for _ in range(lookups):
        response = await client.get(f"/v1/tickets/{b_ticket}/chain", headers=a.auth())
        assert response.status_code == 404

    def counted() -> float:
        return sum(_violation_count(o) - before[o] for o in before)

    async def all_seen() -> bool:
        return counted() == lookups

    await wait_for(all_seen, 15, "every lookup to be counted")
    assert _violation_count("recorded") - before["recorded"] == CROSS_TENANT_PER_MINUTE
    assert _violation_count("suppressed") - before["suppressed"] == 10
    assert len(await _violations(admin, a, b)) == CROSS_TENANT_PER_MINUTE
    # The bound is per token: another token of the same tenant is still recorded.
    other = await client.get(f"/v1/tickets/{b_ticket}/chain", headers=a.auth(a.admin_tokens[0]))
    assert other.status_code == 404

    async def other_recorded() -> bool:
        return len(await _violations(admin, a, b)) == CROSS_TENANT_PER_MINUTE + 1

    await wait_for(other_recorded, 10, "the other token's violation")
