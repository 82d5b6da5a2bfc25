"""POST /v1/wallets: a base58 ed25519 public key for a user of the caller's tenant."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.api.conftest import new_tenant


async def test_register_and_replace_a_wallet(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    user = tenant.seeded.user_ids[0]
    first, second = str(Keypair().pubkey()), str(Keypair().pubkey())
    made = await client.post(
        "/v1/wallets", json={"user_id": str(user), "address": first}, headers=tenant.post_headers()
    )
    assert made.status_code == 201 and made.json() == {"user_id": str(user), "address": first}
    replaced = await client.post(
        "/v1/wallets", json={"user_id": str(user), "address": second}, headers=tenant.post_headers()
    )
    assert replaced.status_code == 201
    stored = await admin.fetch("SELECT address FROM wallets WHERE user_id = $1", user)
    assert [row["address"] for row in stored] == [second]


async def test_bad_addresses_and_unknown_users(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: asyncpg.Connection
) -> None:
    tenant = await new_tenant(pool, admin, tickets=1)
    user = str(tenant.seeded.user_ids[0])
    off_curve, _ = Pubkey.find_program_address([b"not-a-wallet"], Pubkey.new_unique())
    for address in (
        "0OIl" * 10,
        "abc",
        "1" * 44,
        str(off_curve),
        "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFi!",
    ):
        response = await client.post(
            "/v1/wallets", json={"user_id": user, "address": address}, headers=tenant.post_headers()
        )
        assert response.status_code == 422, address
        assert response.json()["type"] == "urn:chainworker:problem:validation-error"
        assert [e["field"] for e in response.json()["errors"]] == ["body.address"]
    unknown = await client.post(
        "/v1/wallets",
        json={"user_id": str(uuid.uuid4()), "address": str(Keypair().pubkey())},
        headers=tenant.post_headers(),
    )
    assert unknown.status_code == 404
    extra = await client.post(
        "/v1/wallets",
        json={"user_id": user, "address": str(Keypair().pubkey()), "x": 1},
        headers=tenant.post_headers(),
    )
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "body.x"
    assert await admin.fetchval("SELECT count(*) FROM wallets WHERE tenant_id = $1", tenant.id) == 0
